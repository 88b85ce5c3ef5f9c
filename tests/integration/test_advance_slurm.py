"""The sweep runs itself, on the REAL local SLURM cluster: no live launcher, two advancers, every stage ends.

Stub jobs as in test_launch_slurm.py (the generated scripts' #SBATCH header, small bodies).
1. `test_the_schedule_alone_finishes_after_the_launcher_is_killed`: a launcher process (the
   advance loop launch-runs runs) is SIGKILLed as soon as its first job is queued, under a cap
   of 3 queued jobs (one run at a time: a fine-tune and its two evaluations). From then on only
   the advance-runs flow moves the group, called as its schedule would call it, in a real
   Prefect server. Checked: every job submitted within the cap (the queue sampled every 0.3 s),
   the OOM fine-tune retried once with half the batch, the code-error fine-tune's unsubmitted
   evaluations cancelled with the reason (every stage ends), nothing submitted twice (SLURM's own
   jobs per name and folder = the attempts on record), the retry's task named by run, cause and
   attempt.
2. `test_two_advancers_at_once_never_duplicate`: two processes advance the same group in a loop
   at the same time until it finishes: no duplicate job, no lost update.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_launch_slurm import (
    FINETUNE_BODIES,
    MODEL,
    ROOT,
    _cancel_all,
    _group,
    _group_jobs,
    _job_ids,
    _stage_eval_logs,
    _status,
    _stub,
    _stub_evaluation,
)

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

ADVANCE_LOOP = """
import sys, time
from tasks.backends.slurm import SlurmBackend
from tasks.execution import advance
group, pause = sys.argv[1], float(sys.argv[2])
skipped = 0
while True:
    report = advance(group, SlurmBackend(), sleep=lambda s: None)
    skipped += report.skipped
    if report.finished:
        break
    time.sleep(pause)
print(f"finished; skipped {skipped} step(s)", flush=True)
"""


class QueueSampler(threading.Thread):
    """The most jobs of `group` waiting or running at once, sampled from squeue every 0.3 s."""

    def __init__(self, cluster: Any, group: Path):
        super().__init__(daemon=True)
        self.cluster, self.group, self.most = cluster, group, 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            live = [j for j in _group_jobs(self.cluster, self.group) if j[2] in ("PENDING", "RUNNING")]
            self.most = max(self.most, len(live))
            self.halt.wait(0.3)


def _no_duplicates(cluster: Any, group: Path) -> None:
    """Every job SLURM ran from this group's folders is an attempt on record, each once."""
    recorded = _job_ids(group)
    assert len(recorded) == len(set(recorded)), recorded
    ours = {job_id for job_id, _, _ in _group_jobs(cluster, group)}
    assert ours == set(recorded), (sorted(ours - set(recorded)), sorted(set(recorded) - ours))


def _launcher(cluster: Any, group: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", ADVANCE_LOOP, str(group), "1"], cwd=ROOT, env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.prefect
def test_the_schedule_alone_finishes_after_the_launcher_is_killed(slurm_cluster_nodb: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.advance_runs import advance_runs
    from tasks.execution import groups_with_unfinished_work

    cluster = slurm_cluster_nodb
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    ok, oom, error = (f"{MODEL}_rank{r}" for r in (41, 42, 43))
    group = _group(tmp_path, [41, 42, 43], submit_stagger_seconds=0, max_queued_jobs=3)
    staged = _stage_eval_logs(tmp_path / "staged", [ok, oom, error])
    for run, kind in {ok: "ok", oom: "oom", error: "error"}.items():
        _stub(group / run / "finetune.slurm", FINETUNE_BODIES[kind])
        for epoch in (0, 1):
            _stub_evaluation(group, run, epoch, staged[(run, epoch)])
    sampler = QueueSampler(cluster, group)
    sampler.start()
    launcher = _launcher(cluster, group)
    try:
        deadline = time.monotonic() + 60
        while not _job_ids(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(10)
        assert _job_ids(group), "the launcher submitted nothing"
        t0 = time.monotonic()
        with prefect_test_harness(server_startup_timeout=120):
            runs = 0
            while groups_with_unfinished_work(group.parent) and time.monotonic() - t0 < 300:
                state = advance_runs(output_dir=str(group.parent), return_state=True)
                assert state.is_completed(), state.message
                runs += 1
                time.sleep(2)  # the schedule's interval, shortened
            with get_client(sync_client=True) as client:
                names = sorted(t.name for t in client.read_task_runs())
        sampler.halt.set()
        status = _status(group)
        print(f"\nadvance-runs ran {runs} times, {time.monotonic() - t0:.1f} s; most jobs queued at once: "
              f"{sampler.most}", file=sys.stderr)
        assert not [(r, k, s.status) for r, k, s in status.stages() if not s.is_terminal]
        assert sampler.most <= 3, sampler.most
        assert status.stage(ok).status == "completed"
        retried = status.stage(oom)
        assert retried.status == "completed" and len(retried.attempts) == 2, retried
        assert (retried.attempts[0].batch_size, retried.attempts[1].batch_size) == (4, 2)
        assert status.stage(error).status == "failed"
        for key in ("cap_epoch_0", "cap_epoch_1"):
            assert status.stage(ok, key).status == status.stage(oom, key).status == "completed"
            assert status.stage(error, key).status == "cancelled"
            assert status.stage(error, key).reason in ("fine-tune failed", "not run: its fine-tune failed"
                                                       f" ({status.stage(error).reason})")
        _no_duplicates(cluster, group)
        assert f"retry-{oom}-oom-attempt1" in names and f"retry-{error}-error-attempt1" in names, names
        assert f"finetune-{oom}-attempt2" in names, names
        assert not [n for n in names if n.startswith(("sync-jobs", "submit-pending"))]  # nothing per poll
    finally:
        sampler.halt.set()
        if launcher.poll() is None:
            launcher.kill()
        _cancel_all(cluster, _job_ids(group) + [j for j, _, _ in _group_jobs(cluster, group)])


def test_two_advancers_at_once_never_duplicate(slurm_cluster_nodb: Any, tmp_path: Path) -> None:
    cluster = slurm_cluster_nodb
    ranks = [51, 52, 53, 54]
    runs = [f"{MODEL}_rank{r}" for r in ranks]
    group = _group(tmp_path, ranks, submit_stagger_seconds=0, max_queued_jobs=6)
    staged = _stage_eval_logs(tmp_path / "staged", runs)
    for run in runs:
        _stub(group / run / "finetune.slurm", FINETUNE_BODIES["ok"])
        for epoch in (0, 1):
            _stub_evaluation(group, run, epoch, staged[(run, epoch)])
    advancers = [_launcher(cluster, group), _launcher(cluster, group)]
    try:
        outputs = [proc.communicate(timeout=240)[0] for proc in advancers]
        assert all(proc.returncode == 0 for proc in advancers), outputs
        print("\n" + " | ".join(o.strip() for o in outputs), file=sys.stderr)
        status = _status(group)
        assert all(s.status == "completed" for _, _, s in status.stages()), status
        assert all(len(s.attempts) == 1 for _, _, s in status.stages())
        _no_duplicates(cluster, group)
    finally:
        for proc in advancers:
            if proc.poll() is None:
                proc.kill()
        _cancel_all(cluster, _job_ids(group) + [j for j, _, _ in _group_jobs(cluster, group)])
