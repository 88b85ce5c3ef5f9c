"""Re-running chosen runs or stages on request (tasks/execution/_rerun.py): finished or failed, reason recorded.

A set-up group whose jobs went to `FakeScheduler` (tests/support/fake_scheduler.py); the next
`submit_pending` submits exactly what was reopened.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.core._errors import SweepflowError
from tasks.execution._rerun import rerun_stages
from tasks.execution._retry_policy import attempts_counted
from tasks.execution._submit import submit_pending
from tasks.model._status import FinetuneOverrides
from tasks.model._status_file import StatusStore
from tests.support.fake_scheduler import cluster, read_status

R1, R2 = "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64"
BASE = "Llama-3.2-1B-Instruct_base"


def _complete_everything(group: Path) -> None:
    def done(status) -> None:
        for _, _, stage in status.stages():
            if stage.status != "skipped":
                stage.mark("completed")

    StatusStore(group / "runs_status.yaml").update(done, force=True)


def test_a_completed_fine_tune_runs_again_with_its_evaluations(launched) -> None:
    group, fake = launched
    _complete_everything(group)
    first = read_status(group).stage(R1).job_id
    report = rerun_stages(group, runs=[R1], reason="the data file was fixed")
    assert report.reopened == [f"{R1}/finetune", f"{R1}/cap_epoch_0", f"{R1}/cap_epoch_1"]
    status = read_status(group)
    stage = status.stage(R1)
    assert stage.status == "pending" and stage.job_id is None
    assert stage.reason == "re-run requested: the data file was fixed (was completed)"
    assert stage.attempts[0].job_id == first and stage.attempts[-1].reopened is True
    assert attempts_counted(stage) == 0  # a fresh retry budget
    assert all(s.status == "pending" for s in status.runs[R1].evaluations.values())
    assert status.stage(R2).status == "completed"  # only what was asked

    submitted = submit_pending(group, fake, cluster(), sleep=lambda s: None).submitted
    assert {(j.run, j.stage) for j in submitted} == {(R1, "finetune"), (R1, "cap_epoch_0"), (R1, "cap_epoch_1")}


def test_only_evaluations_or_one_task_or_one_key(launched) -> None:
    group, fake = launched
    _complete_everything(group)
    assert rerun_stages(group, runs=[R2], stages=["evaluations"], reason="new scorer").reopened == [
        f"{R2}/cap_epoch_0", f"{R2}/cap_epoch_1"]
    assert read_status(group).stage(R2).status == "completed"  # the checkpoint stays
    assert rerun_stages(group, runs=[BASE], stages=["cap"], reason="r").reopened == [f"{BASE}/cap"]
    assert rerun_stages(group, runs=[R1], stages=["cap_epoch_1"], reason="r").reopened == [f"{R1}/cap_epoch_1"]
    assert read_status(group).stage(R1, "cap_epoch_0").status == "completed"
    submitted = submit_pending(group, fake, cluster(), sleep=lambda s: None).submitted
    assert all(j.after_ok in (None, []) for j in submitted)  # the checkpoints exist: no dependency
    assert {(j.run, j.stage) for j in submitted} == {
        (R2, "cap_epoch_0"), (R2, "cap_epoch_1"), (BASE, "cap"), (R1, "cap_epoch_1")}


def test_refusals_change_nothing(launched) -> None:
    group, _ = launched
    before = (group / "runs_status.yaml").read_bytes()
    with pytest.raises(SweepflowError, match="say why"):
        rerun_stages(group, runs=[R1], reason=" ")
    with pytest.raises(SweepflowError, match=f"{R1}/finetune.*queued or running"):
        rerun_stages(group, runs=[R1], reason="r")  # its jobs are queued
    with pytest.raises(SweepflowError, match="no run named nope"):
        rerun_stages(group, runs=["nope"], reason="r")
    with pytest.raises(SweepflowError, match="no stage named typo"):
        rerun_stages(group, runs=[R1], stages=["typo"], reason="r")
    assert (group / "runs_status.yaml").read_bytes() == before


def test_a_resumed_fine_tune_trains_from_the_start_again(launched) -> None:
    group, _ = launched
    _complete_everything(group)

    def resumed(status) -> None:
        status.stage(R1).overrides = FinetuneOverrides(resume_epoch=0, batch_size=2)

    StatusStore(group / "runs_status.yaml").update(resumed)
    report = rerun_stages(group, runs=[R1], stages=["finetune"], reason="bad resume")
    assert report.rerendered == [R1]
    overrides = read_status(group).stage(R1).overrides
    assert overrides is not None and overrides.resume_epoch is None and overrides.batch_size == 2  # OOM fix kept
    config = yaml.safe_load((group / R1 / "finetune.yaml").read_text())
    assert config["resume_from_checkpoint"] is False and config["batch_size"] == 2


def _retrained_without_new_checkpoints(tmp_path: Path):
    """R1 trained and synced completed; its checkpoints an hour old; then re-run and submitted again."""
    import os
    import time

    from tasks.execution._sync import sync_jobs
    from tests.support.fake_scheduler import launched_group
    from tests.support.finished_runs import write_training_outputs

    group, fake = launched_group(tmp_path)
    first = read_status(group).stage(R1).job_id
    write_training_outputs(group, R1, first, disk_logger=False)
    fake.finish(first, "COMPLETED", elapsed_s=60.0)
    sync_jobs(group, fake)
    assert read_status(group).stage(R1).status == "completed"

    def evaluated(status) -> None:
        for stage in status.runs[R1].evaluations.values():
            stage.mark("completed")

    StatusStore(group / "runs_status.yaml").update(evaluated)
    hour_ago = time.time() - 3600
    for path in (group / R1).glob("epoch_*/*"):
        os.utime(path, (hour_ago, hour_ago))
    rerun_stages(group, runs=[R1], stages=["finetune"], reason="the data was fixed")
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    return group, fake, read_status(group).stage(R1).job_id


def test_a_retrained_finetune_is_not_completed_by_the_earlier_attempts_checkpoints(tmp_path: Path) -> None:
    from tasks.execution._sync import sync_jobs

    group, fake, again = _retrained_without_new_checkpoints(tmp_path)
    fake.finish(again, "COMPLETED", elapsed_s=60.0)  # exit 0, yet no epoch_N written by this job
    sync_jobs(group, fake)
    stage = read_status(group).stage(R1)
    assert stage.status == "failed" and "epoch_0" in (stage.reason or "")


def test_a_lost_retrained_finetune_is_not_completed_by_the_earlier_attempts_checkpoints(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from tasks.execution._sync import LOST, sync_jobs

    group, fake, again = _retrained_without_new_checkpoints(tmp_path)
    del fake.jobs[again]  # the scheduler has no record of it (yet), ten minutes after its submission
    ten_minutes_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat(timespec="seconds")
    StatusStore(group / "runs_status.yaml").update(
        lambda s: setattr(s.stage(R1).attempts[-1], "submitted", ten_minutes_ago))
    sync_jobs(group, fake)
    stage = read_status(group).stage(R1)
    assert stage.status == "submitted" and stage.reason == LOST  # not "completed" from the old epoch_N/
