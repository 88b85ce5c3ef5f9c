"""The whole mission on the REAL local SLURM cluster, with nothing faked.

`flows.run_experiment.run_experiment` is called as plain Python (a temporary Prefect server
from `prefect_test_harness`) on a design derived from `examples/tiny_demo/design.yaml`: LoRA
ranks 4 and 16 with `replicates: 2` (four fine-tunes of 2 epochs of the tiny Llama-3 made
locally, seeds 42 and 1042), plus the base-model control; the last epoch of each run and the
base model are evaluated on the first 100 test words. The jobs go through `sbatch` to
the cluster of the `slurm_cluster` fixture (skipped with the fixture's reason when SLURM
cannot run on this machine). Measured on 2 shared CPU cores: see the timings it prints.

Checks: every stage completed (the base model's fine-tune skipped); each job id in
runs_status.yaml is a real SLURM job (`scontrol show job` / `sacct` agree: COMPLETED, the
right job name); none of them is left in `squeue`; the `.eval` logs, summary.md and the plots
exist; the rank-16 model at epoch_1 beats the base model (read from the `.eval` logs with
inspect-ai) and gets at least half of the words right; results/effects.csv has every fine-tuned
cell against the base model and the rank main effect, with intervals that include the seed
variance, and results/samples.csv one row per run x sample.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "examples" / "tiny_demo" / "design.yaml"
EVAL_SCRIPT = ROOT / "examples" / "capitalization" / "eval.py"

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.slurm]


def _design(tmp_path: Path, inputs: dict[str, Path]) -> Path:
    """The tiny demo's design with absolute paths into tmp_path, two ranks x 2 replicates, 100 eval samples."""
    data = yaml.safe_load(DESIGN.read_text())
    data["name"] = "e2e_tiny_cap"
    data["factors"] = {"lora_rank": [4, 16]}
    data["replicates"] = 2
    data["controls"] = True
    data["training"]["epochs"] = 2
    data["dataset"]["path"] = str(inputs["dataset"])
    data["evaluation"]["limit"] = 100
    data["evaluation"]["epochs"] = "last"
    for task in data["evaluation"]["tasks"]:
        task["script"] = str(EVAL_SCRIPT)
    data["paths"] = {"models_dir": str(inputs["models_dir"]), "output_dir": str(tmp_path / "experiments")}
    data["cluster"] = {**data["cluster"], "backend": "slurm", "device": "cpu"}
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _accuracy(log_path: Path) -> float:
    from inspect_ai.log import read_eval_log

    log = read_eval_log(str(log_path))
    assert log.status == "success", f"{log_path}: {log.status} {log.error}"
    [score] = [s for s in log.results.scores if "accuracy" in s.metrics]
    return float(score.metrics["accuracy"].value)


def _eval_log(run_dir: Path, epoch: str) -> Path:
    """The successful `.eval` log of this run whose metadata says this epoch ("base" for controls)."""
    from inspect_ai.log import read_eval_log

    found = []
    for path in sorted(run_dir.glob("evaluations/*/logs/*.eval")):
        header = read_eval_log(str(path), header_only=True)
        if header.status == "success" and str((header.eval.metadata or {}).get("epoch")) == epoch:
            found.append(path)
    assert len(found) == 1, f"expected one successful .eval log for epoch {epoch} under {run_dir}: {found}"
    return found[0]


def _check_result_tables(group: Path) -> None:
    """effects.csv: each cell vs base and the rank main effect, with numbers; samples.csv: every sample."""
    import csv

    effects = list(csv.DictReader((group / "results" / "effects.csv").open()))
    vs_base = {r["contrast"]: r for r in effects if r["kind"] == "vs base"}
    assert set(vs_base) == {f"Llama-3-Tiny-Instruct_rank{r} - Llama-3-Tiny-Instruct_base (base)" for r in (4, 16)}
    [rank] = [r for r in effects if r["kind"] == "main effect" and r["contrast"].startswith("lora_rank: rank16 - rank4")]
    for row in [*vs_base.values(), rank]:
        assert row["estimate"] and row["ci_low"] and row["p_adjusted"], row
        assert float(row["ci_low"]) <= float(row["estimate"]) <= float(row["ci_high"]), row
        assert row["n_items"] == "100" and row["n_replicates"] == "2" and "seed variance" in row["method"], row
        assert row["seed_part"] == "True", row
    print("effects.csv:\n" + (group / "results" / "effects.csv").read_text())
    samples = list(csv.DictReader((group / "results" / "samples.csv").open()))
    assert len(samples) == 5 * 100  # 4 fine-tunes + the base model, 100 words each
    assert {s["seed"] for s in samples if s["kind"] == "finetune"} == {"42", "1042"}


def test_run_experiment_on_real_slurm(flows_on_slurm, tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    from examples.tiny_demo.make_example import make_example
    from flows.run_experiment import run_experiment
    from tasks.model._status_file import StatusStore

    # the flows' sbatch / squeue / sacct read this cluster's config from the environment (flows_on_slurm)
    slurm_cluster = flows_on_slurm
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        inputs = make_example(tmp_path / "inputs")
        design = _design(tmp_path, inputs)
        timings["inputs"] = time.monotonic() - t0

        t = time.monotonic()
        with prefect_test_harness(server_startup_timeout=120):
            timings["prefect server"] = time.monotonic() - t
            t = time.monotonic()
            state = run_experiment(str(design), auto_approve=True, poll_seconds=2, return_state=True)
            timings["run-experiment"] = time.monotonic() - t
            first = StatusStore(Path(state.result()) / "runs_status.yaml").read() if state.is_completed() else None
            # resumable: running it again finds the same group and redoes / resubmits nothing
            t = time.monotonic()
            again = run_experiment(str(design), auto_approve=True, poll_seconds=2, return_state=True)
            timings["run-experiment again"] = time.monotonic() - t
        assert state.is_completed(), f"run-experiment ended {state.name}: {state.message}"
        group = Path(state.result())
        assert group.parent == tmp_path / "experiments", group

        # --- runs_status.yaml: everything completed, the base model's fine-tune skipped
        status = StatusStore(group / "runs_status.yaml").read()
        stages = list(status.stages())
        finetuned = [run for run, key, s in stages if key == "finetune" and s.status != "skipped"]
        bases = [run for run, key, s in stages if key == "finetune" and s.status == "skipped"]
        assert finetuned == [f"Llama-3-Tiny-Instruct_rank{r}_rep{n}" for r in (4, 16) for n in (1, 2)], stages
        assert bases == ["Llama-3-Tiny-Instruct_base"], stages
        not_done = [(run, key, s.status, s.reason) for run, key, s in stages
                    if s.status != "completed" and not (key == "finetune" and run in bases)]
        assert not not_done, f"stages not completed: {not_done}"
        jobs = {s.job_id: (run, key) for run, key, s in stages if s.status == "completed"}
        assert len(jobs) == 9 and all(jobs), jobs  # 4 fine-tunes + 4 last-epoch evaluations + 1 base evaluation
        assert all(s.scheduler_state == "COMPLETED" and len(s.attempts) == 1 for run, key, s in stages if s.job_id), stages

        # --- the jobs went through SLURM: scontrol and sacct know them, all COMPLETED, none queued
        for job_id, (run, key) in jobs.items():
            record = slurm_cluster.job(job_id)  # scontrol show job -o ID
            assert record["JobId"] == job_id and record["JobState"] == "COMPLETED", record
            assert record["ExitCode"] == "0:0", record
            if key == "finetune":
                assert record["JobName"] == run, record
        if slurm_cluster.with_db:
            ids = ",".join(jobs)
            deadline = time.monotonic() + 30  # slurmdbd records the end a moment after the job
            while True:
                out = slurm_cluster.run("sacct", "-X", "-P", "-n", "-j", ids, "-o", "JobID,JobName,State,ExitCode").stdout
                rows = {line.split("|")[0]: line.split("|") for line in out.splitlines() if line.strip()}
                if (set(rows) == set(jobs) and all(r[2] == "COMPLETED" for r in rows.values())) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert set(rows) == set(jobs), out
            assert all(r[2] == "COMPLETED" and r[3] == "0:0" for r in rows.values()), out
        else:
            print("the cluster runs without slurmdbd: sacct not checked (scontrol only)")
        queued = set(slurm_cluster.run("squeue", "-h", "-o", "%i").stdout.split()) & set(jobs)
        assert not queued, f"still in squeue: {queued}"

        # --- the second run-experiment: same group, same jobs, nothing new in SLURM
        assert again.is_completed() and Path(again.result()) == group, again
        assert first is not None and {(r, k): s.job_id for r, k, s in first.stages()} == {
            (r, k): s.job_id for r, k, s in stages}, "the second run changed job ids"
        # every job SLURM still knows that was submitted from this run group (%Z: working dir)
        known = slurm_cluster.run("squeue", "-h", "-t", "all", "-o", "%i|%Z").stdout.splitlines()
        ours = [line.split("|")[0] for line in known if line.strip() and line.split("|")[1].startswith(str(group))]
        assert sorted(ours) == sorted(jobs), f"jobs submitted from {group}: {ours}"

        # --- files: checkpoints, .eval logs, summary.md + plots
        rank16 = "Llama-3-Tiny-Instruct_rank16_rep1"
        run_dir, base_dir = group / rank16, group / bases[0]
        assert (run_dir / "epoch_0").is_dir() and (run_dir / "epoch_1").is_dir()
        seeds = {run: yaml.safe_load((group / run / "finetune.yaml").read_text())["seed"] for run in finetuned}
        assert sorted(seeds.values()) == [42, 42, 1042, 1042], seeds
        summary = group / "summary.md"
        assert summary.exists() and rank16 in summary.read_text()
        assert "## What the data support" in summary.read_text()
        assert list((group / "plots").glob("*.png"))
        _check_result_tables(group)

        # --- learning: epoch_1 beats the base model, and gets at least half the words right
        logs = {"1": _eval_log(run_dir, "1"), "base": _eval_log(base_dir, "base")}
        outputs = {"1": status.stage(rank16, "capitalization_epoch_1").output,
                   "base": status.stage(bases[0], "capitalization").output}
        assert {k: Path(v) for k, v in outputs.items()} == logs  # sync-status verified these very logs
        accuracy = {epoch: _accuracy(path) for epoch, path in logs.items()}
        print(f"exact match: {accuracy}")
        assert accuracy["1"] > accuracy["base"], accuracy
        assert accuracy["1"] >= 0.5, accuracy
        elapsed = {f"{run}/{key}": a.elapsed_s for run, key, s in stages for a in s.attempts}
        print("jobs' elapsed (SLURM): " + ", ".join(f"{k} {v:.0f} s" for k, v in elapsed.items() if v is not None))
    finally:
        timings["total"] = time.monotonic() - t0
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), file=sys.stderr)
