"""Finished work survives a crash between sbatch and the journal write, on the REAL SLURM cluster (issue 23).

A real run group (2 fine-tunes, each with 2 chained evaluations; stub job bodies as in
test_launch_slurm.py: the fine-tunes save their checkpoints, the evaluations copy a REAL
inspect-ai `.eval` log into logs/). `submit_pending` runs in a subprocess that SIGKILLs itself
the moment it is about to journal its last job: SLURM has the job, runs_status.yaml does not.
Every job then runs to its end. Launching again much later (the researcher comes back hours
after the crash: `now` two hours on) adopts the unrecorded job; a sync must report every stage
completed. Then the README's other path: runs_status.yaml deleted, set up again, launched
(every job adopted), synced: every stage completed again. Before the fix, each adopted
evaluation was stamped with the relaunch time, its `.eval` log looked older than its
submission, and it became `failed: COMPLETED but no .eval log` (to be paid for again).
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_launch_slurm import (
    EPOCHS,
    FINETUNE_BODIES,
    MODEL,
    ROOT,
    _cancel_all,
    _group,
    _group_jobs,
    _stage_eval_logs,
    _status,
    _stub,
    _stub_evaluation,
)

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

# submit_pending, killed (SIGKILL, as the OOM killer or a lost node would) when it is about to
# journal its `last`-th job: that job exists in SLURM, runs_status.yaml never hears of it
KILLED_AT_JOURNAL = """
import os, signal, sys
from tasks.backends.slurm import SlurmBackend
from tasks.execution import _submit as submit
from tasks.model._cluster import cluster_settings
from tasks.model._plan_file import load_plan

group, last = sys.argv[1], int(sys.argv[2])
record, seen = submit._Launcher._record, []

def dying_record(self, run, key, info, status):
    seen.append(info.job_id)
    if len(seen) == last:
        os.kill(os.getpid(), signal.SIGKILL)
    return record(self, run, key, info, status)

submit._Launcher._record = dying_record
submit.submit_pending(group, SlurmBackend(), cluster_settings(load_plan(group).design))
print("finished without being killed", flush=True)
"""


def _wait_until_ended(cluster: Any, group: Path, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        jobs = _group_jobs(cluster, group)
        if len(jobs) >= count and all(state in ("COMPLETED", "FAILED", "CANCELLED") for _, _, state in jobs):
            assert all(state == "COMPLETED" for _, _, state in jobs), jobs
            return
        assert time.monotonic() < deadline, f"jobs still running after {timeout} s: {jobs}"
        time.sleep(1)


def _finished(group: Path) -> dict[str, str]:
    return {f"{r}/{k}": f"{s.status} {s.reason or ''}".strip() for r, k, s in _status(group).stages()}


def test_crash_before_the_journal_write_loses_no_finished_stage(slurm_cluster: Any, tmp_path: Path) -> None:
    from tasks.backends.slurm import SlurmBackend
    from tasks.execution._submit import submit_pending
    from tasks.execution._sync import sync_jobs
    from tasks.model._cluster import cluster_settings
    from tasks.model._plan_file import load_plan
    from tasks.setup._experiment import set_up_group

    cluster = slurm_cluster
    ranks = [31, 32]
    group = _group(tmp_path, ranks, submit_stagger_seconds=0)
    runs = [f"{MODEL}_rank{r}" for r in ranks]
    staged = _stage_eval_logs(tmp_path / "staged", runs)
    for run in runs:
        _stub(group / run / "finetune.slurm", FINETUNE_BODIES["ok"])
        for epoch in EPOCHS:
            _stub_evaluation(group, run, epoch, staged[(run, epoch)])
    total = len(runs) * (1 + len(EPOCHS))
    env = {**cluster.env, "PYTHONPATH": str(ROOT)}
    backend = SlurmBackend(env=cluster.env)
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat(timespec="seconds")
    try:
        proc = subprocess.run([sys.executable, "-c", KILLED_AT_JOURNAL, str(group), str(total)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == -9, (proc.returncode, proc.stdout, proc.stderr)
        unrecorded = [k for k, v in _finished(group).items() if v == "pending"]
        assert len(unrecorded) == 1, _finished(group)  # sbatch answered, the journal never heard of it
        _wait_until_ended(cluster, group, total)

        cfg = cluster_settings(load_plan(group).design)
        report = submit_pending(group, backend, cfg, now=lambda: later, sleep=lambda s: None)
        assert [f"{a.run}/{a.stage}" for a in report.adopted] == unrecorded and report.submitted == []
        sync_jobs(group, backend, now=lambda: later)
        states = _finished(group)
        assert all(v.startswith("completed") for v in states.values()), states

        (group / "runs_status.yaml").unlink()  # deleted by hand, set up again, launched again
        set_up_group(group)
        report = submit_pending(group, backend, cfg, now=lambda: later, sleep=lambda s: None)
        assert len(report.adopted) == total and report.submitted == [], report
        sync_jobs(group, backend, now=lambda: later)
        states = _finished(group)
        assert all(v.startswith("completed") for v in states.values()), states
        adopted = [s.attempts[-1].submitted for _, _, s in _status(group).stages()]
        assert all(stamp and stamp < later for stamp in adopted), adopted  # SLURM's own submit times
    finally:
        _cancel_all(cluster, [j for j, _, _ in _group_jobs(cluster, group)])
