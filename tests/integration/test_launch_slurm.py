"""launch-runs on the REAL local SLURM cluster: retries by cause, chained evaluations, crash-resume.

Nothing between sweepflow and SLURM is faked: a real run group (plan -> deliver -> setup, as in
tests/support/fake_scheduler.make_group) whose generated job scripts keep their `#SBATCH` header (job
name, output, time, memory, CPUs, GPU) but get small stub bodies instead of `tune run` /
`inspect eval`, submitted by the real flow or `submit_pending` to the cluster of the fixtures in
tests/integration/conftest.py.

1. `test_launch_flow_retries_by_cause` (with accounting, and again without it: sacct fails,
   squeue/scontrol answer): `flows.launch_runs.launch_runs` in a temporary Prefect server on
   5 fine-tunes, each with 2 chained evaluations:
     A succeeds (writes epoch_0/ and epoch_1/ checkpoints)
     B exits 3 (a code error: failed, never retried)
     C saves epoch_0 + recipe state then sleeps past its 1-minute limit (TIMEOUT: resumed after
       epoch_0 with time x2; the resumed attempt succeeds)
     D prints a torch CUDA OOM and exits 1 (batch halved, accumulation doubled; succeeds then)
     E is cancelled with scancel while it runs (cancelled, never retried)
   Evaluation stubs copy a REAL inspect-ai `.eval` log (made once at test setup with inspect's
   offline model provider, its metadata set to the run and epoch) into logs/, as inspect would.
   Checked: runs_status.yaml per stage (status, reason, attempts, causes, remedies), the
   finetune.yaml of C and D, the re-chained evaluations' dependencies (seen in the queue while
   they waited), the Prefect task runs (one per fine-tune attempt, `finetune-<run>-attempt<N>`,
   one per retry decision, `retry-<run>-<cause>-attempt<N>`, and no other), and the delay
   fine-tune end -> evaluation start (scontrol).
2. `test_sigkill_during_submission_then_rerun_never_duplicates`: `submit_pending` in a
   subprocess on 10 runs (30 jobs, stagger 1 s) is SIGKILLed after a few submissions; one more
   fine-tune is submitted by hand as if the process had died between the scheduler's answer
   and the status write, and a held job of the same name as another pending fine-tune from
   another run group's folder; `submit_pending` again: every stage has exactly one job in SLURM
   (by name, among this group's jobs: same working directory), the hand-submitted one adopted,
   the other group's job left alone.
3. `test_cancel_runs_flow_then_rerun_on_the_real_cluster`: the cancel-runs flow on one run
   (its fine-tune running, its evaluations waiting on it), then on the rest; launch-runs with
   `rerun_failed_finetunes` submits everything again, evaluations re-chained to the new jobs.

Every job these tests create is cancelled at the end (scancel of those ids only).
Timings are printed (run with -s to see them): the 1-minute TIMEOUT dominates test 1.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.fake_scheduler import make_group  # a real run group; nothing else of that module

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

MODEL = "Llama-3.2-1B-Instruct"
EPOCHS = (0, 1)
# small jobs: the local node has 2 CPUs and ~22 GB; a 1-minute fine-tune limit for the TIMEOUT case
SITE = {"mem": "100M", "eval_mem": "100M", "cpus_per_task": 1, "time_limit": "1", "eval_time_limit": "5",
        "backend": "slurm", "max_queued_jobs": 50, "use_orchestrator_env": True}

A, B, C, D, E = (f"{MODEL}_rank{r}" for r in (1, 2, 3, 4, 5))


# ---------------------------------------------------------------------------- the run group


def _group(root: Path, ranks: list[int], **site: Any) -> Path:
    root.chmod(0o755)
    return make_group(root, models=[MODEL], factors={"lora_rank": ranks}, controls=False,
                      training={"epochs": len(EPOCHS)}, cluster={**SITE, **site})


def _stub(script: Path, body: str) -> None:
    """Keep the generated script's #SBATCH lines; replace everything else by `body`."""
    header = [ln for ln in script.read_text().splitlines() if ln.startswith("#SBATCH ")]
    assert any(ln.startswith("#SBATCH --job-name=") for ln in header), script
    script.write_text("#!/bin/bash\n" + "\n".join(header) + f"\n\nset -u\ncd {script.parent}\n{body}\n")


SAVE = 'save() { mkdir -p "epoch_$1" && echo w > "epoch_$1/model-00001-of-00001.safetensors" && echo a > "epoch_$1/adapter_model.pt"; }\n'
FINETUNE_BODIES = {
    "ok": SAVE + 'echo "training"; sleep 2; save 0; save 1; echo "done"',
    "error": 'echo "Traceback (most recent call last):"; echo "ValueError: bad record in the dataset" >&2; exit 3',
    # the resumed attempt (finetune.yaml rewritten by the TIMEOUT remedy) only has epoch_1 to do
    "timeout": SAVE + (
        "if grep -q '^resume_from_checkpoint: true' finetune.yaml; then\n"
        '  echo "resuming after epoch_0"; sleep 3; save 1; exit 0\nfi\n'
        'save 0; sleep 1; mkdir -p recipe_state; echo s > recipe_state/recipe_state.pt\n'
        'echo "epoch_0 saved; epoch_1 is too slow"; sleep 600'
    ),
    # the retry (batch 4 -> 2 in finetune.yaml) fits in memory
    "oom": SAVE + (
        "if grep -q '^batch_size: 2$' finetune.yaml; then\n"
        '  echo "batch 2 fits"; sleep 3; save 0; save 1; exit 0\nfi\n'
        'echo "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"; exit 1'
    ),
    "cancel": 'echo "training slowly"; sleep 600',
    "sleep": 'echo "training"; sleep 600',
}


def _stub_evaluation(group: Path, run: str, epoch: int, staged: Path | None) -> None:
    """As the real script: stop when the checkpoint is missing, else write the task's .eval log in cap/logs/."""
    script = group / run / "evaluations" / f"eval_epoch_{epoch}.slurm"
    model = group / run / f"epoch_{epoch}"
    write = (f'mkdir -p cap/logs && cp {staged} "cap/logs/$(date +%Y-%m-%dT%H-%M-%S)_cap_${{SLURM_JOB_ID}}.eval"'
             if staged else "sleep 600")
    _stub(script, f'[ -e {model} ] || {{ echo "sweepflow: model not found: {model}" >&2; exit 2; }}\n'
                  f'{write}\necho "sweepflow: evaluation exited with 0"')


# ---------------------------------------------------------------------------- real .eval logs


def _stage_eval_logs(folder: Path, runs: list[str]) -> dict[tuple[str, int], Path]:
    """One successful inspect-ai log per (run, epoch), from ONE in-process eval with the offline
    `mockllm/model` provider (as tests/support/finished_runs.py); the copies differ in their metadata."""
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.log import write_eval_log
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import match
    from inspect_ai.solver import generate

    targets = ["W0", "W1"]
    outputs = [ModelOutput.from_content("mockllm/model", t) for t in targets]
    for output in outputs:
        output.usage = ModelUsage(input_tokens=3, output_tokens=1, total_tokens=4)
    task = Task(dataset=[Sample(input=f"w{i}", target=t) for i, t in enumerate(targets)], solver=generate(),
                scorer=match(), name="cap")
    [log] = inspect_eval(task, model=get_model("mockllm/model", custom_outputs=outputs), display="none",
                         log_dir=str(folder / "inspect"))
    assert log.status == "success"
    staged = {}
    for run in runs:
        for epoch in EPOCHS:
            log.eval.metadata = {"run": run, "epoch": epoch, "is_finetuned": True}
            path = folder / f"{run}_epoch_{epoch}.eval"
            write_eval_log(log, str(path))
            staged[(run, epoch)] = path
    folder.chmod(0o755)
    return staged


# ---------------------------------------------------------------------------- helpers on the cluster


def _status(group: Path):
    from tasks.model._status_file import StatusStore

    return StatusStore(group / "runs_status.yaml").read()


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text and text not in ("Unknown", "None") else None
    except ValueError:
        return None


class QueueWatcher(threading.Thread):
    """Polls the real queue every 0.5 s: remembers each waiting job's dependency (scontrol clears
    it once satisfied) and cancels the job named `cancel_name` in `cancel_dir` once it RUNS."""

    def __init__(self, cluster: Any, cancel_name: str | None = None, cancel_dir: Path | None = None):
        super().__init__(daemon=True)
        self.cluster, self.cancel_name, self.cancel_dir = cluster, cancel_name, cancel_dir
        self.deps: dict[str, set[str]] = {}
        self.cancelled: str | None = None
        self.cancelled_at: float | None = None
        self.halt = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.halt.is_set():
            proc = self.cluster.run("squeue", "-h", "-t", "PD,R", "-o", "%i|%T|%j|%E|%Z", check=False)
            if proc.returncode != 0:
                self.errors.append(proc.stderr.strip())
            for line in proc.stdout.splitlines():
                job_id, state, name, dep, workdir = (line.split("|") + [""] * 5)[:5]
                if state == "PENDING" and dep not in ("", "(null)"):
                    self.deps.setdefault(job_id, set()).add(dep)
                if (self.cancelled is None and name == self.cancel_name and state == "RUNNING"
                        and Path(workdir) == self.cancel_dir):
                    self.cluster.run("scancel", job_id)
                    self.cancelled, self.cancelled_at = job_id, time.monotonic()
            self.halt.wait(0.5)

    def after_ok(self, job_id: str) -> set[str]:
        """The job ids it waited on (`afterok:123(unfulfilled)` -> {"123"})."""
        return {m for dep in self.deps.get(job_id, ()) for m in re.findall(r"afterok:(\d+)", dep)}


def _ids_of(status: Any) -> list[str]:
    return [a.job_id for _, _, s in status.stages() for a in s.attempts if a.job_id]


def _job_ids(group: Path) -> list[str]:
    return _ids_of(_status(group))


def _cancel_all(cluster: Any, ids: list[str]) -> None:
    ids = sorted(set(ids))
    if ids:
        cluster.run("scancel", *ids, check=False)


def _group_jobs(cluster: Any, group: Path) -> list[tuple[str, str, str]]:
    """(job id, name, state) of every job SLURM knows (queued or ended) whose working directory is in `group`."""
    out = cluster.run("squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%Z").stdout
    jobs = []
    for line in out.splitlines():
        job_id, name, state, workdir = line.split("|", 3)
        if Path(workdir) == group or group in Path(workdir).parents:
            jobs.append((job_id, name, state))
    return jobs


# ---------------------------------------------------------------------------- 1. the flow, retries by cause


def _all_task_runs(flow_run_id: Any) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def _prefect_task_runs(flow_run_id: Any, names: list[str], timeout: float = 60) -> dict[str, Any]:
    """The named task runs of the flow run once their final states reached the server (events are
    recorded a moment after the flow returns), with their state histories."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            found = {r.name: r for r in runs if r.name in names}
            if (len(found) == len(names) and all(r.state is not None and r.state.is_final() for r in found.values())) \
                    or time.monotonic() > deadline:
                return {name: (run, [s.name for s in client.read_task_run_states(run.id)]) for name, run in found.items()}
            time.sleep(1)


@pytest.mark.prefect
@pytest.mark.parametrize("accounting", [True, False], ids=["sacct", "no-sacct"])
def test_launch_flow_retries_by_cause(accounting: bool, request: pytest.FixtureRequest, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flows.launch_runs import launch_runs

    cluster = request.getfixturevalue("slurm_cluster_db" if accounting else "slurm_cluster_nodb")
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))  # sbatch/squeue/... called by the flow read it
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    group = _group(tmp_path, [1, 2, 3, 4, 5], submit_stagger_seconds=0)
    kinds = {A: "ok", B: "error", C: "timeout", D: "oom", E: "cancel"}
    staged = _stage_eval_logs(tmp_path / "staged", list(kinds))
    for run, kind in kinds.items():
        _stub(group / run / "finetune.slurm", FINETUNE_BODIES[kind])
        for epoch in EPOCHS:
            _stub_evaluation(group, run, epoch, staged[(run, epoch)])
    timings["setup"] = time.monotonic() - t0

    watcher = QueueWatcher(cluster, cancel_name=E, cancel_dir=group / E)
    watcher.start()
    try:
        t = time.monotonic()
        with prefect_test_harness(server_startup_timeout=120):
            timings["prefect server"] = time.monotonic() - t
            t = time.monotonic()
            state = launch_runs(str(group), poll_seconds=2, max_attempts=3, return_state=True)
            timings["launch-runs"] = time.monotonic() - t
            names = [f"finetune-{run}-attempt1" for run in kinds] + [f"finetune-{run}-attempt2" for run in (C, D)]
            names += [f"retry-{C}-timeout-attempt1", f"retry-{D}-oom-attempt1", f"retry-{B}-error-attempt1"]
            task_runs = _prefect_task_runs(state.state_details.flow_run_id, names)
            all_task_runs = _all_task_runs(state.state_details.flow_run_id)  # the server stops with the harness
        watcher.halt.set()
        watcher.join(5)
        assert state.is_completed(), f"launch-runs ended {state.name}: {state.message}"
        counts = state.result()
        assert counts == {"completed": 9, "failed": 1, "cancelled": 5}, counts
        assert watcher.cancelled, "E never ran, so it was never cancelled"

        status = _status(group)

        def stage(run: str, key: str = "finetune"):
            return status.stage(run, key)

        evals = [f"cap_epoch_{e}" for e in EPOCHS]

        # A: completed at once, its evaluations too
        assert stage(A).status == "completed" and len(stage(A).attempts) == 1
        assert stage(A).scheduler_state == "COMPLETED" and stage(A).attempts[0].elapsed_s is not None
        for key in evals:
            assert stage(A, key).status == "completed" and stage(A, key).output.endswith(".eval"), stage(A, key)
            assert watcher.after_ok(stage(A, key).job_id) == {stage(A).job_id}

        # B: code error, never retried; its evaluations killed by SLURM (afterok never satisfied)
        b = stage(B)
        assert b.status == "failed" and len(b.attempts) == 1, b
        assert b.scheduler_state == "FAILED" and b.exit_code == "3:0", b
        assert b.attempts[0].cause == "error" and "job failed (FAILED, exit 3:0)" in b.reason, b
        assert b.attempts[0].remedy.startswith("not retried: code or data error"), b.attempts[0]
        for key in evals:
            assert (stage(B, key).status, stage(B, key).reason) == ("cancelled", "fine-tune failed"), stage(B, key)
            assert len(stage(B, key).attempts) == 1

        # C: TIMEOUT -> resumed after epoch_0 with twice the time -> completed
        c = stage(C)
        assert c.status == "completed" and len(c.attempts) == 2, c
        first, second = c.attempts
        assert first.cause == "timeout" and first.scheduler_state == "TIMEOUT", first
        assert first.remedy == "TIMEOUT: resume after epoch_0 with time 1→00:02:00", first.remedy
        assert (second.time_limit, second.resume_epoch, second.scheduler_state) == ("00:02:00", 0, "COMPLETED"), second
        assert cluster.job(second.job_id)["TimeLimit"] == "00:02:00"
        assert cluster.job(first.job_id)["TimeLimit"] == "00:01:00"
        c_yaml = yaml.safe_load((group / C / "finetune.yaml").read_text())
        assert c_yaml["resume_from_checkpoint"] is True
        assert c_yaml["checkpointer"]["recipe_checkpoint"] == "recipe_state/recipe_state.pt"
        assert c_yaml["checkpointer"]["adapter_checkpoint"] == "epoch_0/adapter_model.pt"
        assert c.overrides is not None and c.overrides.resume_epoch == 0
        # epoch_0 was saved before the TIMEOUT: its evaluation starts at once; epoch_1 waits for the new job
        for key in evals:
            assert stage(C, key).status == "completed", stage(C, key)
        for key in evals:  # the first evaluation jobs were killed with the first fine-tune
            assert len(stage(C, key).attempts) == 2, stage(C, key)
            assert watcher.after_ok(stage(C, key).attempts[0].job_id) == {first.job_id}
        assert watcher.after_ok(stage(C, "cap_epoch_1").job_id) == {second.job_id}
        assert watcher.after_ok(stage(C, "cap_epoch_0").job_id) == set()
        assert cluster.job(stage(C, "cap_epoch_0").job_id).get("Dependency") == "(null)"

        # D: OOM -> batch halved, accumulation doubled (same effective batch) -> completed
        d = stage(D)
        assert d.status == "completed" and len(d.attempts) == 2, d
        first, second = d.attempts
        assert first.cause == "oom" and first.scheduler_state == "FAILED" and "out of memory" in first.reason, first
        assert (first.batch_size, first.gradient_accumulation_steps) == (4, 1), first
        assert (second.batch_size, second.gradient_accumulation_steps) == (2, 2), second
        assert first.remedy.startswith("OOM: batch 4→2, grad accumulation 1→2"), first.remedy
        d_yaml = yaml.safe_load((group / D / "finetune.yaml").read_text())
        assert (d_yaml["batch_size"], d_yaml["gradient_accumulation_steps"]) == (2, 2)
        assert d_yaml["resume_from_checkpoint"] is False
        for key in evals:  # a restart from scratch: both evaluations again, chained to the new job
            e = stage(D, key)
            assert e.status == "completed" and len(e.attempts) == 2, e
            assert watcher.after_ok(e.job_id) == {second.job_id}
            assert watcher.after_ok(e.attempts[0].job_id) == {first.job_id}

        # E: cancelled while it ran, never retried; its evaluations killed
        e_ft = stage(E)
        assert e_ft.status == "cancelled" and len(e_ft.attempts) == 1 and e_ft.job_id == watcher.cancelled, e_ft
        assert e_ft.attempts[0].cause == "cancelled" and "cancelled by a user" in e_ft.reason, e_ft
        assert e_ft.scheduler_state.startswith("CANCELLED"), e_ft
        for key in evals:
            assert (stage(E, key).status, stage(E, key).reason) == ("cancelled", "fine-tune failed"), stage(E, key)

        # every job id in the status file is a real SLURM job of this group, and none is left queued
        ours = {job_id: (name, st) for job_id, name, st in _group_jobs(cluster, group)}
        assert set(_job_ids(group)) == set(ours), (sorted(_job_ids(group)), ours)
        assert not [j for j, (_, st) in ours.items() if st in ("PENDING", "RUNNING")], ours

        # Prefect: one task per fine-tune attempt and one per retry decision, named by run, cause and
        # attempt (Completed: resubmitted; Failed: not retried); nothing per poll
        assert set(task_runs) == set(names), sorted(task_runs)
        for run in (A, C, D):
            assert task_runs[f"finetune-{run}-attempt{1 if run == A else 2}"][0].state.is_completed(), run
        for name in (f"finetune-{B}-attempt1", f"finetune-{C}-attempt1", f"finetune-{D}-attempt1",
                     f"finetune-{E}-attempt1", f"retry-{B}-error-attempt1"):
            assert task_runs[name][0].state.is_failed(), name
        for name in (f"retry-{C}-timeout-attempt1", f"retry-{D}-oom-attempt1"):
            assert task_runs[name][0].state.is_completed(), name
        assert len(all_task_runs) == len(names), sorted(r.name for r in all_task_runs)

        # measured: fine-tune end -> its evaluation's start (scontrol, 1 s resolution)
        delays = []
        for run in (A, C, D):
            for key in evals:
                ev = stage(run, key)
                [parent] = watcher.after_ok(ev.job_id) or {None}
                if parent is None:
                    continue
                end, start = _when(cluster.job(parent).get("EndTime")), _when(cluster.job(ev.job_id).get("StartTime"))
                if end and start:
                    delays.append((start - end).total_seconds())
        timeout_s = [a.elapsed_s for a in stage(C).attempts][0]
        print(f"\n[{request.node.callspec.id}] fine-tune end -> evaluation start: {sorted(delays)} s "
              f"(n={len(delays)}); C's TIMEOUT attempt ran {timeout_s} s; E cancelled "
              f"{watcher.cancelled_at - t0:.1f} s after the start" if watcher.cancelled_at else "")
        assert delays and max(delays) <= 10, delays
    finally:
        watcher.halt.set()
        _cancel_all(cluster, _job_ids(group) + [j for j, _, _ in _group_jobs(cluster, group)])
        timings["total"] = time.monotonic() - t0
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), file=sys.stderr)


# ---------------------------------------------------------------------------- 2. SIGKILL mid-submission


KILLED_SUBMIT = """
import sys
from tasks.backends.slurm import SlurmBackend
from tasks.model._cluster import cluster_settings
from tasks.model._plan_file import load_plan
from tasks.execution._submit import submit_pending

group = sys.argv[1]
submit_pending(group, SlurmBackend(), cluster_settings(load_plan(group).design))
print("finished without being killed", flush=True)
"""


@pytest.mark.parametrize("accounting", [True, False], ids=["sacct", "no-sacct"])
def test_sigkill_during_submission_then_rerun_never_duplicates(accounting: bool, request: pytest.FixtureRequest,
                                                               tmp_path: Path) -> None:
    from tasks.backends.slurm import SlurmBackend
    from tasks.execution._submit import submit_pending
    from tasks.model._cluster import cluster_settings
    from tasks.model._plan_file import load_plan

    cluster = request.getfixturevalue("slurm_cluster_db" if accounting else "slurm_cluster_nodb")
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    ranks = list(range(11, 21))
    group = _group(tmp_path, ranks, submit_stagger_seconds=1, time_limit="10")
    runs = [f"{MODEL}_rank{r}" for r in ranks]
    for run in runs:  # jobs that stay queued or running: nothing ends while the test looks
        _stub(group / run / "finetune.slurm", FINETUNE_BODIES["sleep"])
        for epoch in EPOCHS:
            _stub_evaluation(group, run, epoch, None)
    expected = {run for run in runs} | {f"{run}__eval_epoch_{e}" for run in runs for e in EPOCHS}
    timings["setup"] = time.monotonic() - t0

    env = {**cluster.env, "PYTHONPATH": str(ROOT)}
    created: list[str] = []
    proc = None
    try:
        t = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", KILLED_SUBMIT, str(group)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while len(_job_ids(group)) < 5:  # 1 fine-tune + its 2 evaluations, then the next fine-tune...
            assert proc.poll() is None, f"submit_pending ended before it was killed: {proc.stdout.read()}"
            assert time.monotonic() < deadline, "no submission recorded in 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        timings["until SIGKILL"] = time.monotonic() - t
        assert proc.returncode == -signal.SIGKILL
        before = _status(group)
        recorded = {run: before.stage(run).job_id for run in runs if before.stage(run).job_id}
        in_slurm_at_kill = _group_jobs(cluster, group)
        created += [j for j, _, _ in in_slurm_at_kill]
        assert 2 <= len(recorded) < len(runs) - 1, recorded

        # as if the process had died between sbatch's answer and the status write: a job of the
        # next pending fine-tune exists in SLURM, the status file does not know it
        lost_run = next(run for run in runs if run not in recorded)
        proc_lost = subprocess.run(["sbatch", "--parsable", "finetune.slurm"], cwd=group / lost_run, env=cluster.env,
                                   capture_output=True, text=True, timeout=30)
        assert proc_lost.returncode == 0, proc_lost.stderr
        lost = proc_lost.stdout.strip().split(";")[0]
        created.append(lost)
        assert before.stage(lost_run).status == "pending"
        # another run group's job of the same name (same design planned on another day), held in
        # the queue: it must not be taken for ours (told apart by its submit folder, WorkDir)
        foreign_run = next(run for run in runs if run not in recorded and run != lost_run)
        foreign_dir = tmp_path / "other_group" / foreign_run
        foreign_dir.mkdir(parents=True)
        (foreign_dir / "finetune.slurm").write_text((group / foreign_run / "finetune.slurm").read_text())
        proc_foreign = subprocess.run(["sbatch", "--parsable", "--hold", "finetune.slurm"], cwd=foreign_dir,
                                      env=cluster.env, capture_output=True, text=True, timeout=30)
        assert proc_foreign.returncode == 0, proc_foreign.stderr
        foreign = proc_foreign.stdout.strip().split(";")[0]
        created.append(foreign)

        t = time.monotonic()
        cfg = cluster_settings(load_plan(group).design)
        report = submit_pending(group, SlurmBackend(env=cluster.env), cfg)
        timings["re-run"] = time.monotonic() - t
        created += _job_ids(group)
        assert report.complete and not report.failed, report

        jobs = _group_jobs(cluster, group)
        created += [j for j, _, _ in jobs]
        by_name: dict[str, list[str]] = {}
        for job_id, name, _ in jobs:
            by_name.setdefault(name, []).append(job_id)
        duplicates = {n: ids for n, ids in by_name.items() if len(ids) > 1}
        assert not duplicates, duplicates
        assert set(by_name) == expected, set(by_name) ^ expected
        after = _status(group)
        for run, key, stage in after.stages():
            # one evaluation job per checkpoint: stage cap_epoch_N is job {run}__eval_epoch_N
            name = run if key == "finetune" else f"{run}__{key.replace('cap_', 'eval_', 1)}"
            assert stage.status in ("submitted", "running") and [stage.job_id] == by_name[name], (run, key, stage)
            assert len(stage.attempts) == 1, (run, key, stage.attempts)
        for run, job_id in recorded.items():  # what the killed process recorded is kept
            assert after.stage(run).job_id == job_id
        assert after.stage(lost_run).job_id == lost
        # adopted: the hand-submitted fine-tune, plus any job the killed process had submitted
        # but not yet recorded (SIGKILL between sbatch's answer and the status write)
        unrecorded = {j for j, _, _ in in_slurm_at_kill} - set(_ids_of(before))
        assert {a.job_id for a in report.adopted} == unrecorded | {lost}, (report.adopted, unrecorded)
        assert (lost_run, "finetune", lost) in [(a.run, a.stage, a.job_id) for a in report.adopted]
        assert "adopted" in (after.stage(lost_run).attempts[0].reason or "")
        assert after.stage(foreign_run).job_id not in (None, foreign) and foreign not in _ids_of(after)
        # the evaluations of the adopted fine-tune wait on it
        for epoch in EPOCHS:
            job = cluster.job(after.stage(lost_run, f"cap_epoch_{epoch}").job_id)
            assert f"afterok:{lost}" in job.get("Dependency", ""), job
        if accounting:  # the accounting database agrees: one job per name
            ids = ",".join(sorted({stage.job_id for _, _, stage in after.stages()}))
            deadline = time.monotonic() + 30
            while True:
                out = cluster.run("sacct", "-X", "-P", "-n", "-j", ids, "-o", "JobID,JobName").stdout
                rows = [ln.split("|") for ln in out.splitlines() if ln.strip()]
                names = [r[1] for r in rows]
                if set(names) == expected or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert sorted(names) == sorted(expected), out
        print(f"\n[{request.node.callspec.id}] killed with {len(_ids_of(before))} job ids recorded "
              f"({len(recorded)} fine-tunes), {len(in_slurm_at_kill)} jobs in SLURM ({len(unrecorded)} not recorded); "
              f"the re-run submitted {len(report.submitted)}, adopted {len(report.adopted)}, "
              f"skipped {report.already_submitted}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        _cancel_all(cluster, created + _job_ids(group) + [j for j, _, _ in _group_jobs(cluster, group)])
        timings["total"] = time.monotonic() - t0
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), file=sys.stderr)


# ---------------------------------------------------------------------------- 3. cancel-runs, then run again


@pytest.mark.prefect
def test_cancel_runs_flow_then_rerun_on_the_real_cluster(slurm_cluster_nodb: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """cancel-runs on one run (its fine-tune running, its evaluations waiting), then on the rest;
    launch-runs with rerun_failed_finetunes submits them all again, chained as before."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.cancel_runs import cancel_runs
    from flows.launch_runs import launch_runs
    from tasks.backends.slurm import SlurmBackend
    from tasks.execution._submit import submit_pending
    from tasks.model._cluster import cluster_settings
    from tasks.model._plan_file import load_plan

    cluster = slurm_cluster_nodb
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    group = _group(tmp_path, [31, 32], submit_stagger_seconds=0, time_limit="10")
    first, second = f"{MODEL}_rank31", f"{MODEL}_rank32"
    for run in (first, second):
        _stub(group / run / "finetune.slurm", FINETUNE_BODIES["sleep"])
        for epoch in EPOCHS:
            _stub_evaluation(group, run, epoch, None)
    created: list[str] = []
    try:
        report = submit_pending(group, SlurmBackend(env=cluster.env), cluster_settings(load_plan(group).design))
        created += _job_ids(group)
        assert len(report.submitted) == 6
        cluster.wait_state(_status(group).stage(first).job_id, {"RUNNING"})
        with prefect_test_harness(server_startup_timeout=120):
            state = cancel_runs(str(group), runs=[first], reason="bad seed", return_state=True)
            assert state.is_completed(), state.message
            ids_first = [_status(group).stage(first, k).job_id for k in ("finetune", "cap_epoch_0", "cap_epoch_1")]
            assert sorted(state.result()["cancelled_jobs"]) == sorted(ids_first)
            for job_id in ids_first:  # SLURM ended them: the running fine-tune and its waiting evaluations
                assert cluster.wait_final(job_id)["JobState"] == "CANCELLED"
            status = _status(group)
            assert all(status.stage(first, k).status == "cancelled" for k in ("finetune", "cap_epoch_0", "cap_epoch_1"))
            assert status.stage(first).reason == "cancelled with cancel-runs: bad seed"
            assert status.stage(first).attempts[-1].elapsed_s is not None  # its time counts in GPU-hours
            assert status.stage(second).status in ("submitted", "running")  # the other run goes on
            assert cluster.job(status.stage(second).job_id)["JobState"] in ("PENDING", "RUNNING")

            assert cancel_runs(str(group), return_state=True).is_completed()
            assert all(s.status == "cancelled" for _, _, s in _status(group).stages())

            state = launch_runs(str(group), wait=False, rerun_failed_finetunes=True, return_state=True)
            assert state.is_completed(), state.message
        created += _job_ids(group)
        status = _status(group)
        for run in (first, second):
            stage = status.stage(run)
            assert stage.status in ("submitted", "running") and len(stage.attempts) == 2 and stage.attempts[0].reopened
            job = cluster.job(status.stage(run, "cap_epoch_1").job_id)
            assert f"afterok:{stage.job_id}" in job.get("Dependency", ""), job  # re-chained to the new fine-tune
    finally:
        _cancel_all(cluster, created + _job_ids(group))
