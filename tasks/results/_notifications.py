"""What a run group has to tell its researcher: finished, a fine-tune failed for good, stalled, a failed site check.

Reads: a `RunsStatus` (runs_status.yaml's content), given by the caller. Writes: nothing
(`tasks.results._notified` records what was sent; `flows/_notify.py` sends it through a Prefect
notification block). The texts come from `templates/notifications/event.txt.j2` (the first line
is the subject) and `templates/notifications/message.txt.j2` (the body plus the Prefect UI link).

Every event has a `key`: the same fact gives the same key on every call, in every process, so
that it is sent once. The rules, over every stage of the group (`RunsStatus.stages()`):

- `finished`: every stage is terminal (completed/failed/cancelled/skipped). Key `finished:<n>`,
  n the number of attempts in the group, so a group finished again after a rerun says so again.
- `failed_for_good`: a fine-tune failed and will not be retried (`fine_tune_failed_for_good`).
  One per run; key `failed_for_good:<run>:<attempts>`.
- `stalled`: some stage is unfinished and the newest `last_updated` of all stages is at least
  `stall_hours` old. Key `stalled:<that newest time>`: a later change, then a new stall, is a new
  event. A group where nothing ever changed (no stage has a `last_updated`) is never stalled.
- `check_failed`: a check before the sweep failed (`check_failed_event`, built by the caller).
- `group_error`: the scheduled scan could not advance the group (`group_error_event`, built by the
  caller); key `group_error:<the message>`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tasks.core._templating import render_template
from tasks.model._layout import GroupLayout
from tasks.model._status import FINETUNE, RunsStatus, StageStatus

log = logging.getLogger(__name__)

EventKind = Literal["finished", "failed_for_good", "stalled", "check_failed", "group_error"]
LIST_LIMIT = 20  # stages named in one message; the rest are counted
STATUS_ORDER = ("completed", "failed", "cancelled", "skipped", "dropped", "running", "submitted", "pending")


class Event(BaseModel):
    """One notification: which group, what happened, its subject and its text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str
    kind: EventKind
    key: str  # the same fact always gives the same key: it is sent once (tasks.results._notified)
    title: str  # the subject, one line
    body: str  # what happened: counts, runs and reasons, the group folder

    def message(self, ui_url: str | None = None) -> str:
        """The text to send: the body, then the Prefect UI link when there is one."""
        return render_template("notifications/message.txt.j2", body=self.body, ui_url=ui_url)


def fine_tune_failed_for_good(stage: StageStatus) -> bool:
    """A fine-tune that failed and will not be retried unless the researcher reruns it.

    The failed half of `tasks.execution._sync.finetune_ended_for_good` (same rule, not imported:
    execution is the layer above): failed with no attempt at all (sbatch refused it), or with the
    retry decided on its last attempt (`remedy` set, e.g. "not retried: ..."). A failure still
    awaiting its retry decision is not final; a cancelled fine-tune was stopped, not failed.
    """
    return stage.status == "failed" and (not stage.attempts or stage.attempts[-1].remedy is not None)


def _event(kind: EventKind, group: str, key: str, **facts: Any) -> Event:
    text = render_template("notifications/event.txt.j2", kind=kind, group=group, limit=LIST_LIMIT, **facts)
    title, _, body = text.partition("\n")
    return Event(group=group, kind=kind, key=key, title=title.strip(), body=body.strip("\n") + "\n")


def _line(run: str, key: str, stage: StageStatus) -> dict[str, Any]:
    return {"run": run, "stage": key, "status": stage.status, "reason": stage.reason, "job_id": stage.job_id}


def _counts(stages: Sequence[tuple[str, str, StageStatus]]) -> dict[str, list[tuple[str, int]]]:
    """{"fine-tunes": [("completed", 4), ...], "evaluations": [...]}, statuses in a fixed order, none empty."""
    counts: dict[str, Counter[str]] = {"fine-tunes": Counter(), "evaluations": Counter()}
    for _, key, stage in stages:
        if stage.status not in ("skipped", "dropped"):  # a base model's fine-tune, a dropped run: nothing to count
            counts["fine-tunes" if key == FINETUNE else "evaluations"][stage.status] += 1
    return {kind: [(s, c[s]) for s in STATUS_ORDER if c[s]] for kind, c in counts.items() if c}


def finished_event(status: RunsStatus, group_dir: Path) -> Event | None:
    """`finished` when every stage has ended; None while any is unfinished (or there is none)."""
    stages = list(status.stages())
    if not stages or not all(stage.is_terminal for _, _, stage in stages):
        return None
    counts = _counts(stages)
    totals: Counter[str] = Counter(s.status for _, _, s in stages if s.status not in ("skipped", "dropped"))
    ended = [_line(run, key, s) for run, key, s in stages if s.status in ("failed", "cancelled")]
    attempts = sum(len(s.attempts) for _, _, s in stages)
    return _event("finished", status.run_group, f"finished:{attempts}", group_dir=str(group_dir), counts=counts,
                  totals=[(s, totals[s]) for s in STATUS_ORDER if totals[s]], ended=ended)


def failed_for_good_events(status: RunsStatus, group_dir: Path) -> list[Event]:
    """One `failed_for_good` per fine-tune that failed and will not be retried."""
    layout = GroupLayout(group_dir)
    events = []
    for run, entry in status.runs.items():
        stage = entry.finetune
        if not fine_tune_failed_for_good(stage):
            continue
        last = stage.attempts[-1] if stage.attempts else None
        waiting = sum(1 for e in entry.evaluations.values() if e.status != "completed")
        events.append(_event(
            "failed_for_good", status.run_group, f"failed_for_good:{run}:{len(stage.attempts)}",
            group_dir=str(group_dir), run=run, run_dir=str(layout.run_dir(run)), stage=stage, last=last,
            reason=stage.reason or (last.reason if last else None) or "no reason recorded", evaluations=waiting,
        ))
    return events


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (a naive one is taken as UTC); None if unreadable."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        log.debug("notifications: ignoring the unreadable timestamp %r", text)
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def last_change(status: RunsStatus) -> datetime | None:
    """The newest `last_updated` of any stage (None when no stage has one)."""
    times = [t for _, _, stage in status.stages() if (t := parse_time(stage.last_updated)) is not None]
    return max(times, default=None)


def stalled_event(status: RunsStatus, group_dir: Path, stall_hours: float, now: datetime) -> Event | None:
    """`stalled` when work is unfinished and nothing changed for `stall_hours`; else None."""
    unfinished = [(run, key, s) for run, key, s in status.stages() if not s.is_terminal]
    since = last_change(status)
    if not unfinished or since is None:
        return None
    idle_h = (now.astimezone(UTC) - since).total_seconds() / 3600
    if idle_h < stall_hours:
        return None
    states: Counter[str] = Counter(s.status for _, _, s in unfinished)
    return _event("stalled", status.run_group, f"stalled:{since.isoformat()}", group_dir=str(group_dir),
                  since=since.isoformat(), idle_h=idle_h, stall_hours=stall_hours,
                  states=[(s, states[s]) for s in STATUS_ORDER if states[s]],
                  unfinished=[_line(run, key, s) for run, key, s in unfinished])


def group_events(status: RunsStatus, group_dir: str | Path, stall_hours: float,
                 now: datetime | None = None) -> list[Event]:
    """Every event that is true of the group now (sent or not): failures for good, then finished or stalled."""
    group_dir = Path(group_dir)
    now = now or datetime.now(UTC)
    events = failed_for_good_events(status, group_dir)
    for event in (finished_event(status, group_dir), stalled_event(status, group_dir, stall_hours, now)):
        if event is not None:
            events.append(event)
    return events


def check_failed_event(group: str, failures: str | Sequence[str], group_dir: str | Path | None = None,
                       checked_at: str | None = None) -> Event:
    """`check_failed`: the check before the sweep failed; `failures` one line per failed check (or one text)."""
    lines = [line.strip().removeprefix("- ") for line in
             (failures.splitlines() if isinstance(failures, str) else failures) if line.strip()]
    key = f"check_failed:{checked_at or datetime.now(UTC).isoformat(timespec='seconds')}"
    return _event("check_failed", group, key, group_dir=str(group_dir) if group_dir else None,
                  failures=lines or ["(no detail given)"], checked_at=checked_at)


def group_error_event(group: str, error: str, group_dir: str | Path | None = None) -> Event:
    """`group_error`: advancing the group failed (a damaged status file, a full disk, ...); the others went on."""
    return _event("group_error", group, f"group_error:{error}", error=error,
                  group_dir=str(group_dir) if group_dir else None)
