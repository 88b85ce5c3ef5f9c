"""Notifications through a saved Prefect block to a webhook receiver on 127.0.0.1, inside a flow run.

One temporary Prefect server (the test harness) and one HTTP receiver for the module. The block is
a `CustomWebhookNotificationBlock` saved as `lab` (`custom-webhook/lab` in the cluster settings);
each test calls `notify_group` in a tiny flow on a run group's status and reads what the receiver
got: finished, failed for good and stalled, each with the group, what happened and the flow run's
UI link, and nothing again on the next call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tasks.model import ClusterSettings, RunsStatus
from tasks.model._status import Attempt, initial_status
from tests.support.seed_plan import build_plan

pytestmark = pytest.mark.prefect

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Receiver:
    """What the webhook got: one JSON body per POST to /hook; /down answers 500."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = self.path == "/hook"
                if ok:
                    receiver.messages.append(json.loads(data))
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self) -> list[dict[str, Any]]:
        messages, self.messages = self.messages, []
        return messages

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A Prefect test server with the blocks `custom-webhook/lab` (to /hook) and `custom-webhook/down` (500)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.testing.utilities import prefect_test_harness

    receiver = Receiver()
    with prefect_test_harness(server_startup_timeout=60):
        for name, path in (("lab", "/hook"), ("down", "/down")):
            CustomWebhookNotificationBlock(
                name=name, url=f"{receiver.url}{path}", json_data={"subject": "{{subject}}", "text": "{{body}}"}
            ).save(name, overwrite=True)
        yield receiver
    receiver.stop()


def notify_in_flow(group_dir: Path, status: RunsStatus, settings: ClusterSettings, now: datetime) -> dict[str, Any]:
    """notify_group inside a flow run: the kinds sent and the run's id."""
    from prefect import flow
    from prefect.runtime import flow_run

    from flows._notify import notify_group

    @flow(name="notify-test", persist_result=False)
    def notify() -> dict[str, Any]:
        sent = notify_group(group_dir, status, settings, now=now)
        return {"kinds": [event.kind for event in sent], "flow_run_id": flow_run.get_id()}

    return notify()


def launched() -> RunsStatus:
    """The seed's 2x2 plan with every stage submitted at T0."""
    status = initial_status(build_plan())
    for number, (_, _, stage) in enumerate(status.stages()):
        if stage.status == "pending":
            stage.mark("submitted", now=T0.isoformat(), job_id=str(200 + number), attempts=[Attempt(job_id=str(200 + number))])
    return status


LAB = ClusterSettings(notify_block="custom-webhook/lab", stall_hours=6)


def check_message(message: dict[str, Any], group: str, what: str, flow_run_id: str) -> None:
    assert group in message["subject"] and what in message["subject"]
    assert f"/runs/flow-run/{flow_run_id}" in message["text"]


def test_finished_failed_for_good_and_stalled_reach_the_receiver_once(receiver: Receiver, tmp_path: Path) -> None:
    receiver.take()
    # (a) a finished group
    finished = launched()
    for _, _, stage in finished.stages():
        if not stage.is_terminal:
            stage.mark("completed", now=(T0 + timedelta(hours=1)).isoformat())
    result = notify_in_flow(tmp_path / "finished", finished, LAB, T0 + timedelta(hours=2))
    assert result["kinds"] == ["finished"]
    [message] = receiver.take()
    check_message(message, finished.run_group, "finished (15 completed)", result["flow_run_id"])
    assert "fine-tunes: 4 completed" in message["text"] and str(tmp_path / "finished") in message["text"]

    # (b) a fine-tune failed for good, the rest still running
    failing = launched()
    run = next(iter(failing.runs))
    failing.stage(run).mark("failed", now=(T0 + timedelta(hours=1)).isoformat(), reason="KeyError: 'output'")
    failing.stage(run).attempts[-1].remedy = "not retried: a code or data error"
    result = notify_in_flow(tmp_path / "failing", failing, LAB, T0 + timedelta(hours=2))
    assert result["kinds"] == ["failed_for_good"]
    [message] = receiver.take()
    check_message(message, failing.run_group, f"fine-tune {run} failed for good", result["flow_run_id"])
    assert "KeyError: 'output'" in message["text"]

    # (c) a stalled group: nothing changed for 6 h
    stalled = launched()
    result = notify_in_flow(tmp_path / "stalled", stalled, LAB, T0 + timedelta(hours=6, minutes=1))
    assert result["kinds"] == ["stalled"]
    [message] = receiver.take()
    check_message(message, stalled.run_group, "stalled: nothing changed for 6.02 h", result["flow_run_id"])
    assert "15 unfinished stages" in message["text"]

    # again, an hour later: nothing is repeated, in a new flow run
    for folder, status, hours in (("finished", finished, 3), ("failing", failing, 3), ("stalled", stalled, 7)):
        again = notify_in_flow(tmp_path / folder, status, LAB, T0 + timedelta(hours=hours))
        assert again["kinds"] == []
    assert receiver.take() == []


def test_a_failed_send_is_a_warning_and_is_tried_again(receiver: Receiver, tmp_path: Path) -> None:
    from tasks.results import read_notified

    receiver.take()
    status = launched()
    now = T0 + timedelta(hours=7)
    for block in ("custom-webhook/down", "custom-webhook/missing"):  # answers 500; not saved
        down = ClusterSettings(notify_block=block)
        assert notify_in_flow(tmp_path, status, down, now)["kinds"] == []
        assert read_notified(tmp_path, status.run_group).sent == {}
    assert notify_in_flow(tmp_path, status, ClusterSettings(), now)["kinds"] == []  # no block: nothing sent
    assert notify_in_flow(tmp_path, status, LAB, now)["kinds"] == ["stalled"]
    assert len(receiver.take()) == 1


def test_a_failed_site_check_is_sent(receiver: Receiver) -> None:
    from flows._notify import notify_check_failed

    receiver.take()
    failures = ["finetune: default partition, no GPU, 2G: failed: torchtune is not installed"]
    assert notify_check_failed("cap_2026-03-02", failures, LAB, checked_at="2026-03-02T09:00:00+00:00")
    [message] = receiver.take()
    assert message["subject"] == "sweepflow: cap_2026-03-02: the site check failed"
    assert "  - finetune: default partition, no GPU, 2G: failed: torchtune is not installed" in message["text"]
    assert not notify_check_failed("cap_2026-03-02", failures, ClusterSettings(notify_block="custom-webhook/down"))


def test_advance_runs_sends_failed_for_good_then_finished(receiver: Receiver, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring: each advance-runs step (flows/_advance.py) tells the block what became true, once."""
    import flows.advance_runs as advance_runs_module
    from tasks.model import RunGroup
    from tests.support.fake_scheduler import FakeScheduler, make_group, read_status

    receiver.take()
    group = make_group(tmp_path, cluster={"notify_block": "custom-webhook/lab", "submit_stagger_seconds": 0})
    fake = FakeScheduler()
    monkeypatch.setattr(advance_runs_module, "open_group", lambda folder: (RunGroup(folder), fake))

    def step() -> list[dict[str, Any]]:
        state = advance_runs_module.advance_runs(group_dir=str(group), return_state=True)
        assert state.is_completed(), state.message
        return receiver.take()

    assert step() == []  # everything submitted, nothing ended: nothing to say
    failing = next(run for run, entry in read_status(group).runs.items() if entry.finetune.job_id)
    fake.finish(read_status(group).stage(failing).job_id, "FAILED", exit_code="1:0")
    [message] = step()
    assert f"fine-tune {failing} failed for good" in message["subject"]
    for job_id, info in list(fake.jobs.items()):  # every other job fails too (a broken environment)
        if info.status in ("pending", "running"):
            fake.finish(job_id, "FAILED", exit_code="1:0")
    subjects = [m["subject"] for m in step()]
    assert len(subjects) == 4 and all("failed for good" in s for s in subjects[:3]), subjects
    assert subjects[3].startswith(f"sweepflow: {group.name} finished ("), subjects
    assert step() == []  # told once
