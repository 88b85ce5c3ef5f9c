"""Advance a run group one step: sync, retry failed fine-tunes by cause, submit what the cap allows.

Every flow that watches a group calls `advance` (launch-runs once per poll, the scheduled
advance-runs for every group with unfinished work, cancel-runs' final sync): it is
idempotent, so calling it again, from another process, after a crash, never repeats an action.

Reads/writes: through `sync_jobs` (one scheduler query), `retry_run` (a remedy, a resubmission,
its evaluations re-chained) and `submit_pending` (journaled job ids); `<group>/.sweepflow/advance.lock`,
held for the whole step so that two advancers (a launcher and the schedule, two schedules)
never decide the same retry or submit the same stage twice. An advancer that finds the lock
held skips the step (`AdvanceReport.skipped`): the holder is doing the same work.

Evaluations that can never run (their fine-tune failed for good or was cancelled, whichever
flow found it) are cancelled with the reason in the same step, so every stage ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout
from pydantic import BaseModel, Field, ValidationError

from tasks.backends import Backend
from tasks.core._errors import SweepflowError, domain_error
from tasks.execution._retries import RetryOutcome, failed_awaiting_decision, retry_run
from tasks.execution._retry_policy import DEFAULT_MAX_ATTEMPTS
from tasks.execution._submit import LaunchReport, Sleep, submit_pending
from tasks.execution._sync import SyncReport, cancel_unrunnable, sync_jobs, tally
from tasks.model._group import GroupRef, RunGroup
from tasks.model._layout import PLAN_FILE, GroupLayout
from tasks.model._status import RunsStatus, utc_now


class RetryRequest(BaseModel):
    """A failed fine-tune attempt whose retry is about to be decided (the flow names its task by it)."""

    run: str
    cause: str | None
    attempt: int  # the failed attempt's number, from 1
    reason: str


class EndedAttempt(BaseModel):
    """A fine-tune attempt that ended in this step: run, attempt number, job, outcome, reason."""

    run: str
    attempt: int
    job_id: str
    status: str
    reason: str | None = None


class AdvanceReport(BaseModel):
    """What one step did and where the group stands after it."""

    group: str
    skipped: bool = False  # another advancer held the group's lock: nothing done
    sync: SyncReport | None = None
    ended: list[EndedAttempt] = Field(default_factory=list)
    retries: list[RetryOutcome] = Field(default_factory=list)
    launch: LaunchReport | None = None
    status: SyncReport = Field(default_factory=SyncReport)  # counts and table rows after the step

    @property
    def finished(self) -> bool:
        """Every stage to do is done (completed, failed or cancelled)."""
        return not self.skipped and self.status.done >= self.status.total

    @property
    def in_flight(self) -> int:
        """Jobs waiting or running."""
        return self.status.counts.get("submitted", 0) + self.status.counts.get("running", 0)


Act = Callable[[RetryRequest, Callable[[], RetryOutcome]], RetryOutcome]


def _decide_directly(request: RetryRequest, decide: Callable[[], RetryOutcome]) -> RetryOutcome:
    return decide()


def _ended(after: RunsStatus, sync: SyncReport) -> list[EndedAttempt]:
    ended = []
    for run, job_id in sync.finetunes_ended:
        stage = after.stage(run)
        number = next((i for i, a in enumerate(stage.attempts, 1) if a.job_id == job_id), len(stage.attempts))
        attempt = stage.attempts[number - 1] if stage.attempts else None
        ended_as = (attempt.scheduler_state or "failed") if attempt else "failed"
        status = stage.status if stage.job_id == job_id else ended_as
        ended.append(EndedAttempt(run=run, attempt=number, job_id=job_id, status=status,
                                  reason=(attempt.reason if attempt else None) or stage.reason))
    return ended


def _retry_all(group: RunGroup, backend: Backend, max_attempts: int, act: Act, now: Callable[[], str],
               sleep: Sleep) -> list[RetryOutcome]:
    """Decide (and act on) every failed fine-tune whose retry is not decided yet, one `act` each."""
    outcomes = []
    status = group.status.read()
    for run in failed_awaiting_decision(status):
        stage = status.stage(run)
        request = RetryRequest(run=run, cause=stage.attempts[-1].cause, attempt=len(stage.attempts),
                               reason=stage.reason or stage.scheduler_state or "failed")
        outcomes.append(act(request, lambda run=run: retry_run(group, run, backend, group.cluster, max_attempts,
                                                               now, sleep)))  # type: ignore[misc]
    return outcomes


def advance(
    group: GroupRef,
    backend: Backend,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    act: Act = _decide_directly,
    lock_wait_s: float = 0.0,
    now: Callable[[], str] = utc_now,
    sleep: Sleep = time.sleep,
) -> AdvanceReport:
    """One step: sync, decide retries (each through `act`), end what cannot run, submit what fits.

    `act(request, decide)` runs `decide()` and returns its outcome: flows wrap it in a Prefect
    task named by run, cause and attempt. `lock_wait_s`: how long to wait for another advancer
    of this group before skipping the step.
    """
    group = RunGroup.of(group)
    group.layout.state_dir.mkdir(exist_ok=True)
    lock = FileLock(str(group.layout.advance_lock), timeout=lock_wait_s)
    try:
        lock.acquire(poll_interval=0.05)
    except Timeout:
        return AdvanceReport(group=group.name, skipped=True)
    try:
        sync = sync_jobs(group, backend, now)
        retries = _retry_all(group, backend, max_attempts, act, now, sleep)
        if any(outcome.job_id is None for outcome in retries):  # decided against: their evaluations end now
            group.status.update(lambda current: cancel_unrunnable(current, now()))
        launch = submit_pending(group, backend, group.cluster, now, sleep)
        after = group.status.read()
        return AdvanceReport(group=group.name, sync=sync, ended=_ended(after, sync), retries=retries,
                             launch=launch, status=tally(after))
    finally:
        lock.release()


class GroupScan(BaseModel):
    """A scan of output_dir: groups with unfinished stages, and groups that could not be read (folder -> why)."""

    unfinished: list[Path] = Field(default_factory=list)
    broken: dict[str, str] = Field(default_factory=dict)


def scan_groups(output_dir: str | Path) -> GroupScan:
    """Every planned run group under `output_dir` (an experiment.yaml): unfinished, or broken with the reason.

    A group whose runs_status.yaml is missing, unreadable or lacks planned stages is broken, not
    skipped: its error names the file (the scheduled flow reports it and still advances the others).
    """
    scan = GroupScan()
    for folder in sorted(p.parent for p in Path(output_dir).glob("*/" + PLAN_FILE)):
        layout = GroupLayout(folder)
        if not layout.status_file.exists():
            scan.broken[str(folder)] = f"{layout.status_file}: missing; run setup-experiment to restore it"
            continue
        try:
            status = RunGroup(folder).status.read()  # checked against the plan
        except (SweepflowError, OSError, ValidationError) as error:
            scan.broken[str(folder)] = str(domain_error(error))
            continue
        if any(not stage.is_terminal for _, _, stage in status.stages()):
            scan.unfinished.append(folder)
    return scan


def groups_with_unfinished_work(output_dir: str | Path) -> list[Path]:
    """Run groups under `output_dir` (set up: experiment.yaml beside runs_status.yaml) with unfinished stages."""
    return scan_groups(output_dir).unfinished
