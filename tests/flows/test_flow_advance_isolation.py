"""advance-runs advances every run group in isolation (issue 23), in a real Prefect flow run.

Four run groups under one output_dir, on the REAL local backend, sorted so the broken ones come
first: one whose `.sweepflow/` state folder is a file (its advance lock cannot be made: an
OSError, not a SweepflowError), one with a truncated runs_status.yaml, one whose
runs_status.yaml was deleted, and a healthy one whose every stage ran (stand-in jobs). Before the
fix the first OSError aborted the whole scan (the healthy group never advanced), and the
damaged and missing files were skipped silently with the run ending Completed. Now the healthy
group ends completed, each broken group is logged naming the group and the file, a message per
broken group reaches the configured notification block (a webhook on 127.0.0.1), and the scan
run ends Failed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.backends.local import LocalBackend
from tasks.model._design_file import parse_design
from tasks.model._group import RunGroup
from tasks.planning._deliver import deliver_plan
from tasks.planning._planner import build_plan
from tasks.setup._experiment import set_up_group
from tests.flows.test_notify import Receiver
from tests.support.fake_scheduler import NOW
from tests.support.fakesite import DATE, design
from tests.support.stand_in_jobs import run_every_stage

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.testing.utilities import prefect_test_harness

    receiver = Receiver()
    with prefect_test_harness(server_startup_timeout=60):
        CustomWebhookNotificationBlock(
            name="lab", url=f"{receiver.url}/hook", json_data={"subject": "{{subject}}", "text": "{{body}}"}
        ).save("lab", overwrite=True)
        yield receiver
    receiver.stop()


def _group(root: Path, name: str) -> Path:
    data = design(root, name=name, cluster={"backend": "local", "notify_block": "custom-webhook/lab"})
    data["evaluation"]["epochs"] = "all"
    group = deliver_plan(build_plan(parse_design(data), date=DATE), NOW)
    set_up_group(group)
    return group


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_one_broken_group_does_not_stop_the_others(receiver: Receiver, tmp_path: Path) -> None:
    from flows.advance_runs import advance_runs

    flow_log = logging.getLogger("prefect.flow_runs")  # the flow run's logger
    handler = _Lines()
    flow_log.addHandler(handler)

    lock_broken = _group(tmp_path, "a_lock")
    shutil.rmtree(lock_broken / ".sweepflow", ignore_errors=True)
    (lock_broken / ".sweepflow").write_text("not a folder\n")
    damaged = _group(tmp_path, "b_damaged")
    status = damaged / "runs_status.yaml"
    status.write_text(status.read_text()[: len(status.read_text()) // 3].rsplit("\n    ", 1)[0] + "\n")
    missing = _group(tmp_path, "c_missing")
    (missing / "runs_status.yaml").unlink()
    healthy = _group(tmp_path, "z_healthy")
    run_every_stage(healthy, LocalBackend(RunGroup(healthy).layout.local_jobs), tmp_path / "scripts")
    receiver.take()

    state: Any = advance_runs(output_dir=str(tmp_path / "out"), return_state=True)
    assert state.is_failed() and "3 run group(s) could not be advanced" in (state.message or "")
    first = RunGroup(healthy).status.read()  # the healthy group's jobs adopted in this step
    assert all(s.job_id for _, _, s in first.stages() if s.status != "skipped")
    flow_log.removeHandler(handler)
    errors = handler.lines
    subjects = sorted(m["subject"] for m in receiver.take())
    assert subjects == [f"sweepflow: {g.name} cannot be advanced" for g in (lock_broken, damaged, missing)]

    state = advance_runs(output_dir=str(tmp_path / "out"), return_state=True)  # the next scheduled scan
    assert state.is_failed()
    after = RunGroup(healthy).status.read()
    assert {s.status for _, _, s in after.stages()} <= {"completed", "skipped"}  # the healthy group advanced
    for folder, file in ((lock_broken, ".sweepflow"), (damaged, "runs_status.yaml"), (missing, "runs_status.yaml")):
        assert any(folder.name in line and str(folder / file) in line for line in errors), (folder, errors)
