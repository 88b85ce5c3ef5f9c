"""A finished run group grows, on the REAL local SLURM cluster: extend it, and only the new runs run.

`flows.run_experiment.run_experiment` (a temporary Prefect server) runs the tiny demo's design
with LoRA ranks 4 and 8, one replicate and the base-model control (1 epoch of a few steps, 20 test
words) to the end. Then the design changes to ranks 4 and 16 with `replicates: 2` and
run-experiment runs again: plan-runs plans the difference on the same group (rank 4 keeps its
name as replicate 1; rank4_rep2, rank16_rep1 and rank16_rep2 are new; rank 8 is dropped).

Checked: only the new runs' jobs are submitted (every job SLURM ran from the group's folders is
an attempt on record; the new ones are exactly the new runs' fine-tunes and evaluations); every
file of the finished runs (rank 4, rank 8, the base model) is sha256-identical afterwards; the
rank-8 run is `dropped` with the reason, its files kept; summary.md and results/effects.csv include
the new runs (rank 16 against the base model and against rank 4, over replicates) and leave rank 8
out; runs_plan.md lists the extension; planning the extended design again is a no-op. Last,
rerun-runs runs one finished evaluation again: one more job, that stage's, with the earlier attempt
kept and marked reopened.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "examples" / "tiny_demo" / "design.yaml"
EVAL_SCRIPT = ROOT / "examples" / "capitalization" / "eval.py"
MODEL = "Llama-3-Tiny-Instruct"
FINISHED = [f"{MODEL}_rank4", f"{MODEL}_rank8", f"{MODEL}_base"]
NEW = [f"{MODEL}_rank4_rep2", f"{MODEL}_rank16_rep1", f"{MODEL}_rank16_rep2"]

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.slurm]


def _design(tmp_path: Path, inputs: dict[str, Path], ranks: list[int], replicates: int) -> Path:
    data = yaml.safe_load(DESIGN.read_text())
    data["name"] = "extend_tiny_cap"
    data["factors"] = {"lora_rank": ranks}
    data["replicates"] = replicates
    data["controls"] = True
    data["training"].update(epochs=1, max_steps_per_epoch=30)
    data["dataset"]["path"] = str(inputs["dataset"])
    data["evaluation"].update(limit=20, epochs="last")
    for task in data["evaluation"]["tasks"]:
        task["script"] = str(EVAL_SCRIPT)
    data["paths"] = {"models_dir": str(inputs["models_dir"]), "output_dir": str(tmp_path / "experiments")}
    data["cluster"] = {**data["cluster"], "backend": "slurm", "device": "cpu"}
    path = tmp_path / f"design_{len(ranks)}x{replicates}_{ranks[-1]}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _checksums(group: Path, runs: list[str]) -> dict[str, str]:
    return {str(p.relative_to(group)): hashlib.sha256(p.read_bytes()).hexdigest()
            for run in runs for p in sorted((group / run).rglob("*")) if p.is_file()}


def _group_jobs(cluster, group: Path) -> set[str]:
    """Every job SLURM knows that was submitted from this group's folders (%Z: its working directory)."""
    lines = cluster.run("squeue", "-h", "-t", "all", "-o", "%i|%Z").stdout.splitlines()
    ids = {line.split("|")[0] for line in lines if "|" in line and line.split("|")[1].startswith(str(group))}
    if cluster.with_db:
        out = cluster.run("sacct", "-X", "-P", "-n", "-S", "now-2hours", "-o", "JobID,WorkDir").stdout
        ids |= {line.split("|")[0] for line in out.splitlines()
                if "|" in line and line.split("|")[1].startswith(str(group))}
    return ids


def _job_ids(status) -> dict[str, str]:
    return {f"{run}/{key}": a.job_id for run, key, s in status.stages() for a in s.attempts}


def test_extend_a_finished_group_on_real_slurm(flows_on_slurm, tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    from examples.tiny_demo.make_example import make_example
    from flows.plan_runs import plan_runs
    from flows.rerun_runs import rerun_runs
    from flows.run_experiment import run_experiment
    from tasks.model._status_file import StatusStore

    cluster = flows_on_slurm
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        inputs = make_example(tmp_path / "inputs")
        first_design = _design(tmp_path, inputs, [4, 8], 1)
        grown_design = _design(tmp_path, inputs, [4, 16], 2)
        with prefect_test_harness(server_startup_timeout=120):
            t = time.monotonic()
            state = run_experiment(str(first_design), auto_approve=True, poll_seconds=2, check_site=False,
                                   return_state=True)
            timings["first run-experiment"] = time.monotonic() - t
            assert state.is_completed(), f"run-experiment ended {state.name}: {state.message}"
            group = Path(state.result())
            before = StatusStore(group / "runs_status.yaml").read()
            assert all(s.status in ("completed", "skipped") for _, _, s in before.stages()), before
            sums = _checksums(group, FINISHED)
            jobs_before = _group_jobs(cluster, group)
            assert set(_job_ids(before).values()) == jobs_before  # 2 fine-tunes + 3 evaluations
            assert len(jobs_before) == 5, jobs_before

            t = time.monotonic()
            grown = run_experiment(str(grown_design), auto_approve=True, poll_seconds=2, check_site=False,
                                   return_state=True)
            timings["extended run-experiment"] = time.monotonic() - t
            assert grown.is_completed(), f"run-experiment ended {grown.name}: {grown.message}"
            assert Path(grown.result()) == group  # the same group, extended

            plan_md = (group / "runs_plan.md").read_bytes()
            again = plan_runs(str(grown_design), auto_approve=True, check_site=False, return_state=True)
            assert again.is_completed() and Path(again.result()) == group
            assert (group / "runs_plan.md").read_bytes() == plan_md  # identical design: nothing rewritten
            extended = StatusStore(group / "runs_status.yaml").read()
            jobs_extended = _group_jobs(cluster, group)

            # re-run one finished evaluation on request: only its job is submitted, the reason on record
            t = time.monotonic()
            rerun = rerun_runs(str(group), reason="scorer updated", runs=[NEW[1]], stages=["evaluations"], wait=True,
                               return_state=True)
            timings["rerun-runs"] = time.monotonic() - t
            assert rerun.is_completed(), f"rerun-runs ended {rerun.name}: {rerun.message}"

        after = StatusStore(group / "runs_status.yaml").read()
        # --- the re-run: one more job, for that evaluation only; its earlier attempt kept and marked reopened
        rerun_jobs = _group_jobs(cluster, group) - jobs_extended
        stage = after.stage(NEW[1], "capitalization_epoch_0")
        assert stage.status == "completed" and len(stage.attempts) == 2 and stage.attempts[0].reopened, stage
        assert rerun_jobs == {stage.attempts[1].job_id}, rerun_jobs
        rerun_key = f"{NEW[1]}/capitalization_epoch_0"
        assert _job_ids(extended)[rerun_key] == stage.attempts[0].job_id
        unchanged = {k: v for k, v in _job_ids(after).items() if k != rerun_key}
        assert unchanged == {k: v for k, v in _job_ids(extended).items() if k != rerun_key}  # nothing else moved

        # --- only the new runs' jobs were submitted by the extension
        ids_after = _job_ids(extended)
        new_jobs = jobs_extended - jobs_before
        assert {k: v for k, v in ids_after.items() if v in jobs_before} == _job_ids(before)
        new_stages = {k for k, v in ids_after.items() if v in new_jobs}
        assert new_stages == {f"{run}/{key}" for run in NEW for key in ("finetune", "capitalization_epoch_0")}, \
            new_stages
        assert len(new_jobs) == 6, new_jobs
        assert all(extended.stage(run, key).status == "completed" for run in NEW
                   for key in ("finetune", "capitalization_epoch_0"))

        # --- the finished runs' files: byte-identical; rank 8 dropped and kept
        assert _checksums(group, FINISHED) == sums
        dropped = after.stage(f"{MODEL}_rank8")
        assert dropped.status == "dropped" and "(factors.lora_rank[rank8])" in (dropped.reason or ""), dropped
        assert after.stage(f"{MODEL}_rank8", "capitalization_epoch_0").status == "dropped"
        assert after.stage(f"{MODEL}_rank4").status == "completed"

        # --- the summary and comparisons include the new runs, not the dropped one
        summary = (group / "summary.md").read_text()
        for run in NEW:
            assert run in summary, run
        assert not [line for line in summary.splitlines() if line.startswith(f"| {MODEL}_rank8 ")]
        assert "dropped from the design are left out" in summary
        effects = (group / "results" / "effects.csv").read_text()
        assert "rank16" in effects and "rank8" not in effects, effects
        assert "## Extensions" in (group / "runs_plan.md").read_text()
    finally:
        timings["total"] = time.monotonic() - t0
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), file=sys.stderr)
