"""A truncated or damaged runs_status.yaml is never believed, and is restored (issue 23).

On the REAL local backend, a run group whose every stage ran and finished (stand-in jobs, real
`.eval` logs) and whose status a sync recorded as completed. Then runs_status.yaml is cut to a
valid-YAML prefix (the probe's case: the third run onwards missing, the second run's last
evaluation missing). Before the fix a sync reported "all stages finished" over the prefix and
launch crashed with a bare KeyError. Now sync and launch refuse, naming the file and the missing
stages; setup-experiment restores the file (from the kept backup here, or, with no backup and
no journal, from the plan: launch then adopts the scheduler's jobs and a sync checks their
outputs), and every finished stage is completed again. An unparseable file and a bad journal
line are refused naming the file, and restored the same way.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.backends.local import LocalBackend
from tasks.core._errors import SweepflowError
from tasks.execution._submit import submit_pending
from tasks.execution._sync import sync_jobs
from tasks.model import _status_journal as status_journal
from tasks.model._group import RunGroup
from tasks.model._status_file import StatusDamaged
from tasks.setup._experiment import set_up_group
from tests.support.fake_scheduler import cluster, launched_group, make_group
from tests.support.stand_in_jobs import run_every_stage

LATER = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")


def _states(group: Path) -> dict[str, str]:
    return {f"{r}/{k}": s.status for r, k, s in RunGroup.of(group).status.read().stages()}


def _launch_and_sync(group: Path, backend: LocalBackend) -> dict[str, str]:
    report = submit_pending(group, backend, cluster(max_queued_jobs=100), now=lambda: LATER, sleep=lambda s: None)
    assert report.submitted == []  # every job adopted: nothing paid for twice
    sync_jobs(group, backend, now=lambda: LATER)
    return _states(group)


def _truncate(path: Path) -> None:
    """Keep a valid-YAML prefix: up to the second run's last evaluation (runs 3.. gone)."""
    lines = path.read_text().splitlines(keepends=True)
    runs = [i for i, ln in enumerate(lines) if re.match(r"^  \S.*:$", ln)]
    evals = [i for i, ln in enumerate(lines[runs[1]:runs[2]], runs[1]) if re.match(r"^      \S.*:$", ln)]
    path.write_text("".join(lines[:evals[-1]]))


def _finished(root: Path) -> tuple[Path, LocalBackend, dict[str, str]]:
    group = make_group(root / "out")
    backend = LocalBackend(root / "local", max_parallel=4)
    run_every_stage(group, backend, root / "scripts")
    states = _launch_and_sync(group, backend)
    assert set(states.values()) <= {"completed", "skipped"}, states
    return group, backend, states


def test_a_truncated_status_is_refused_then_restored_from_its_backup(tmp_path: Path) -> None:
    group, backend, done = _finished(tmp_path)
    path = group / "runs_status.yaml"
    _truncate(path)
    with pytest.raises(StatusDamaged) as info:
        sync_jobs(group, backend)
    message = str(info.value)
    assert str(path) in message and "missing" in message and len(message) - len(str(path)) < 500
    assert f"damaged: 11 of the plan's {len(done)} stages are missing" in message  # runs 3..6, run 2's last
    with pytest.raises(SweepflowError):  # not a bare KeyError
        submit_pending(group, backend, cluster(), sleep=lambda s: None)

    report = set_up_group(group)
    assert report.status_restored and "backup" in report.status_restored
    restored = RunGroup.of(group).status.read()
    assert all(s.job_id for _, _, s in restored.stages() if s.status != "skipped")  # job ids back, from the backup
    assert _launch_and_sync(group, backend) == done  # the scheduler's record brings it up to date
    assert (group / ".sweepflow" / "backups" / "runs_status.yaml.1").read_text() != path.read_text()


def test_without_backup_or_journal_the_scheduler_and_the_outputs_restore_it(tmp_path: Path) -> None:
    group, backend, done = _finished(tmp_path)
    shutil.rmtree(group / ".sweepflow" / "backups")
    _truncate(group / "runs_status.yaml")
    report = set_up_group(group)
    assert report.status_restored and "plan (pending)" in report.status_restored
    assert "pending" in _states(group).values()
    assert _launch_and_sync(group, backend) == done


def test_unparseable_status_and_bad_journal_line_are_refused_naming_the_file(tmp_path: Path) -> None:
    group, backend, done = _finished(tmp_path)
    path = group / "runs_status.yaml"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2] + b"\n  - [unclosed")
    with pytest.raises(SweepflowError, match=re.escape(str(path))):
        sync_jobs(group, backend)
    set_up_group(group)
    assert _launch_and_sync(group, backend) == done

    journal = group / ".sweepflow" / "runs_status.journal.jsonl"
    run = next(iter(done)).split("/")[0]
    bad = json.dumps({"run": run, "entry": {"finetune": {"status": "finished?"}}}).encode() + b"\n"
    status_journal.append(journal, path.read_bytes(), None, [bad])  # a journal of this very file, one bad entry
    with pytest.raises(SweepflowError, match=re.escape(str(journal))):
        sync_jobs(group, backend)


def test_a_stale_journal_restores_the_runs_the_file_lost(tmp_path: Path) -> None:
    """The journal's entries count even when its base is no longer the file on disk (a rewrite since)."""
    group, _ = launched_group(tmp_path)
    store = RunGroup.of(group).status
    status = store.read()
    lost = list(status.runs)[-1]
    job = status.stage(lost).job_id
    line = status_journal.entry_line(lost, status.runs[lost].model_dump(mode="json"))
    journal = group / ".sweepflow" / "runs_status.journal.jsonl"
    status_journal.append(journal, b"an earlier runs_status.yaml", None, [line])  # stale: another base
    shutil.rmtree(group / ".sweepflow" / "backups")
    path = group / "runs_status.yaml"
    text = path.read_text()
    path.write_text(text[: text.index(f"  {lost}:")])  # the last run cut off
    report = set_up_group(group)
    assert report.status_restored and "from journal" in report.status_restored
    assert RunGroup.of(group).status.read().stage(lost).job_id == job  # not pending: its job id is back
