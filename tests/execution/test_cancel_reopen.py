"""cancel-runs (tasks/execution/_cancel.py) and reopening failed work (tasks/execution/_reopen.py) on a real run group.

Jobs go to `FakeScheduler`; tests/integration/test_launch_slurm.py cancels on the real cluster.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tasks.core._errors import SweepflowError
from tasks.execution._cancel import cancel_stages
from tasks.execution._reopen import reopen_failed_finetunes
from tasks.execution._retries import plan_retry
from tasks.execution._retry_policy import attempts_counted
from tasks.execution._submit import submit_pending
from tasks.execution._sync import sync_jobs
from tasks.model._status_file import StatusStore
from tests.support.fake_scheduler import FakeScheduler, cluster, read_status

R1, R2 = "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64"
BASE = "Llama-3.2-1B-Instruct_base"


def _ids(group: Path, run: str) -> list[str]:
    return [s.job_id for r, _, s in read_status(group).stages() if r == run and s.job_id]


def test_cancel_everything_one_scancel_and_every_unfinished_stage(launched) -> None:
    group, fake = launched
    done = read_status(group).stage(BASE, "cap").job_id
    fake.finish(done, "COMPLETED")
    StatusStore(group / "runs_status.yaml").update(lambda s: s.stage(BASE, "cap").mark("completed"))
    report = cancel_stages(group, fake, reason="wrong learning rate")
    status = read_status(group)
    queued = sorted({s.job_id for _, _, s in status.stages() if s.job_id} - {done}, key=int)
    assert sorted(fake.cancelled, key=int) == queued == sorted(report.cancelled_jobs, key=int)
    assert status.stage(BASE, "cap").status == "completed"  # finished work keeps its outcome
    for run, key, stage in status.stages():
        if (run, key) != (BASE, "cap") and stage.status != "skipped":
            assert stage.status == "cancelled", (run, key, stage.status)
            assert stage.reason == "cancelled with cancel-runs: wrong learning rate"
    last = status.stage(R1).attempts[-1]
    assert (last.remedy, last.cause, last.scheduler_state) == ("not retried: cancelled by the researcher", "cancelled", "CANCELLED by 1000")
    assert last.finished == status.stage(R1).last_updated
    assert submit_pending(group, fake, cluster(), sleep=lambda s: None).submitted == []  # nothing comes back
    sync_jobs(group, fake)  # the scheduler's CANCELLED changes nothing more
    assert read_status(group).stage(R1).status == "cancelled"


def test_cancel_some_runs_only(launched) -> None:
    group, fake = launched
    report = cancel_stages(group, fake, runs=[R2])
    assert sorted(report.cancelled_jobs) == sorted(_ids(group, R2)) == sorted(fake.cancelled)
    assert {s.split("/")[0] for s in report.stages} == {R2}
    assert read_status(group).stage(R1).status == "submitted"
    assert read_status(group).stage(R2).reason == "cancelled with cancel-runs"


def test_cancel_marks_not_yet_submitted_stages_too(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake = run_group, fake_scheduler
    submit_pending(group, fake, cluster(max_queued_jobs=3), sleep=lambda s: None)  # the cap holds the rest back
    report = cancel_stages(group, fake)
    assert len(report.cancelled_jobs) == 3 and len(report.stages) == sum(
        1 for _, _, s in read_status(group).stages() if s.status == "cancelled")
    assert all(s.status in ("cancelled", "skipped") for _, _, s in read_status(group).stages())
    assert submit_pending(group, fake, cluster(), sleep=lambda s: None).submitted == []


def test_cancel_unknown_run_or_refused_scancel_changes_nothing(launched) -> None:
    group, fake = launched
    before = (group / "runs_status.yaml").read_bytes()
    with pytest.raises(SweepflowError, match="no run named Llama-9B_rank4"):
        cancel_stages(group, fake, runs=["Llama-9B_rank4", R1])

    def refuse(job_ids: list[str]) -> None:
        raise RuntimeError("scancel 101 failed (exit 1): Access/permission denied")

    fake.cancel = refuse  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="permission denied"):
        cancel_stages(group, fake)
    assert (group / "runs_status.yaml").read_bytes() == before


def test_reopened_fine_tunes_run_again_with_a_fresh_retry_budget(launched) -> None:
    group, fake = launched
    store = StatusStore(group / "runs_status.yaml")
    first = read_status(group).stage(R1).job_id
    fake.finish(first, "FAILED", exit_code="1:0")
    sync_jobs(group, fake)
    assert plan_retry(group, R1).kind == "none"  # a code error: never retried by cause
    store.update(lambda s: s.stage(R1).attempts[-1].__setattr__("remedy", "not retried: code error"))
    cancel_stages(group, fake, runs=[R2])

    assert reopen_failed_finetunes(group) == [R1, R2]
    status = read_status(group)
    for run in (R1, R2):
        stage = status.stage(run)
        assert stage.status == "pending" and stage.job_id is None and stage.reason.startswith("reopened after:")
        assert stage.attempts[-1].reopened is True and attempts_counted(stage) == 0
        assert all(s.status == "pending" for s in status.runs[run].evaluations.values())
    assert status.stage(R1).attempts[0].job_id == first  # the failed attempt stays on record

    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    resubmitted = {(j.run, j.stage) for j in report.submitted}
    assert {(R1, "finetune"), (R2, "finetune")} <= resubmitted
    new_r1 = read_status(group).stage(R1).job_id
    assert all(j.after_ok == [new_r1] for j in report.submitted if j.run == R1 and j.stage != "finetune")
    assert attempts_counted(read_status(group).stage(R1)) == 1 and len(read_status(group).stage(R1).attempts) == 2


def test_reopen_keeps_completed_evaluations_and_refuses_unknown_runs(launched) -> None:
    group, fake = launched
    store = StatusStore(group / "runs_status.yaml")

    def outcome(status) -> None:
        status.stage(R1).mark("failed", reason="disk quota")
        status.stage(R1, "cap_epoch_0").mark("completed")

    store.update(outcome)
    with pytest.raises(SweepflowError, match="no run named nope"):
        reopen_failed_finetunes(group, runs=["nope"])
    assert reopen_failed_finetunes(group, runs=[R1]) == [R1]
    status = read_status(group)
    assert status.stage(R1, "cap_epoch_0").status == "completed" and status.stage(R1, "cap_epoch_1").status == "pending"
    assert reopen_failed_finetunes(group) == []  # nothing else failed


def test_a_stage_cancelled_while_its_job_is_submitted_gets_that_job_cancelled(run_group: Path) -> None:
    """cancel-runs starts while launch-runs is inside sbatch for R1's fine-tune. The submission
    pass holds the status lock, so cancel-runs' update waits for it; it then finds R1's jobs
    recorded after its own scancel and cancels them too: no job of a cancelled stage runs on.
    """
    group = run_group
    cancels: list[threading.Thread] = []

    class CancelledMeanwhile(FakeScheduler):
        def submit(self, script, cwd, after_ok=None, overrides=None, script_args=None):  # type: ignore[no-untyped-def]
            job_id = super().submit(script, cwd, after_ok, overrides)
            if self.jobs[job_id].name == R1 and not cancels:
                cancels.append(threading.Thread(target=cancel_stages, args=(group, self),
                                                kwargs={"runs": [R1], "reason": "changed my mind"}))
                cancels[0].start()
                time.sleep(0.3)  # cancel-runs reads, scancels what it knows, then waits for the lock
            return job_id

    fake = CancelledMeanwhile()
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    cancels[0].join(30)
    status = read_status(group)
    r1_jobs = [s.job_id for _, s in [("ft", status.stage(R1)), *status.runs[R1].evaluations.items()]]
    assert all(r1_jobs) and all(fake.jobs[j].status == "cancelled" for j in r1_jobs), r1_jobs
    assert status.stage(R1).status == "cancelled" and "changed my mind" in (status.stage(R1).reason or "")
    assert all(s.status == "cancelled" for s in status.runs[R1].evaluations.values())
    assert status.stage(R2).status == "submitted" and fake.jobs[status.stage(R2).job_id].status == "pending"


def test_a_job_launch_runs_could_not_record_is_cancelled_too(
    run_group: Path, fake_scheduler: FakeScheduler, tmp_path: Path
) -> None:
    """launch-runs died between sbatch's answer and the status write: the job runs, the status
    says pending. cancel-runs finds it (job name + submit folder) and cancels it.
    """
    group, fake = run_group, fake_scheduler
    lost = fake.submit(group / R1 / "finetune.slurm", group / R1)
    other_group = tmp_path / "other" / R1
    other_group.mkdir(parents=True)
    foreign = fake.submit(group / R1 / "finetune.slurm", other_group)  # same name, another run group
    assert read_status(group).stage(R1).status == "pending"
    report = cancel_stages(group, fake, runs=[R1])
    assert report.cancelled_jobs == [lost] and fake.cancelled == [lost]
    assert fake.jobs[foreign].status == "pending"
    assert read_status(group).stage(R1).status == "cancelled"
