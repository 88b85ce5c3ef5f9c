"""Benchmark: one sync-status of a 10,000-job run group: time, persist time, backend calls.

(Part 2 of the sync benchmark; `benchmarks/sync_10000.py` measures parsing 10,000 sacct lines.)
Builds, in a temporary folder, a real run group of 1,000 fine-tuned runs (4 models x 10 ranks
x 25 learning rates, 3 epochs, 3 evaluation tasks at every epoch: 1,000 fine-tunes + 9,000
evaluations = 10,000 jobs) with plan-runs' own code, records a job id for every stage (as
launch-runs would), then times `tasks.execution._sync.sync_status` against an in-memory scheduler that
answers all 10,000 ids:

  poll    every fine-tune RUNNING (elapsed grows), every evaluation PENDING: all 10,000 change
  quiet   the same answer again: nothing changes (the file is still rewritten once)
  burst   100 fine-tunes COMPLETED (3 epoch_N/ checkpoints each, verified on disk), their 900
          evaluations COMPLETED (900 real inspect .eval logs, headers read and checked),
          20 fine-tunes OUT_OF_MEMORY (log tails read), the rest as in poll

"persist" is the locked read-modify-write of runs_status.yaml (`StatusStore.update`: parse,
the sync's own changes, validation, terminal-state protection, dump, atomic replace), as
sync-status reports it; "calls" counts the scheduler status queries (must be 1). The status
store's share is then split out by timing its phases (wrappers around `StatusStore._load` /
`_persist` / the updater), in wall seconds and, in brackets, CPU seconds of this process (the
CPU figure is the one to trust on a machine shared with other work):

  parse   every read of the status in the sync (the one before the scheduler query and the one
          under the lock): hash the YAML, then the JSON cache, or the YAML when it has no cache
  check   the rest of the update: dump and re-validation of the updated status, terminal-state
          protection, lock, freeing the working copies
  write   YAML text (and the JSON cache), atomic replace of runs_status.yaml and of the cache
  store   parse + check + write: the parse + persist time of the issue (target < 1 s)
  apply   the sync's own callback (applying 10,000 decisions): sync logic, not the store's

The last lines time YAML alone on the final file: PyYAML's libyaml loader/dumper as plain
`yaml.load` / `yaml.dump` calls, then as sweepflow calls them (`tasks.core._files`, and the store's
run-by-run writer), and reads/updates through the cache. Against a store without `_load` /
`_persist` (before the cache) only the first table and the plain YAML line are printed.

    python benchmarks/sync_persist_10000.py [--keep]

Reads/writes: only its temporary folder (removed unless --keep).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from plan_1000 import _ignore_disk_verdict, design_1000  # noqa: E402

from tasks.backends._base import JobInfo, JobStatus  # noqa: E402
from tasks.model._status import Attempt, RunsStatus  # noqa: E402
from tasks.model._status_file import StatusStore

TASKS = ["cap", "cap_b", "cap_c"]


class InMemoryScheduler:
    """Answers `query` from a dict; counts calls like a real backend."""

    name = "memory"

    def __init__(self) -> None:
        self.calls = 0
        self.answer: dict[str, JobInfo] = {}

    def submit(self, script: Path, cwd: Path, after_ok: list[str] | None = None, overrides: object = None,
               script_args: list[str] | None = None) -> str:
        raise NotImplementedError

    def query(self, job_ids: list[str], recent: object = ()) -> dict[str, JobInfo]:
        self.calls += 1
        return {i: self.answer[i] for i in job_ids if i in self.answer}

    def jobs_named(self, names: list[str]) -> dict[str, list[JobInfo]]:
        return {}

    def cancel(self, job_ids: list[str]) -> None:
        pass


def _info(job_id: str, raw: str, status: JobStatus, **fields: object) -> JobInfo:
    return JobInfo(job_id=job_id, raw_state=raw, status=status, **fields)  # type: ignore[arg-type]


def build_group(root: Path) -> tuple[Path, dict[tuple[str, str], str]]:
    from tasks.model._design_file import parse_design
    from tasks.planning._deliver import deliver_plan
    from tasks.planning._planner import build_plan

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


class StorePhases:
    """Time (wall and CPU) spent in StatusStore's phases, by wrapping its methods (class-wide)."""

    PHASES = ("parse", "update", "write", "apply")

    def __init__(self) -> None:
        self.split = all(hasattr(StatusStore, name) for name in ("_load", "_persist"))  # older stores: no split
        self.reset()
        if self.split:
            StatusStore._load = self._timed(StatusStore._load, "parse")  # type: ignore[method-assign]
            StatusStore._persist = self._timed(StatusStore._persist, "write")  # type: ignore[method-assign]
        update = StatusStore.update
        timed = self._timed

        def timed_update(store: StatusStore, fn, **kwargs):  # type: ignore[no-untyped-def]
            return update(store, timed(fn, "apply"), **kwargs)

        StatusStore.update = functools.wraps(update)(timed(timed_update, "update"))  # type: ignore[method-assign]

    def reset(self) -> None:
        self.wall = dict.fromkeys(self.PHASES, 0.0)
        self.cpu = dict.fromkeys(self.PHASES, 0.0)
        self.reads = 0

    def _timed(self, fn, phase: str):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[phase] += time.perf_counter() - wall
                self.cpu[phase] += time.process_time() - cpu
                self.reads += phase == "parse"

        return run

    def split_of(self, clock: dict[str, float]) -> dict[str, float]:
        """parse (every read), check (the rest of update: copy, validation, protection), write."""
        check = clock["update"] - clock["apply"] - clock["write"] - clock["parse"] * (self.reads - 1) / self.reads
        return {"parse": clock["parse"], "check": check, "write": clock["write"], "apply": clock["apply"],
                "store": clock["parse"] + check + clock["write"]}


def timed_sync(group: Path, backend: InMemoryScheduler, phases: StorePhases | None = None) -> dict[str, float]:
    from tasks.execution._sync import sync_jobs

    calls = backend.calls
    if phases:
        phases.reset()
    t, cpu = time.perf_counter(), time.process_time()
    report = sync_jobs(group, backend)
    total, total_cpu = time.perf_counter() - t, time.process_time() - cpu
    result = {"sync_s": total, "sync_cpu_s": total_cpu, "persist_s": report.persist_s, "calls": backend.calls - calls,
              "queried": report.queried, "changed": report.changed, "done": report.done,
              "newly_failed": len(report.newly_failed)}
    if phases and phases.split and phases.reads:  # (the read under the lock is the last one)
        result.update({f"{k}_s": v for k, v in phases.split_of(phases.wall).items()}, reads=phases.reads)
        result.update({f"{k}_cpu_s": v for k, v in phases.split_of(phases.cpu).items()})
    return result


def yaml_alone(path: Path) -> list[str]:
    """Lines timing YAML load/dump of `path` alone, plain PyYAML and as sweepflow does it."""
    import yaml

    import tasks.model._status_file as status_module
    from tasks.core._files import dump_yaml, read_yaml

    def clock(fn):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        value = fn()
        return value, time.perf_counter() - started

    raw = path.read_bytes()
    text = raw.decode()
    options = {"sort_keys": False, "allow_unicode": True, "default_flow_style": False, "width": 100}
    data, load_s = clock(lambda: yaml.load(text, Loader=yaml.CSafeLoader))  # noqa: S506 - a safe loader
    plain, dump_s = clock(lambda: yaml.dump(data, Dumper=yaml.CSafeDumper, **options))
    _, fs_load_s = clock(lambda: read_yaml(path))
    ours, fs_dump_s = clock(lambda: dump_yaml(data))
    lines = [f"YAML alone ({len(raw) / 1024:.0f} KiB): plain yaml.load with CSafeLoader {load_s:.2f} s, yaml.dump with "
             f"CSafeDumper {dump_s:.2f} s;",
             f"  tasks.core._files: read_yaml {fs_load_s:.2f} s, dump_yaml {fs_dump_s:.2f} s ({'same' if ours == plain else 'DIFFERENT'} text)"]
    render = getattr(status_module, "_render", None)
    if render is not None:  # the store's writer: run by run
        (ours, _, _), render_s = clock(lambda: render(data, "now"))
        same = ours.decode() == status_module.render_template("state/runs_status.yaml.j2", now="now", body=plain)
        lines[-1] += f"; runs_status.yaml written run by run {render_s:.2f} s ({'same' if same else 'DIFFERENT'} text)"
    store = StatusStore(path)
    if len(raw) >= getattr(status_module, "CACHE_MIN_BYTES", len(raw) + 1):
        _, hash_s = clock(lambda: hashlib.sha256(raw).hexdigest())
        status, read_s = clock(store.read)
        _, update_s = clock(lambda: store.update(lambda s: None))
        lines.append(f"with the cache ({store.cache_path.stat().st_size / 1024:.0f} KiB JSON): StatusStore.read {read_s:.2f} s "
                     f"(sha256 of the YAML {hash_s * 1000:.0f} ms); StatusStore.update changing nothing {update_s:.2f} s")
    return lines


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
        phases = StorePhases()
        results = {"poll": timed_sync(group, backend, phases), "quiet": timed_sync(group, backend, phases)}

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
        results["burst"] = timed_sync(group, backend, phases)
        size = (group / "runs_status.yaml").stat().st_size / 1024
        alone = yaml_alone(group / "runs_status.yaml")
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
    if phases.split:
        print("status store share, wall s (CPU s of this process): parse = every read of the status; persist = check +")
        print("write; store = parse + persist, the issue's target (< 1 s); apply = sync's own callback, not the store:")
        print(f"  {'scenario':<8} {'parse':>12} {'reads':>5} {'check':>12} {'write':>12} {'store':>12} {'apply':>12}  target")
        for name, r in results.items():
            cells = " ".join(f"{r[f'{k}_s']:5.2f} ({r[f'{k}_cpu_s']:4.2f})" for k in ("parse",))
            rest = " ".join(f"{r[f'{k}_s']:5.2f} ({r[f'{k}_cpu_s']:4.2f})" for k in ("check", "write", "store", "apply"))
            verdict = "< 1 s OK" if r["store_s"] < 1.0 else (">= 1 s wall; CPU < 1 s" if r["store_cpu_s"] < 1.0 else ">= 1 s")
            print(f"  {name:<8} {cells} {int(r['reads']):5d} {rest}  {verdict}")
        print("  (sync CPU s: " + ", ".join(f"{n} {r['sync_cpu_s']:.2f}" for n, r in results.items()) + ")")
    for line in alone:
        print(line)
    if args.keep:
        print(f"files kept in {root}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
