"""Benchmark: one sync-status of a 10,000-job run group: time, persist time, backend calls.

(Part 2 of the sync benchmark; `benchmarks/sync_10000.py` measures parsing 10,000 sacct lines.)
Builds, in a temporary folder, a real run group of 1,000 fine-tuned runs (4 models x 10 ranks
x 25 learning rates, 3 epochs, 3 evaluation tasks at every epoch: 1,000 fine-tunes + 9,000
evaluations = 10,000 jobs) with plan-runs' own code, records a job id for every stage (as
launch-runs would), then times `tasks.sync.sync_status` against an in-memory scheduler that
answers all 10,000 ids:

  poll    every fine-tune RUNNING (elapsed grows), every evaluation PENDING: all 10,000 change
  quiet   the same answer again: nothing changes (the file is still rewritten once)
  burst   100 fine-tunes COMPLETED (3 epoch_N/ checkpoints each, verified on disk), their 900
          evaluations COMPLETED (900 real inspect .eval logs, headers read and checked),
          20 fine-tunes OUT_OF_MEMORY (log tails read), the rest as in poll

"persist" is the locked read-modify-write of runs_status.yaml (parse, validate, terminal-state
protection, dump, atomic replace); "calls" counts the scheduler status queries (must be 1).

    python benchmarks/sync_persist_10000.py [--keep]

Reads/writes: only its temporary folder (removed unless --keep).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from plan_1000 import _ignore_disk_verdict, design_1000  # noqa: E402
from tasks.backends.base import JobInfo, JobStatus  # noqa: E402
from tasks.status import Attempt, RunsStatus, StatusStore  # noqa: E402

TASKS = ["cap", "cap_b", "cap_c"]


class InMemoryScheduler:
    """Answers `query` from a dict; counts calls like a real backend."""

    name = "memory"

    def __init__(self) -> None:
        self.calls = 0
        self.answer: dict[str, JobInfo] = {}

    def submit(self, script: Path, cwd: Path, after_ok: list[str] | None = None, extra_args: list[str] | None = None) -> str:
        raise NotImplementedError

    def query(self, job_ids: list[str]) -> dict[str, JobInfo]:
        self.calls += 1
        return {i: self.answer[i] for i in job_ids if i in self.answer}

    def jobs_named(self, names: list[str]) -> dict[str, list[JobInfo]]:
        return {}

    def cancel(self, job_ids: list[str]) -> None:
        pass


def _info(job_id: str, raw: str, status: JobStatus, **fields: object) -> JobInfo:
    return JobInfo(job_id=job_id, raw_state=raw, status=status, **fields)  # type: ignore[arg-type]


def build_group(root: Path) -> tuple[Path, dict[tuple[str, str], str]]:
    from tasks.deliver import deliver_plan
    from tasks.design import parse_design
    from tasks.planner import build_plan

    data = design_1000(root)
    script = data["evaluation"]["tasks"][0]["script"]
    data["training"]["epochs"] = 3
    data["evaluation"] = {"tasks": [{"name": t, "script": script} for t in TASKS], "epochs": "all"}
    plan = build_plan(parse_design(data, source="benchmark", base=root), date="2026-01-01")
    group = deliver_plan(plan, now="2026-01-01T00:00:00+00:00")
    ids: dict[tuple[str, str], str] = {}

    def launch(status: RunsStatus) -> None:  # what launch-runs leaves behind
        for n, (run, key, stage) in enumerate(status.stages()):
            ids[(run, key)] = str(1_000_000 + n)
            stage.mark("submitted", now="2026-01-01T00:00:00+00:00", job_id=ids[(run, key)])
            stage.attempts.append(Attempt(job_id=ids[(run, key)], submitted="2026-01-01T00:00:00+00:00"))

    StatusStore(group / "runs_status.yaml").update(launch)
    return group, ids


def _eval_log(path: Path, run: str, epoch: int) -> None:
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalSpec, write_eval_log

    spec = EvalSpec(created="2026-01-01T00:00:00+00:00", task=path.parent.parent.name, dataset=EvalDataset(),
                    model=f"hf/{run}_epoch_{epoch}", config=EvalConfig(), metadata={"run": run, "epoch": epoch})
    write_eval_log(EvalLog(status="success", eval=spec), str(path))


def timed_sync(group: Path, backend: InMemoryScheduler) -> dict[str, float]:
    from tasks.sync import sync_status

    calls = backend.calls
    t = time.perf_counter()
    report = sync_status(group, backend)
    total = time.perf_counter() - t
    return {"sync_s": total, "persist_s": report.persist_s, "calls": backend.calls - calls, "queried": report.queried,
            "changed": report.changed, "done": report.done, "newly_failed": len(report.newly_failed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    _ignore_disk_verdict()
    root = Path(tempfile.mkdtemp(prefix="sweepflow-bench-sync-"))
    try:
        t = time.perf_counter()
        group, ids = build_group(root)
        print(f"run group: {len(ids)} jobs, built in {time.perf_counter() - t:.1f} s "
              f"(runs_status.yaml {(group / 'runs_status.yaml').stat().st_size / 1024:.0f} KiB before the sync)")
        backend = InMemoryScheduler()
        for (run, key), job_id in ids.items():
            ft = key == "finetune"
            backend.answer[job_id] = (_info(job_id, "RUNNING", "running", node="gpu1", elapsed_s=600.0) if ft
                                      else _info(job_id, "PENDING", "pending"))
        results = {"poll": timed_sync(group, backend), "quiet": timed_sync(group, backend)}

        runs = sorted({run for run, _ in ids})
        t = time.perf_counter()
        for run in runs[:100]:
            for epoch in range(3):
                folder = group / run / f"epoch_{epoch}"
                folder.mkdir(parents=True)
                (folder / "adapter_model.safetensors").write_bytes(b"w")
            backend.answer[ids[(run, "finetune")]] = _info(ids[(run, "finetune")], "COMPLETED", "completed", exit_code="0:0")
            for task in TASKS:
                logs = group / run / "evaluations" / task / "logs"
                logs.mkdir(parents=True)
                for epoch in range(3):
                    _eval_log(logs / f"2026-01-01T00-00-0{epoch}_{task}_{epoch}.eval", run, epoch)
                    key = f"{task}_epoch_{epoch}"
                    backend.answer[ids[(run, key)]] = _info(ids[(run, key)], "COMPLETED", "completed", exit_code="0:0")
        for run in runs[100:120]:
            job_id = ids[(run, "finetune")]
            backend.answer[job_id] = _info(job_id, "OUT_OF_MEMORY", "failed", exit_code="0:125", node="gpu1")
        print(f"burst artifacts (300 checkpoints, 900 .eval logs) written in {time.perf_counter() - t:.1f} s")
        results["burst"] = timed_sync(group, backend)
        size = (group / "runs_status.yaml").stat().st_size / 1024
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"sync of {len(ids)} jobs (runs_status.yaml {size:.0f} KiB after the burst):")
    print(f"  {'scenario':<8} {'sync s':>8} {'persist s':>10} {'calls':>6} {'changed':>8} {'done':>6} {'failed':>7}")
    for name, r in results.items():
        print(f"  {name:<8} {r['sync_s']:8.2f} {r['persist_s']:10.2f} {int(r['calls']):6d} {int(r['changed']):8d} "
              f"{int(r['done']):6d} {int(r['newly_failed']):7d}")
    ok = all(r["calls"] == 1 for r in results.values())
    print(f"  backend status queries per sync: {'1 (OK)' if ok else 'NOT 1'}")
    if args.keep:
        print(f"files kept in {root}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
