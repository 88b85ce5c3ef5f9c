"""Every stage reaches a terminal state: evaluations of a fine-tune that ended for good are cancelled.

The case: the launcher died between submissions (or a user's scancel landed on the fine-tune
first), so the fine-tune's evaluations have no job, and then the fine-tune failed for good or
was cancelled. Their jobs could never run; whichever flow syncs next (launch-runs, the
scheduled sync-status, cancel-runs) marks them cancelled with the reason, so the group can
finish. A failure still waiting for its retry decision keeps them pending (a retry re-chains them).
"""

from __future__ import annotations

from pathlib import Path

from tasks.execution import reopen_failed_finetunes, retry_run, submit_pending, sync_jobs
from tasks.model._status import RunsStatus
from tasks.model._status_file import StatusStore
from tests.support.fake_scheduler import FakeScheduler, cluster, read_status

RUN = "Llama-3.2-1B-Instruct_rank4"
EVALS = ["cap_epoch_0", "cap_epoch_1"]


def _launcher_died_after_the_finetune(group: Path, fake: FakeScheduler) -> str:
    """Submit everything, then forget RUN's evaluation jobs as if sbatch had never been called for them."""
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    status = read_status(group)
    for key in EVALS:
        fake.jobs.pop(status.stage(RUN, key).job_id, None)

    def unsubmitted(current: RunsStatus) -> None:
        for key in EVALS:
            current.stage(RUN, key).mark("pending", job_id=None)
            current.stage(RUN, key).attempts.clear()

    StatusStore(group / "runs_status.yaml").update(unsubmitted, force=True)
    return status.stage(RUN).job_id


def test_a_code_error_ends_its_unsubmitted_evaluations(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake = run_group, fake_scheduler
    job = _launcher_died_after_the_finetune(group, fake)
    fake.finish(job, "FAILED", exit_code="1:0", node="gpu2", elapsed_s=12.0)

    first = sync_jobs(group, fake)  # failed, retry not decided yet: the evaluations wait for it
    assert read_status(group).stage(RUN).status == "failed"
    assert [read_status(group).stage(RUN, k).status for k in EVALS] == ["pending", "pending"]
    assert first.not_run == []

    outcome = retry_run(group, RUN, fake, cluster())
    assert outcome.job_id is None and "not retried" in outcome.remedy.description
    report = sync_jobs(group, fake)
    status = read_status(group)
    for key in EVALS:
        stage = status.stage(RUN, key)
        assert stage.status == "cancelled"
        assert stage.reason is not None and stage.reason.startswith("not run: its fine-tune failed (job failed")
    assert sorted(report.not_run) == [f"{RUN}/{k}" for k in EVALS]
    assert report.counts.get("pending", 0) == 0  # nothing left that no flow would ever move
    assert sync_jobs(group, fake).not_run == []  # once


def test_a_cancelled_finetune_ends_its_unsubmitted_evaluations(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake = run_group, fake_scheduler
    job = _launcher_died_after_the_finetune(group, fake)
    fake.finish(job, "CANCELLED by 1000", node="gpu1", elapsed_s=3.0)
    report = sync_jobs(group, fake)
    status = read_status(group)
    assert status.stage(RUN).status == "cancelled"
    assert [status.stage(RUN, k).status for k in EVALS] == ["cancelled", "cancelled"]
    assert status.stage(RUN, EVALS[0]).reason == "not run: its fine-tune cancelled (cancelled by a user (CANCELLED by 1000))"
    assert sorted(report.not_run) == [f"{RUN}/{k}" for k in EVALS]
    # the other runs are untouched: their evaluations still wait on their own fine-tunes
    assert read_status(group).stage("Llama-3.2-1B-Instruct_rank64", EVALS[0]).status == "submitted"


def test_rerunning_the_finetune_reopens_them(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake = run_group, fake_scheduler
    job = _launcher_died_after_the_finetune(group, fake)
    fake.finish(job, "CANCELLED by 1000")
    sync_jobs(group, fake)
    assert reopen_failed_finetunes(group, [RUN]) == [RUN]
    status = read_status(group)
    assert status.stage(RUN).status == "pending"
    assert [status.stage(RUN, k).status for k in EVALS] == ["pending", "pending"]
    assert sync_jobs(group, fake).not_run == []  # a pending fine-tune: nothing to cancel
