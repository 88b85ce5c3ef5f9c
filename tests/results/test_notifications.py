"""Notification rules and their record: finished once, failed for good once per run, stalled once per stall.

The status is the seed's 2 models x 2 ranks plan (4 fine-tunes, 2 base-model controls, one
evaluation per run and task) as `initial_status` writes it, moved on by hand with explicit times;
`deliver` runs with a sender that records what it is given (no Prefect: tests/flows/test_notify.py
sends through a real block to a loopback receiver).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from tasks.core._files import FileFormatError
from tasks.model._status import Attempt, RunsStatus, initial_status
from tasks.results import Event, check_failed_event, deliver, group_events, notified_file, read_notified
from tests.support.seed_plan import build_plan

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOURS = 6.0


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def stamp(hours: float) -> str:
    return at(hours).isoformat(timespec="seconds")


@pytest.fixture
def status() -> RunsStatus:
    """Every fine-tune and evaluation of the seed's plan submitted at T0 (the controls skip fine-tuning)."""
    status = initial_status(build_plan())
    for number, (_, _, stage) in enumerate(status.stages()):
        if stage.status == "pending":
            stage.mark("submitted", now=stamp(0), job_id=str(100 + number), attempts=[Attempt(job_id=str(100 + number))])
    return status


class Recorder:
    """A sender that keeps every event it is given; `ok=False` makes it fail to deliver."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ok = True

    def __call__(self, event: Event) -> bool:
        if self.ok:
            self.events.append(event)
        return self.ok

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def finish_all(status: RunsStatus, hours: float) -> None:
    for _, _, stage in status.stages():
        if not stage.is_terminal:
            stage.mark("completed", now=stamp(hours))


def fail_for_good(status: RunsStatus, run: str, hours: float, reason: str = "KeyError: 'output'") -> None:
    """The fine-tune failed and its retry was decided against; its waiting evaluations cancelled (as sync does)."""
    stage = status.stage(run)
    stage.mark("failed", now=stamp(hours), reason=reason, scheduler_state="FAILED")
    stage.attempts[-1].remedy = "not retried: a code or data error"
    for evaluation in status.runs[run].evaluations.values():
        evaluation.mark("cancelled", now=stamp(hours), reason="not run: its fine-tune failed")


def finetunes(status: RunsStatus) -> list[str]:
    return [run for run, entry in status.runs.items() if entry.finetune.status != "skipped"]


def test_nothing_for_a_group_still_moving(status: RunsStatus, tmp_path: Path) -> None:
    assert group_events(status, tmp_path, HOURS, now=at(1)) == []
    sender = Recorder()
    assert deliver(tmp_path, status, HOURS, sender, now=at(5.9)) == []
    assert sender.events == [] and not notified_file(tmp_path).exists()


def test_a_fresh_group_that_never_moved_is_not_stalled(tmp_path: Path) -> None:
    fresh = initial_status(build_plan())  # planned, never launched: no stage has a last_updated
    assert group_events(fresh, tmp_path, HOURS, now=at(1000)) == []


def test_finished_is_sent_once_with_the_counts(status: RunsStatus, tmp_path: Path) -> None:
    finish_all(status, 2)
    status.stage(finetunes(status)[0], next(iter(status.runs[finetunes(status)[0]].evaluations))).mark(
        "failed", now=stamp(2), reason="inspect: model folder missing"
    )
    sender = Recorder()
    [event] = deliver(tmp_path, status, HOURS, sender, now=at(3))
    assert event.kind == "finished" and event.group == status.run_group
    assert event.title == f"sweepflow: {status.run_group} finished (14 completed, 1 failed)"
    assert "fine-tunes: 4 completed" in event.body and "evaluations: 10 completed, 1 failed" in event.body
    assert "inspect: model folder missing" in event.body and f"Run group folder: {tmp_path}" in event.body
    assert deliver(tmp_path, status, HOURS, sender, now=at(4)) == []
    assert deliver(tmp_path, status, HOURS, sender, now=at(400)) == []  # finished is not stalled either
    assert sender.kinds() == ["finished"]
    record = read_notified(tmp_path, status.run_group)
    assert list(record.sent) == [event.key] and record.sent[event.key].kind == "finished"


def test_failed_for_good_is_sent_once_per_run(status: RunsStatus, tmp_path: Path) -> None:
    first, second, third = finetunes(status)[:3]
    fail_for_good(status, first, 1, reason="KeyError: 'output' in the dataset")
    status.stage(second).mark("failed", now=stamp(1), reason="OUT_OF_MEMORY")  # its retry is not decided yet
    sender = Recorder()
    [event] = deliver(tmp_path, status, HOURS, sender, now=at(1.5))
    assert event.kind == "failed_for_good" and event.title == f"sweepflow: {status.run_group}: fine-tune {first} failed for good"
    assert "KeyError: 'output' in the dataset" in event.body and "not retried: a code or data error" in event.body
    assert f"Run folder: {tmp_path / first}" in event.body
    assert deliver(tmp_path, status, HOURS, sender, now=at(2)) == []

    fail_for_good(status, third, 2, reason="ImportError: torchao")
    [later] = deliver(tmp_path, status, HOURS, sender, now=at(2.5))
    assert later.kind == "failed_for_good" and third in later.title and "ImportError: torchao" in later.body
    assert [e.title for e in sender.events] == [event.title, later.title]


def test_a_refused_submission_is_failed_for_good(status: RunsStatus, tmp_path: Path) -> None:
    run = finetunes(status)[0]
    status.stage(run).mark("failed", now=stamp(1), reason="sbatch: error: invalid account", attempts=[])
    [event] = group_events(status, tmp_path, HOURS, now=at(1))
    assert event.kind == "failed_for_good" and "invalid account" in event.body and "refused" in event.body


def test_stalled_after_stall_hours_not_before_and_again_after_a_new_stall(status: RunsStatus, tmp_path: Path) -> None:
    sender = Recorder()
    assert deliver(tmp_path, status, HOURS, sender, now=at(5.9)) == []
    [stall] = deliver(tmp_path, status, HOURS, sender, now=at(6))
    assert stall.kind == "stalled" and stall.title == f"sweepflow: {status.run_group} stalled: nothing changed for 6 h"
    assert f"changed since {stamp(0)}" in stall.body and "15 unfinished stages (15 submitted)" in stall.body
    assert deliver(tmp_path, status, HOURS, sender, now=at(7)) == []  # the same stall: once

    run = finetunes(status)[0]
    status.stage(run).mark("running", now=stamp(8))  # it moved: no longer stalled
    assert deliver(tmp_path, status, HOURS, sender, now=at(9)) == []
    assert read_notified(tmp_path, status.run_group).sent == {}  # the old stall's record is dropped
    [again] = deliver(tmp_path, status, HOURS, sender, now=at(14))  # a new stall
    assert again.kind == "stalled" and again.key != stall.key and f"since {stamp(8)}" in again.body
    assert sender.kinds() == ["stalled", "stalled"]


def test_a_failed_send_is_tried_again(status: RunsStatus, tmp_path: Path) -> None:
    finish_all(status, 1)
    sender = Recorder()
    sender.ok = False
    assert deliver(tmp_path, status, HOURS, sender, now=at(2)) == []
    assert read_notified(tmp_path, status.run_group).sent == {}
    sender.ok = True
    assert [e.kind for e in deliver(tmp_path, status, HOURS, sender, now=at(3))] == ["finished"]
    assert deliver(tmp_path, status, HOURS, sender, now=at(4)) == []


def test_a_rerun_that_fails_or_finishes_again_is_sent_again(status: RunsStatus, tmp_path: Path) -> None:
    run = finetunes(status)[0]
    fail_for_good(status, run, 1)
    finish_all(status, 1)
    sender = Recorder()
    assert [e.kind for e in deliver(tmp_path, status, HOURS, sender, now=at(2))] == ["failed_for_good", "finished"]
    stage = status.stage(run)  # rerun_failed_finetunes: reopened, submitted again, failed for good again
    stage.mark("submitted", now=stamp(3), job_id="900")
    stage.attempts.append(Attempt(job_id="900"))
    assert deliver(tmp_path, status, HOURS, sender, now=at(3)) == []
    fail_for_good(status, run, 4, reason="still KeyError")
    again = deliver(tmp_path, status, HOURS, sender, now=at(4))
    assert [e.kind for e in again] == ["failed_for_good", "finished"] and "still KeyError" in again[0].body
    assert "Attempt 2: job 900" in again[0].body


def test_one_sender_across_processes(status: RunsStatus, tmp_path: Path) -> None:
    """Two deliveries at once (threads stand in for processes: separate locks on one file): one sends."""
    finish_all(status, 1)
    sent: list[str] = []

    def slow(event: Event) -> bool:
        time.sleep(0.3)
        sent.append(event.key)
        return True

    threads = [threading.Thread(target=deliver, args=(tmp_path, status, HOURS, slow), kwargs={"now": at(2)})
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == 1


def test_a_held_lock_sends_nothing(status: RunsStatus, tmp_path: Path) -> None:
    finish_all(status, 1)
    notified_file(tmp_path).parent.mkdir(parents=True)
    with FileLock(f"{notified_file(tmp_path)}.lock"):
        assert deliver(tmp_path, status, HOURS, Recorder(), now=at(2), lock_timeout=0.1) == []


def test_the_record_is_a_readable_yaml_file(status: RunsStatus, tmp_path: Path) -> None:
    finish_all(status, 1)
    [event] = deliver(tmp_path, status, HOURS, Recorder(), now=at(2))
    text = notified_file(tmp_path).read_text()
    assert text.startswith(f"# Notifications run group {status.run_group} has sent")
    data = yaml.safe_load(text)
    assert data["run_group"] == status.run_group and data["sent"][event.key]["title"] == event.title
    notified_file(tmp_path).write_text("sent: [1, 2]\n")
    with pytest.raises(FileFormatError, match="notified.yaml: is not a notification record"):
        deliver(tmp_path, status, HOURS, Recorder(), now=at(3))


def test_unreadable_and_naive_timestamps(status: RunsStatus, tmp_path: Path) -> None:
    for _, _, stage in status.stages():
        if stage.last_updated:
            stage.last_updated = "not a time"
    run = finetunes(status)[0]
    status.stage(run).last_updated = "2026-03-02T09:00:00"  # naive: taken as UTC
    [event] = group_events(status, tmp_path, HOURS, now=at(6))
    assert event.kind == "stalled" and "since 2026-03-02T09:00:00+00:00" in event.body


def test_check_failed_event_lists_the_failures() -> None:
    failures = ["finetune: partition gpu, 1 x GPU, 32G: failed: torchtune is not installed",
                "eval: partition gpu, 1 x GPU, 16G: timed out"]
    event = check_failed_event("cap_sweep_2026-03-02", failures, group_dir="/scratch/x/cap_sweep_2026-03-02",
                               checked_at="2026-03-02T09:00:00+00:00")
    assert event.kind == "check_failed" and event.title == "sweepflow: cap_sweep_2026-03-02: the site check failed"
    assert all(f"  - {line}" in event.body for line in failures)
    assert "Run group folder: /scratch/x/cap_sweep_2026-03-02" in event.body
    text = check_failed_event("g", "The site check failed:\n  - eval: failed: no GPU\n").body
    assert "  - The site check failed:" in text and "  - eval: failed: no GPU" in text
    assert event.message("http://127.0.0.1:4200/runs/flow-run/1").endswith(
        "\nPrefect UI: http://127.0.0.1:4200/runs/flow-run/1\n"
    )
