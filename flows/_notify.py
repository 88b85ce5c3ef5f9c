"""Notifications through a saved Prefect notification block: a run group's events, a failed site check.

Reads: the cluster settings' `notify_block` (`<block type slug>/<name>`, e.g. `slack-webhook/lab`,
`custom-webhook/lab`, `sendgrid-email/me`: any saved `NotificationBlock`), loaded from the Prefect
API when there is something to send; the current flow run (for its UI link).
Writes: `<group>/.sweepflow/notified.yaml` (through `tasks.results.deliver`); the messages.
What is sent and when is decided in `tasks.results` (`tasks/results/_notifications.py`). A failure
to load the block or to send is a warning, never an error: a notification never stops a sweep,
and an event that was not delivered is tried again by the next call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect.blocks.core import Block
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from tasks.model import ClusterSettings, RunGroup, RunsStatus
from tasks.results import Event, check_failed_event, deliver, group_error_event

_log = logging.getLogger("sweepflow.notify")


def _logger() -> Any:
    """The run's logger inside a flow or task run (its lines show in the UI), else the module's."""
    try:
        return get_run_logger()
    except MissingContextError:
        return _log


def flow_run_ui_url() -> str | None:
    """The Prefect UI page of the current flow run (PREFECT_UI_URL/runs/flow-run/<id>); None outside one."""
    try:
        from prefect.runtime import flow_run
        from prefect.settings import PREFECT_UI_URL

        base, run_id = PREFECT_UI_URL.value(), flow_run.get_id()
    except Exception:  # no settings, no context: a message without a link
        return None
    return f"{str(base).rstrip('/')}/runs/flow-run/{run_id}" if base and run_id else None


def _sync(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a Prefect block method synchronously (those with an async twin are told so; others are plain)."""
    return method(*args, **kwargs, _sync=True) if hasattr(method, "aio") else method(*args, **kwargs)


def _load(block_name: str) -> Any | None:
    """The saved block, or None (warned) when it cannot be loaded or cannot notify."""
    import prefect.blocks.notifications  # noqa: F401  (registers Prefect's notification block types)

    try:
        block = _sync(Block.load, block_name)
    except Exception as error:
        _logger().warning("notifications: cannot load the block %r (nothing sent): %s", block_name, error)
        return None
    if not callable(getattr(block, "notify", None)):
        _logger().warning("notifications: block %r (%s) cannot notify (nothing sent)", block_name, type(block).__name__)
        return None
    return block


def _send(block: Any, block_name: str, event: Event, ui_url: str | None) -> bool:
    """Send one event through `block`; whether it was delivered (a failure is logged as a warning)."""
    try:
        # Apprise-based blocks (Slack, email, ...) report a failed send only when asked to
        with block.raise_on_failure() if hasattr(block, "raise_on_failure") else contextlib.nullcontext():
            _sync(block.notify, event.message(ui_url), subject=event.title)
    except Exception as error:
        _logger().warning("notifications: %r could not send %r (tried again next time): %s",
                          block_name, event.title, error)
        return False
    _logger().info("notified %s: %s", block_name, event.title)
    return True


def _sender(block_name: str, ui_url: str | None) -> Callable[[Event], bool]:
    """A sender that loads the block on its first event (no API call when there is nothing to send)."""
    loaded: list[Any] = []

    def send(event: Event) -> bool:
        if not loaded:
            loaded.append(_load(block_name))
        block = loaded[0]
        return block is not None and _send(block, block_name, event, ui_url)

    return send


def send_events(events: Sequence[Event], block_name: str | None, ui_url: str | None = None) -> list[Event]:
    """Send each event through the saved notification block `block_name`; the events delivered.

    The body ends with `ui_url` (default: the current flow run's UI page). No block named:
    nothing is sent (a debug line). Records nothing: `notify_group` sends each event once.
    """
    if not events:
        return []
    if not block_name:
        _logger().debug("notifications: no notify_block in the cluster settings; %d event(s) not sent", len(events))
        return []
    send = _sender(block_name, ui_url if ui_url is not None else flow_run_ui_url())
    return [event for event in events if send(event)]


def notify_group(group_dir: str | Path, status: RunsStatus, settings: ClusterSettings,
                 now: datetime | None = None) -> list[Event]:
    """Tell the researcher what happened to a run group since the last call, once per event.

    Call it after each sync of the group (the advance loop, the scheduled sync), with the status
    just written and the group's cluster settings (`RunGroup.cluster`). Sends, through
    `settings.notify_block`: `finished` (every stage ended: counts, the stages that did not
    complete), `failed_for_good` (one per fine-tune that failed and will not be retried, with its
    reason), `stalled` (unfinished work and no stage changed for `settings.stall_hours`; once per
    stall). Each carries the group, what happened, the group folder and this flow run's UI link.
    What was delivered is recorded in `<group>/.sweepflow/notified.yaml` (under a file lock, so no
    other flow or process sends it again); an event that could not be sent is tried next call.
    Never raises: no block configured, an unreadable record, a failed send are logged. `now`
    (default: the current time) decides the stall. Returns the events delivered.
    """
    if not settings.notify_block:
        _logger().debug("notifications: no notify_block for %s; nothing sent", status.run_group)
        return []
    send = _sender(settings.notify_block, flow_run_ui_url())
    try:
        return deliver(group_dir, status, settings.stall_hours, send, now=now)
    except Exception as error:  # an unreadable record, a full disk: the sweep goes on
        _logger().warning("notifications of %s not sent: %s", status.run_group, error)
        return []


def notify_run_group(group: RunGroup) -> list[Event]:
    """`notify_group` on the group's current status; the status is read only when a block is named."""
    if not group.cluster.notify_block:
        return []
    return notify_group(group.root, group.status.read(), group.cluster)


def notify_check_failed(group: str, failures: str | Sequence[str], settings: ClusterSettings,
                        group_dir: str | Path | None = None, checked_at: str | None = None) -> bool:
    """Tell the researcher that a check before the sweep failed (plan-runs' site check); whether it was sent.

    `group` is the run group's name, `failures` one line per failed check (e.g.
    `SiteCheckReport.failures()`) or one message, `group_dir` where the group would be (shown
    in the message; nothing is written there, the group may not exist), `checked_at` when the
    check ran. Sent once per call (not recorded: each failed plan-runs run is its own event),
    through `settings.notify_block`, with this flow run's UI link. Never raises.
    """
    try:
        event = check_failed_event(group, failures, group_dir=group_dir, checked_at=checked_at)
    except Exception as error:  # a message that cannot be rendered must not fail the plan's own report
        _logger().warning("notifications: the site-check message for %s could not be built: %s", group, error)
        return False
    return bool(send_events([event], settings.notify_block))


def notify_group_error(folder: str | Path, error: str) -> bool:
    """Tell the researcher that a run group could not be advanced (`error` names the file); whether it was sent.

    Through the group's own `notify_block` when its plan can be read. Sent on each scan that meets
    the error (a scan never writes into a group it could not advance). Never raises.
    """
    try:
        settings = RunGroup(folder).cluster
    except Exception as why:  # the plan itself is unreadable: the log line is all there is
        _logger().warning("notifications: %s has no readable notify_block (%s); nothing sent", folder, why)
        return False
    try:
        event = group_error_event(Path(folder).name, error, group_dir=folder)
    except Exception as why:
        _logger().warning("notifications: the error message for %s could not be built: %s", folder, why)
        return False
    return bool(send_events([event], settings.notify_block))
