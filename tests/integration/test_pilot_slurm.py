"""The pilot for real: plan-runs with `pilot=true` on the REAL local SLURM cluster, tiny Llama-3, CPU.

plan-runs runs the pilot-runs flow (a real Prefect server from `prefect_test_harness`): one
fine-tune of the design's first run limited to 5 optimizer steps (torchtune's
`max_steps_per_epoch`), one checkpoint save, and one evaluation on 4 test samples, all through
`sbatch`; then it plans again. Checks: the pilot group holds exactly that (config, bar, epoch_0,
completed SLURM jobs), and the delivered plan's figures come from it and say so: training speed,
start-up, checkpoint size and evaluation time are `measured by pilot: ...` in experiment.yaml
and runs_plan.md, and the evaluation estimate is the pilot's fixed time plus inspect's time scaled to the
sweep's 100 samples.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "examples" / "tiny_demo" / "design.yaml"
EVAL_SCRIPT = ROOT / "examples" / "capitalization" / "eval.py"

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.slurm]


def _design(tmp_path: Path, inputs: dict[str, Path]) -> Path:
    data = yaml.safe_load(DESIGN.read_text())
    data["name"] = "pilot_tiny_cap"
    data["factors"] = {"lora_rank": [16, 4]}
    data["replicates"] = 1  # the sweep planned after the pilot: one run per rank, as before
    data["dataset"]["path"] = str(inputs["dataset"])
    data["evaluation"]["limit"] = 100
    for task in data["evaluation"]["tasks"]:
        task["script"] = str(EVAL_SCRIPT)
    data["paths"] = {"models_dir": str(inputs["models_dir"]), "output_dir": str(tmp_path / "experiments")}
    data["cluster"] = {**data["cluster"], "backend": "slurm", "device": "cpu"}
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_plan_runs_with_a_pilot_on_real_slurm(flows_on_slurm, tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    from examples.tiny_demo.make_example import make_example
    from flows.plan_runs import plan_runs
    from tasks.model import load_plan
    from tasks.model._status_file import StatusStore

    slurm_cluster = flows_on_slurm
    design = _design(tmp_path, make_example(tmp_path / "inputs"))

    with prefect_test_harness(server_startup_timeout=120):
        state = plan_runs(str(design), auto_approve=True, check_site=False, pilot=True, pilot_steps=5,
                          pilot_eval_samples=4, return_state=True)
    assert state.is_completed(), f"plan-runs ended {state.name}: {state.message}"
    group = Path(state.result())

    # --- the pilot: its own run group, one 5-step fine-tune of the first run, one 4-sample evaluation
    [pilot] = sorted((tmp_path / "experiments").glob("pilot_tiny_cap-pilot-*_*"))
    status = StatusStore(pilot / "runs_status.yaml").read()
    stages = [(run, key, s.status) for run, key, s in status.stages()]
    assert stages == [("Llama-3-Tiny-Instruct_rank16", "finetune", "completed"),
                      ("Llama-3-Tiny-Instruct_rank16", "capitalization_epoch_0", "completed")], stages
    run_dir = pilot / "Llama-3-Tiny-Instruct_rank16"
    config = yaml.safe_load((run_dir / "finetune.yaml").read_text())
    assert (config["epochs"], config["max_steps_per_epoch"], config["batch_size"]) == (1, 5, 4)
    job_id = status.runs["Llama-3-Tiny-Instruct_rank16"].finetune.job_id
    assert slurm_cluster.job(job_id)["JobState"] == "COMPLETED"
    log = (run_dir / f"slurm-{job_id}.out").read_text()
    assert "| 5/5 [" in log and "Checkpoint saved in" in log and (run_dir / "epoch_0").is_dir()
    # the bar stops at 5, but the recipe logged the whole epoch: what packing density and steps are read from
    assert "Epoch length: 1000 optimizer steps" in log and "max_steps_per_epoch: 5" in log
    assert (pilot / "measured_runs.yaml").is_file()
    eval_stage = status.runs["Llama-3-Tiny-Instruct_rank16"].evaluations["capitalization_epoch_0"]
    assert slurm_cluster.job(eval_stage.job_id)["JobState"] == "COMPLETED"

    # --- the sweep's plan, delivered after the pilot: its figures are the pilot's and say so
    plan = load_plan(group)
    m = plan.estimates.per_model["Llama-3-Tiny-Instruct"]
    assert m.speed_it_s.source.startswith(f"measured by pilot: prior log {run_dir}/slurm-{job_id}.out")
    assert m.checkpoint_gib_per_epoch.source.startswith("measured by pilot:")
    assert m.startup_minutes is not None and m.startup_minutes.source.startswith("measured by pilot:")
    assert m.eval_minutes.source.startswith("measured by pilot: prior evaluations: 1 job(s)")
    # fixed time + inspect's time scaled to the sweep's 100 samples; 4 samples are one generation batch,
    # so each further batch is taken to last as long as the pilot's one, and the source says so
    assert "s fixed + " in m.eval_minutes.source and "s of inspect for 100 samples" in m.eval_minutes.source
    assert "timed on 4 samples, one generation batch" in m.eval_minutes.source
    text = (group / "runs_plan.md").read_text()
    assert text.count("measured by pilot:") >= 4
    # the sweep's own runs: 2 epochs of the full split, not the pilot's 5 steps
    assert all(e.steps_per_epoch == 1000 for e in plan.estimates.runs.values() if e.steps_per_epoch)
