"""Which notifications a run group has sent, so each is sent once across every flow and process.

Reads/writes: `<group>/.sweepflow/notified.yaml` (header from `templates/state/notified.yaml.j2`,
body by PyYAML), replaced atomically under the lock `<group>/.sweepflow/notified.yaml.lock`.
`deliver` holds that lock while it decides, sends and records, so two flows advancing the
same group never both send an event. The file holds the events that were sent and are still
true: one that is no longer true (a reopened run, a stall that moved on) is dropped, so the
same fact, should it become true again, is sent again. Losing the file only repeats messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.core._files import FileFormatError, atomic_write_text, dump_yaml, read_yaml
from tasks.core._templating import render_template
from tasks.model._layout import GroupLayout
from tasks.model._status import RunsStatus
from tasks.results._notifications import Event, EventKind, group_events

log = logging.getLogger(__name__)

NOTIFIED_FILE = "notified.yaml"
LOCK_TIMEOUT_S = 30.0  # another process is sending: leave the rest to it (or to the next call)

Sender = Callable[[Event], bool]  # send one event; whether it was delivered


class SentEvent(BaseModel):
    """One event that was delivered: what, and when."""

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    title: str
    sent: str  # ISO 8601 UTC


class NotifiedRecord(BaseModel):
    """notified.yaml's content: the events sent (by key) that are still true of the group."""

    model_config = ConfigDict(extra="forbid")

    run_group: str
    sent: dict[str, SentEvent] = Field(default_factory=dict)


def notified_file(group_dir: str | Path) -> Path:
    """`<group>/.sweepflow/notified.yaml`."""
    return GroupLayout(Path(group_dir)).state_dir / NOTIFIED_FILE


def read_notified(group_dir: str | Path, run_group: str) -> NotifiedRecord:
    """The record (empty when there is none yet); `FileFormatError` naming the file when it is not one."""
    path = notified_file(group_dir)
    if not path.exists():
        return NotifiedRecord(run_group=run_group)
    data = read_yaml(path)
    try:
        return NotifiedRecord.model_validate(data)
    except ValidationError as error:
        raise FileFormatError(path, f"is not a notification record ({error.error_count()} problems); "
                                    "delete it to start afresh (events still true are then sent again)") from None


def write_notified(group_dir: str | Path, record: NotifiedRecord, now: str) -> Path:
    """Replace notified.yaml atomically (creating `.sweepflow/` when needed)."""
    path = notified_file(group_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_template("state/notified.yaml.j2", group=record.run_group, written=now,
                           body=dump_yaml(record.model_dump(mode="json")))
    return atomic_write_text(path, text)


def deliver(group_dir: str | Path, status: RunsStatus, stall_hours: float, send: Sender,
            now: datetime | None = None, lock_timeout: float = LOCK_TIMEOUT_S) -> list[Event]:
    """Send every event true of the group now and not sent before; record each one delivered.

    Under the record's lock: read it, compute `group_events`, call `send` for each new event
    (in order: failures for good, then finished or stalled), drop records no longer true, and
    write the record when it changed. An event `send` did not deliver stays unrecorded and is
    tried again by the next call. Returns the events delivered; none when another process holds
    the lock for longer than `lock_timeout` seconds (it is sending them).
    """
    now = now or datetime.now(UTC)
    path = notified_file(group_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{path}.lock", timeout=lock_timeout)
    try:
        with lock.acquire(poll_interval=0.05):
            return _deliver_locked(group_dir, status, stall_hours, send, now)
    except Timeout:
        log.info("notifications of %s: %s is held by another process; it sends them", status.run_group, lock.lock_file)
        return []


def _deliver_locked(group_dir: str | Path, status: RunsStatus, stall_hours: float, send: Sender,
                    now: datetime) -> list[Event]:
    """`deliver`'s work under the lock; the record is written after each delivery (a crash repeats none)."""
    record = read_notified(group_dir, status.run_group)
    current = group_events(status, group_dir, stall_hours, now)
    keys = {event.key for event in current}
    written = dict(record.sent)
    kept = {key: sent for key, sent in record.sent.items() if key in keys}

    def save() -> None:
        write_notified(group_dir, NotifiedRecord(run_group=status.run_group, sent=kept), _stamp())
        written.clear()
        written.update(kept)

    delivered = []
    for event in current:
        if event.key in kept or not send(event):
            continue
        kept[event.key] = SentEvent(kind=event.kind, title=event.title, sent=_stamp())
        delivered.append(event)
        save()
    if kept != written:
        save()  # records dropped: no longer true
    return delivered


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
