"""Adopted jobs keep their own submit time, so their finished work stays completed (issue 23).

On the REAL local backend: every stage's job ran (a stand-in script per stage, named as setup
names it, submitted from the stage's own folder; the fine-tunes write their checkpoints, each
evaluation leaves a real inspect-ai `.eval` log), but the launcher died before writing any job
id. Launching again (long after the jobs ended) adopts them; a sync must then find every stage
completed. Before the fix the adopted attempt was stamped "now", the `.eval` logs looked older
than the submission, and every evaluation became `failed: COMPLETED but no .eval log`.
The second case is the README's other path: runs_status.yaml deleted, set up again, launched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tasks.backends.local import LocalBackend
from tasks.execution._submit import submit_pending
from tasks.execution._sync import sync_jobs
from tasks.model._group import RunGroup
from tasks.setup._experiment import set_up_group
from tests.support.fake_scheduler import cluster, make_group
from tests.support.stand_in_jobs import run_every_stage

LATER = (datetime.now(UTC) + timedelta(hours=2)).isoformat(timespec="seconds")  # the relaunch, long after


def _relaunch_and_sync(group: Path, backend: LocalBackend) -> dict[str, str]:
    report = submit_pending(group, backend, cluster(max_queued_jobs=100), now=lambda: LATER, sleep=lambda s: None)
    assert report.submitted == [] and len(report.adopted) > 0  # nothing paid for twice
    sync_jobs(group, backend, now=lambda: LATER)
    status = RunGroup.of(group).status.read()
    return {f"{run}/{key}": f"{s.status} {s.reason or ''}".strip() for run, key, s in status.stages()}


def test_jobs_adopted_after_a_crash_stay_completed(tmp_path: Path) -> None:
    group = make_group(tmp_path / "out")
    backend = LocalBackend(tmp_path / "local", max_parallel=4)
    run_every_stage(group, backend, tmp_path / "scripts")

    states = _relaunch_and_sync(group, backend)
    lost = {k: v for k, v in states.items() if not v.startswith(("completed", "skipped"))}
    assert lost == {}, lost
    status = RunGroup.of(group).status.read()
    adopted = [s.attempts[-1] for _, _, s in status.stages() if s.attempts]
    assert adopted and all(a.submitted and a.submitted < LATER for a in adopted)  # the job's own time

    # runs_status.yaml deleted, set up again, launched: the same jobs adopted, nothing lost
    (group / "runs_status.yaml").unlink()
    set_up_group(group)
    states = _relaunch_and_sync(group, backend)
    lost = {k: v for k, v in states.items() if not v.startswith(("completed", "skipped"))}
    assert lost == {}, lost
