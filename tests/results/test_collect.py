"""collect_evaluations counts only the log of a stage's current attempt.

A set-up fake-site group (tests/support/fake_scheduler.py) whose evaluations finished with real
inspect-ai logs (`mock_eval`), each stage with the attempt that wrote it; then stages are re-run
(rerun-runs): an earlier attempt's log must not stand in for the current attempt's result.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from tasks.execution._rerun import rerun_stages
from tasks.model._plan_file import load_plan
from tasks.model._status import Attempt
from tasks.model._status_file import StatusStore
from tasks.results._collect import collect_evaluations
from tests.support.fake_scheduler import make_group
from tests.support.finished_runs import mock_eval

M = "Llama-3.2-1B-Instruct"
R4, BASE = f"{M}_rank4", f"{M}_base"
HOUR = 3600.0


def _iso(seconds_ago: float) -> str:
    return datetime.fromtimestamp(time.time() - seconds_ago, UTC).isoformat(timespec="seconds")


def _finished(group: Path) -> dict[str, Path]:
    """R4's epoch 1 and BASE scored an hour ago by the jobs on record (every stage completed)."""
    digest = load_plan(group).design_hash
    logs = {R4: mock_eval(group, R4, 1, 2, digest), BASE: mock_eval(group, BASE, "base", 1, digest)}
    for log in logs.values():
        os.utime(log, (time.time() - HOUR, time.time() - HOUR))

    def done(status) -> None:
        for _, _, stage in status.stages():
            if stage.status != "skipped":
                stage.mark("completed", job_id="10")
                stage.attempts = [Attempt(job_id="10", submitted=_iso(2 * HOUR), elapsed_s=60.0)]

    StatusStore(group / "runs_status.yaml").update(done)
    return logs


def _scores(group: Path) -> dict[tuple[str, object], tuple[float | None, str | None]]:
    status = StatusStore(group / "runs_status.yaml").read()
    return {(r.run, r.epoch): (r.accuracy, r.reason) for r in collect_evaluations(load_plan(group), status)
            if r.task == "cap"}


def test_the_current_attempts_logs_are_counted(tmp_path: Path) -> None:
    group = make_group(tmp_path)
    _finished(group)
    scores = _scores(group)
    assert scores[(R4, 1)][0] == 0.5 and scores[(BASE, None)][0] == 0.25


def test_a_retrained_checkpoint_does_not_report_the_old_checkpoints_scores(tmp_path: Path) -> None:
    group = make_group(tmp_path)
    _finished(group)
    rerun_stages(group, runs=[R4], stages=["finetune"], reason="the training data was fixed")
    accuracy, reason = _scores(group)[(R4, 1)]
    assert accuracy is None  # the old checkpoint's log is not the new checkpoint's result
    assert reason is not None and "re-run requested" in reason
    assert _scores(group)[(BASE, None)][0] == 0.25  # untouched


def test_a_failed_rerun_does_not_fall_back_to_the_earlier_attempts_success(tmp_path: Path) -> None:
    group = make_group(tmp_path)
    _finished(group)
    rerun_stages(group, runs=[BASE], stages=["cap"], reason="score it again")

    def failed(status) -> None:
        stage = status.stage(BASE, "cap")
        stage.mark("failed", job_id="20", reason="task failed: .eval status error")
        stage.attempts.append(Attempt(job_id="20", submitted=_iso(60.0), elapsed_s=30.0))

    StatusStore(group / "runs_status.yaml").update(failed)
    mock_eval(group, BASE, "base", 4, load_plan(group).design_hash, fail=True)
    accuracy, reason = _scores(group)[(BASE, None)]
    assert accuracy is None and reason is not None and "error" in reason
