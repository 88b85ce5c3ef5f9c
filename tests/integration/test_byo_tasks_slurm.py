"""Bring your own inspect tasks, end to end on the REAL local SLURM cluster (issue 21).

The tiny demo (one LoRA fine-tune, rank 16, one epoch, plus the base-model control) evaluated on
two tasks that do not follow sweepflow's old parameter names:
- `own`: a plain task file (tests/fixtures/own_data_task) that reads its own data and calls its
  system-prompt parameter `instructions`; no `args:` (the demo trains without a system prompt),
  so it is accepted as "own data";
- `caps`: the registered task `sweepflow_fixture_tasks/capitals` of the fixture package
  (tests/fixtures/task_package), mapped with `args:` to the design's data, split and prompt. The
  package sits in a temporary `site-packages` folder: on this process's path for plan-runs, and
  on the jobs' PYTHONPATH through the cluster settings' `env_setup` (nothing is installed).

Checks: every stage completed; each task has its own successful `.eval` log per evaluated
checkpoint, read by sync-status; the fidelity check covers each task; the arguments the jobs
passed are the mapped ones. Each evaluated checkpoint is ONE job (both tasks' stages share its
id) that loads the model once: the loads are counted in the job logs (the runner's "loaded model"
line), one per checkpoint (it was one per checkpoint and task).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "examples" / "tiny_demo" / "design.yaml"
FIXTURES = ROOT / "tests" / "fixtures"
REGISTERED = "sweepflow_fixture_tasks/capitals"
LOADED = "sweepflow: loaded model "  # tasks.evaluation.run_tasks prints it once per model load
EXITED = "sweepflow: evaluation exited with "

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.slurm]


def _design(tmp_path: Path, inputs: dict[str, Path], site: Path) -> Path:
    data = yaml.safe_load(DESIGN.read_text())
    data["name"] = "byo_tasks"
    data["factors"] = {"lora_rank": [16]}
    data["replicates"] = 1  # one run: the test is about the tasks
    data["controls"] = True
    data["training"]["epochs"] = 1
    data["dataset"]["path"] = str(inputs["dataset"])
    data["evaluation"]["epochs"] = "all"
    own = tmp_path / "own"
    shutil.copytree(FIXTURES / "own_data_task", own)
    data["evaluation"]["tasks"] = [
        {"name": "own", "script": str(own / "own_task.py"), "description": "its own words, its own names"},
        {"name": "caps", "inspect_task": REGISTERED,
         "args": {"data_file": "${dataset}", "part": "${split}", "instructions": "${system_prompt}", "limit": 20}},
    ]
    data["paths"] = {"models_dir": str(inputs["models_dir"]), "output_dir": str(tmp_path / "experiments")}
    data["cluster"] = {**data["cluster"], "backend": "slurm", "device": "cpu",
                       "env_setup": [f"export PYTHONPATH={site}"]}
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_own_and_registered_tasks_on_real_slurm(flows_on_slurm, tmp_path, monkeypatch):
    from inspect_ai._util.entrypoints import clear_entry_points_state
    from inspect_ai.log import read_eval_log
    from prefect.testing.utilities import prefect_test_harness

    from examples.tiny_demo.make_example import make_example
    from flows.run_experiment import run_experiment
    from tasks.model import load_plan
    from tasks.model._status_file import StatusStore
    from tasks.setup import check_rendered_fidelity, render_setup

    site = tmp_path / "pkgs" / "site-packages"
    shutil.copytree(FIXTURES / "task_package", site)
    monkeypatch.syspath_prepend(str(site))
    clear_entry_points_state()
    t0 = time.monotonic()
    inputs = make_example(tmp_path / "inputs")
    design = _design(tmp_path, inputs, site)
    with prefect_test_harness(server_startup_timeout=120):
        state = run_experiment(str(design), auto_approve=True, poll_seconds=2, return_state=True)
    print(f"run-experiment: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    assert state.is_completed(), f"run-experiment ended {state.name}: {state.message}"
    group = Path(state.result())

    plan_md = (group / "runs_plan.md").read_text()
    assert "| own | `" in plan_md and "| Own data (the task reads it) |" in plan_md
    assert f"| caps | `{REGISTERED}` (registered) | Same as training (test split) |" in plan_md

    status = StatusStore(group / "runs_status.yaml").read()
    evals = [(run, key, s) for run, key, s in status.stages() if key != "finetune"]
    assert sorted((run, key) for run, key, _ in evals) == [
        ("Llama-3-Tiny-Instruct_base", "caps"), ("Llama-3-Tiny-Instruct_base", "own"),
        ("Llama-3-Tiny-Instruct_rank16", "caps_epoch_0"), ("Llama-3-Tiny-Instruct_rank16", "own_epoch_0"),
    ]
    assert all(s.status == "completed" and s.job_id for _, _, s in evals), evals

    # each task: its own successful .eval log (the one sync-status recorded), with the samples it asked for
    samples = {}
    for run, key, s in evals:
        header = read_eval_log(str(s.output), header_only=True)
        assert header.status == "success", (run, key, header.error)
        assert header.eval.task_registry_name.endswith(("own_words", "capitals")), header.eval.task_registry_name
        samples[(run, key.split("_epoch_")[0])] = header.results.total_samples
    assert samples == {("Llama-3-Tiny-Instruct_base", "own"): 4, ("Llama-3-Tiny-Instruct_base", "caps"): 20,
                       ("Llama-3-Tiny-Instruct_rank16", "own"): 4, ("Llama-3-Tiny-Instruct_rank16", "caps"): 20}
    caps_dir = group / "Llama-3-Tiny-Instruct_rank16" / "evaluations" / "caps"
    args = yaml.safe_load((caps_dir / "task_args.yaml").read_text())
    assert args == {"data_file": str(inputs["dataset"]), "part": "test", "instructions": "", "limit": 20}

    # fidelity per task, as setup-experiment ran it (one model, one prompt: one check per task)
    checks = check_rendered_fidelity(render_setup(group))
    assert sorted(c.task for c in checks) == ["caps", "own"] and all(c.samples == 3 for c in checks)

    # one job per evaluated checkpoint: both tasks' stages carry its id; model loads counted in its log
    plan = load_plan(group)
    jobs: dict[tuple[str, str], set[str]] = {}
    for run, key, s in evals:
        checkpoint = (run, key.split("_epoch_")[1] if "_epoch_" in key else "base")
        jobs.setdefault(checkpoint, set()).add(str(s.job_id))
    assert all(len(ids) == 1 for ids in jobs.values()), jobs  # the seed's per-task entries, one shared job id
    loads: dict[tuple[str, str], int] = {}
    for checkpoint, (job_id,) in jobs.items():
        log = (group / checkpoint[0] / "evaluations" / f"slurm-{job_id}.out").read_text()
        assert f"{EXITED}0" in log and "once for 2 task(s)" in log, log[-2000:]
        loads[checkpoint] = log.count(LOADED)
    print(f"model loads per evaluated checkpoint: {loads} ({len(plan.eval_jobs)} evaluations in "
          f"{len(plan.checkpoint_jobs)} evaluation jobs)", file=sys.stderr)
    assert loads == {("Llama-3-Tiny-Instruct_rank16", "0"): 1, ("Llama-3-Tiny-Instruct_base", "base"): 1}
    assert len(plan.checkpoint_jobs) == 2 and len(plan.eval_jobs) == 4
    clear_entry_points_state()
