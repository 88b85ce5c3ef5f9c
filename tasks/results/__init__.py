"""What a run group produced and what it has to tell: results, measurements, notifications.

Scores, losses, time, GPU-hours; summary.md, plots, measured_runs.yaml; the notifications (finished,
failed for good, stalled, a failed site check) and `.sweepflow/notified.yaml`, the record of those sent.

Layer 4 (imports the layers below: `core`, `model`, `backends`, `training`, `evaluation`).
"""

from tasks.results._measured import measurements, record_measurements
from tasks.results._notifications import (
    Event,
    EventKind,
    check_failed_event,
    fine_tune_failed_for_good,
    group_error_event,
    group_events,
    last_change,
)
from tasks.results._notified import NotifiedRecord, Sender, SentEvent, deliver, notified_file, read_notified
from tasks.results._summarize import Summary, render_summary, summarize, write_summary

__all__ = [
    "Event",
    "EventKind",
    "NotifiedRecord",
    "Sender",
    "SentEvent",
    "Summary",
    "check_failed_event",
    "deliver",
    "fine_tune_failed_for_good",
    "group_error_event",
    "group_events",
    "last_change",
    "measurements",
    "notified_file",
    "read_notified",
    "record_measurements",
    "render_summary",
    "summarize",
    "write_summary",
]
