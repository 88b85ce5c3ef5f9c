"""Benchmark: a 1,000-run sweep through launch-runs on the REAL local SLURM cluster, stub jobs.

What it builds (in a temporary folder): the fake site and design of `benchmarks/plan_1000.py`
with its two Llama models (2 models x 10 LoRA ranks x 50 learning rates, the last epoch
evaluated: 1,000 fine-tunes + 1,000 chained evaluations), planned, delivered and set up by
sweepflow, with cluster settings
`backend: slurm`, `device: cpu`, `max_queued_jobs: 25`, no stagger, 100M memory and 1 CPU per
job. Every generated job script keeps its `#SBATCH` header and gets a stub body (as in
tests/integration/test_launch_slurm.py): a fine-tune sleeps `--seconds` and writes its
epoch_0/ and epoch_1/ checkpoints; an evaluation checks its checkpoint and copies a REAL
inspect-ai `.eval` log (one per run, metadata run/epoch set) into logs/.

Where it runs: its own SLURM cluster (scripts/slurm-local, SLURM_LOCAL_DIR=/tmp/sweepflow-slurm-bench,
ports 6837-6840, accounting on, 64 CPU slots advertised through config_overrides: the stub
jobs sleep, so 25 fit on 2 cores) and its own Prefect server on 127.0.0.1:4260 with `--db sqlite`
(a file in the temporary folder) or `--db postgres` (scripts/postgres-local, 127.0.0.1:5433).
Both servers are started here unless running, and stopped by PID at the end (`--keep-servers`
keeps them). `flows.launch_runs.launch_runs` runs in this process with `poll_seconds`.

What it prints: advance steps, status queries per step and scheduler calls by command (sbatch,
sacct, squeue, scontrol, scancel; every subprocess this process starts is counted), time from
the first sbatch to the last job's end (sacct) against the floor (the jobs' own elapsed time
summed over the cap, and N x seconds / cap for the fine-tunes alone), the bytes every
StatusStore wrote (YAML, cache, journal), this process's peak RSS, and the Prefect task runs
and artifacts of the flow run.

    python benchmarks/sweep_1000.py [--runs 1000] [--seconds 2] [--cap 25] [--poll 2] [--db sqlite|postgres]

`--runs` must be a multiple of 20 (2 models x 10 ranks x learning rates).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from plan_1000 import _ignore_disk_verdict, design_1000  # noqa: E402

LLAMA = ["Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct"]
SLURM_DIR = "/tmp/sweepflow-slurm-bench"
SLURM_PORT = "6837"
PREFECT_PORT = 4260
SLURM_ENV = {"SLURM_LOCAL_DIR": SLURM_DIR, "SLURM_LOCAL_PORT": SLURM_PORT, "SLURM_LOCAL_CPUS": "64", "WITH_DB": "1"}
COMMANDS = ("sbatch", "sacct", "squeue", "scontrol", "scancel")
SAVE = 'save() { mkdir -p "epoch_$1" && echo w > "epoch_$1/model-00001-of-00001.safetensors"; }\n'


def start_slurm() -> bool:
    """Start the benchmark's cluster unless it runs; whether this call started it."""
    env = {**os.environ, **SLURM_ENV}
    script = str(ROOT / "scripts" / "slurm-local")
    if subprocess.run([script, "status"], env=env, capture_output=True).returncode == 0:
        return False
    subprocess.run([script, "start"], env=env, check=True, capture_output=True)
    return True


def stop_slurm() -> None:
    """Stop the benchmark's cluster (slurm-local stops its daemons by PID file)."""
    subprocess.run([str(ROOT / "scripts" / "slurm-local"), "stop"], env={**os.environ, **SLURM_ENV},
                   capture_output=True)


def start_prefect(db: str, folder: Path) -> tuple[subprocess.Popen[bytes], bool]:
    """A Prefect server on 127.0.0.1:PREFECT_PORT on SQLite (in `folder`) or PostgreSQL; (process, pg started)."""
    env = {**os.environ, "PREFECT_HOME": str(folder / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    started_pg = False
    if db == "postgres":
        pg = str(ROOT / "scripts" / "postgres-local")
        if subprocess.run([pg, "status"], capture_output=True).returncode != 0:
            subprocess.run([pg, "start"], check=True, capture_output=True)
            started_pg = True
        url = subprocess.run([pg, "url"], check=True, capture_output=True, text=True).stdout.strip()
    else:
        url = f"sqlite+aiosqlite:///{folder / 'prefect.db'}"
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = url
    log = open(folder / "prefect-server.log", "wb")  # noqa: SIM115  (closed with the process)
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1",
                               "--port", str(PREFECT_PORT)], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PREFECT_PORT}/api/health", timeout=2)
            return server, started_pg
        except OSError:
            time.sleep(1)
    server.terminate()
    raise SystemExit(f"the Prefect server did not answer within 180 s; see {folder / 'prefect-server.log'}")


def make_group(root: Path, runs: int, cap: int) -> Path:
    """Plan, deliver and set up the run group of `runs` fine-tunes under `root`."""
    from tasks.model._design_file import parse_design
    from tasks.planning._deliver import deliver_plan
    from tasks.planning._planner import build_plan
    from tasks.setup._experiment import set_up_group

    _ignore_disk_verdict()
    data = design_1000(root)
    data["name"] = "sweep_bench"
    data["models"] = LLAMA  # the fake site's Qwen folders lack the tokenizer files planning now checks
    data["factors"]["learning_rate"] = [round(k * 1e-5, 7) for k in range(1, runs // 20 + 1)]
    data["cluster"] = {"backend": "slurm", "device": "cpu", "max_queued_jobs": cap, "submit_stagger_seconds": 0,
                       "mem": "100M", "eval_mem": "100M", "cpus_per_task": 1, "time_limit": "10",
                       "eval_time_limit": "10"}
    plan = build_plan(parse_design(data, source="benchmark", base=root), date="2026-01-01")
    group = deliver_plan(plan, now="2026-01-01T00:00:00+00:00")
    set_up_group(group)
    return group


def stub(script: Path, body: str) -> None:
    """Keep the generated #SBATCH lines (but any --gres: the fake GPUs would cap concurrency at 4)."""
    header = [ln for ln in script.read_text().splitlines() if ln.startswith("#SBATCH ") and "--gres" not in ln]
    script.write_text("#!/bin/bash\n" + "\n".join(header) + f"\n\nset -u\ncd {script.parent}\n{body}\n")


def stub_jobs(group: Path, seconds: float, staged: Path) -> int:
    """Stub every fine-tune and evaluation script; the number of runs."""
    from inspect_ai.log import read_eval_log, write_eval_log

    template = read_eval_log(str(next(staged.glob("**/*.eval"))))
    runs = sorted(p.parent for p in group.glob("*/finetune.slurm"))
    for run_dir in runs:
        stub(run_dir / "finetune.slurm", SAVE + f"sleep {seconds}; save 0; save 1")
        for script in run_dir.glob("evaluations/eval*.slurm"):  # one job per checkpoint, each task its own log
            epoch = int(script.stem.rsplit("_", 1)[-1])
            template.eval.metadata = {"run": run_dir.name, "epoch": epoch, "is_finetuned": True}
            tasks = yaml.safe_load(script.with_suffix(".tasks.yaml").read_text())["tasks"]
            copies = []
            for task in tasks:
                log = staged / f"{run_dir.name}_{task['name']}_{epoch}.eval"
                write_eval_log(template, str(log))
                copies.append(f'mkdir -p {task["log_dir"]} && '
                              f'cp {log} "{task["log_dir"]}/$(date +%Y-%m-%dT%H-%M-%S)_cap_${{SLURM_JOB_ID}}.eval"')
            model = run_dir / f"epoch_{epoch}"
            stub(script, f'[ -e {model} ] || exit 2\n' + "\n".join(copies))
    return len(runs)


def stage_one_log(folder: Path) -> None:
    """One successful inspect-ai log from an in-process eval with the offline mockllm provider."""
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import match
    from inspect_ai.solver import generate

    outputs = [ModelOutput.from_content("mockllm/model", t) for t in ("W0", "W1")]
    for output in outputs:
        output.usage = ModelUsage(input_tokens=3, output_tokens=1, total_tokens=4)
    task = Task(dataset=[Sample(input=f"w{i}", target=t) for i, t in enumerate(("W0", "W1"))],
                solver=generate(), scorer=match(), name="cap")
    [log] = inspect_eval(task, model=get_model("mockllm/model", custom_outputs=outputs), display="none",
                         log_dir=str(folder))
    assert log.status == "success"


class Counters:
    """Every subprocess this process starts, by command; advance steps; StatusStores made."""

    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()
        self.by_purpose: Counter[tuple[str, str]] = Counter()  # (backend method, command)
        self.purpose = "other"
        self.first_sbatch: float | None = None
        self.steps = 0
        self.stores: list[Any] = []

    def install(self) -> None:
        """Count subprocesses, advance steps, status stores and backend calls from now on."""
        import flows._launch as launch_module  # the module that defines the flow: its advance_group is patched
        from tasks.model import _status_file as status_file

        real_popen_init = subprocess.Popen.__init__
        counters = self

        def popen_init(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
            name = Path(str(args[0] if isinstance(args, (list, tuple)) else str(args).split()[0])).name
            if name in COMMANDS:
                counters.commands[name] += 1
                counters.by_purpose[(counters.purpose, name)] += 1
                if name == "sbatch" and counters.first_sbatch is None:
                    counters.first_sbatch = time.time()
            real_popen_init(self, args, *rest, **kwargs)

        subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]
        real_step = launch_module.advance_group

        def step(*args: Any, **kwargs: Any) -> Any:
            counters.steps += 1
            return real_step(*args, **kwargs)

        launch_module.advance_group = step  # type: ignore[assignment]
        real_store_init = status_file.StatusStore.__init__

        def store_init(store: Any, *args: Any, **kwargs: Any) -> None:
            real_store_init(store, *args, **kwargs)
            counters.stores.append(store)

        status_file.StatusStore.__init__ = store_init  # type: ignore[method-assign]
        from tasks.backends.slurm import SlurmBackend

        for method in ("query", "jobs_named", "submit", "cancel"):
            setattr(SlurmBackend, method, self._tagged(method, getattr(SlurmBackend, method)))

    def _tagged(self, purpose: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.purpose = purpose
            try:
                return method(*args, **kwargs)
            finally:
                self.purpose = "other"

        return call


def job_times(group: Path) -> tuple[float, float]:
    """(last End as epoch seconds, sum of elapsed seconds) over every job on record, from sacct."""
    from datetime import datetime

    from tasks.model._status_file import StatusStore

    status = StatusStore(group / "runs_status.yaml").read()
    ids = [a.job_id for _, _, s in status.stages() for a in s.attempts if a.job_id]
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(ids), "--format=JobID,End,ElapsedRaw"],
                         check=True, capture_output=True, text=True).stdout
    ends, elapsed = [], 0.0
    for line in out.splitlines():
        _, end, raw = line.split("|")
        if end not in ("Unknown", "None", ""):
            ends.append(datetime.fromisoformat(end).timestamp())
        elapsed += float(raw or 0)
    return max(ends), elapsed


def prefect_objects(flow_run_id: Any) -> tuple[int, int]:
    """(task runs, artifacts) of the flow run."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flt = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    counts = []
    with get_client(sync_client=True) as client:
        for read in (client.read_task_runs, client.read_artifacts):
            total, offset = 0, 0
            while page := read(flow_run_filter=flt, limit=200, offset=offset):  # the server's page limit
                total, offset = total + len(page), offset + 200
            counts.append(total)
    return counts[0], counts[1]

def main() -> int:
    """Build, run, report, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0, help="how long each stub fine-tune sleeps")
    parser.add_argument("--cap", type=int, default=25)
    parser.add_argument("--poll", type=float, default=2.0, help="launch-runs poll_seconds")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--keep-servers", action="store_true")
    args = parser.parse_args()
    if args.runs <= 0 or args.runs % 20 or args.runs > 1000:
        parser.error("--runs must be a multiple of 20, at most 1000")

    folder = Path(tempfile.mkdtemp(prefix="sweep_bench_"))
    folder.chmod(0o755)  # the jobs run as slurm-local's user and read the staged logs
    started_slurm = start_slurm()
    os.environ["SLURM_CONF"] = f"{SLURM_DIR}/etc/slurm.conf"
    server, started_pg = start_prefect(args.db, folder)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{PREFECT_PORT}/api"
    try:
        t = time.monotonic()
        group = make_group(folder, args.runs, args.cap)
        stage_one_log(folder / "staged")
        runs = stub_jobs(group, args.seconds, folder / "staged")
        print(f"{runs} runs planned, set up and stubbed in {time.monotonic() - t:.1f} s ({args.db})", flush=True)

        counters = Counters()
        counters.install()
        from flows.launch_runs import launch_runs

        t = time.monotonic()
        state = launch_runs(str(group), poll_seconds=args.poll, return_state=True)
        wall = time.monotonic() - t
        counts = state.result()
        counters.purpose = "benchmark"  # its own sacct below is not the flow's
        last_end, elapsed_sum = job_times(group)
        tasks_n, artifacts_n = prefect_objects(state.state_details.flow_run_id)
        report(args, runs, counts, counters, wall, last_end, elapsed_sum, tasks_n, artifacts_n)
    finally:
        server.terminate()
        server.wait(30)
        if not args.keep_servers:
            if started_slurm:
                stop_slurm()
            if started_pg:
                subprocess.run([str(ROOT / "scripts" / "postgres-local"), "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def report(args: Any, runs: int, counts: dict[str, int], counters: Counters, wall: float, last_end: float,
           elapsed_sum: float, tasks_n: int, artifacts_n: int) -> None:
    """Print the figures."""
    jobs = sum(counts.values())
    span = last_end - (counters.first_sbatch or last_end)
    status_queries = sum(n for (purpose, _), n in counters.by_purpose.items() if purpose == "query")
    guard = sum(n for (purpose, _), n in counters.by_purpose.items() if purpose == "jobs_named")
    written = sum(store.bytes_written for store in counters.stores)
    print(f"stages: {counts} ({jobs} jobs)")
    print(f"launch-runs wall time: {wall:.1f} s; advance steps: {counters.steps}")
    print(f"scheduler calls: {dict(counters.commands)}")
    print(f"  by purpose: { {f'{p}:{c}': n for (p, c), n in sorted(counters.by_purpose.items())} }")
    print(f"  status queries per advance step {status_queries / max(counters.steps, 1):.2f}; "
          f"duplicate-guard calls per step {guard / max(counters.steps, 1):.2f}")
    print(f"first sbatch -> last job end: {span:.1f} s; floor (job elapsed sum / cap) {elapsed_sum / args.cap:.1f} s; "
          f"fine-tunes alone N x {args.seconds:g} s / cap = {runs * args.seconds / args.cap:.1f} s")
    print(f"status bytes written: {written / 2**20:.1f} MiB; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"Prefect task runs: {tasks_n}; artifacts: {artifacts_n}")


if __name__ == "__main__":
    sys.exit(main())
