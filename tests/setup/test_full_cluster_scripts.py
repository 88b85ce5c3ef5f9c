"""The full-featured group's scripts run as intended: distributed recipe, site env_setup, best epoch, adapter merge.

Run with `bash` in a sandbox of recording stubs (tests/support/setup_groups.py `Sandbox`): the
fine-tune loads the site's modules and runs the distributed _val recipe; the best-epoch
evaluation picks its epoch, merges the adapter-only checkpoint into the base model on the node's
scratch (deleted when the job ends) and evaluates the merge; a base model is evaluated as it is.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.setup_groups import Sandbox, expected_eval_argv, expected_tasks_file, plan_of


def test_full_cluster_scripts_run_as_intended(full_group: Path, tmp_path: Path) -> None:
    """Distributed recipe, site env_setup (sourcing a file that reads an unset variable), best epoch."""
    plan = plan_of(full_group)
    box = Sandbox(tmp_path / "sandbox")
    run = plan.finetune_runs[0]
    calls = box.run(full_group / run.name / "finetune.slurm")
    assert [c["prog"] for c in calls] == ["module", "python", "hostname", "tune"]
    assert calls[0]["argv"] == ["load", "cuda/12.1"]
    # the preflight, in the job's Python: the recipes' exact torchtune/torchao, CUDA with 2 GPUs
    assert calls[1]["argv"][0].endswith("tasks/core/preflight.py") and calls[1]["argv"][1:] == [
        "--stage", "finetune", "--device", "cuda", "--gpus", "2", "--require", "torchtune==0.6.1",
        "--require", "torchao==0.15.0", "--record", "job_env-local.json",
    ]
    scratch = Path(plan.design.paths.scratch_dir)
    assert calls[1]["HF_HOME"].startswith(f"{scratch}/sweepflow-") and calls[1]["TMPDIR"].endswith("/tmp")
    assert not list(scratch.glob("sweepflow-*"))  # the per-job folder is removed when the job ends
    assert calls[3]["argv"] == ["run", "--nproc_per_node", "2", "sweepflow_recipes/lora_finetune_distributed_val.py", "--config", "finetune.yaml"]
    best = full_group / run.name / "epoch_0"
    best.mkdir(exist_ok=True)
    job = run.evaluations[0]
    assert job.epoch == "best"
    calls = box.run(full_group / run.name / "evaluations" / "eval_epoch_best.slurm", STUB_BEST_EPOCH=str(best))
    assert [c["prog"] for c in calls] == ["module", "python", "python", "python", "python"]
    assert calls[1]["argv"][1:5] == ["--stage", "eval", "--device", "cuda"]
    assert calls[2]["argv"] == ["-m", "tasks.evaluation.best_epoch", str(full_group / run.name)]
    # adapter-only checkpoints: the best epoch's adapter is merged into the base model in the job's scratch
    merged = calls[3]["argv"][-1]
    assert calls[3]["argv"] == ["-m", "tasks.evaluation.merge_adapter", str(best), str(run.model_dir), merged]
    assert Path(merged).parent.parent.parent == scratch and not Path(merged).exists()  # deleted when the job ended
    assert calls[4]["argv"] == expected_eval_argv(plan, run.name, "best", merged)  # every task, one model load
    tasks_file = yaml.safe_load((full_group / run.name / "evaluations" / "eval_epoch_best.tasks.yaml").read_text())
    assert tasks_file == expected_tasks_file(plan, run.name, "best") and tasks_file["limit"]
    control = next(r for r in plan.control_runs if r.evaluations)
    calls = box.run(full_group / control.name / "evaluations" / "eval.slurm")
    assert [c["prog"] for c in calls] == ["module", "python", "python"]  # a base model is evaluated as it is
