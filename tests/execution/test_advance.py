"""The advance step: sync, retry by cause, end what cannot run, submit what fits; one advancer at a time.

Jobs go to `FakeScheduler`; tests/integration/test_advance_slurm.py runs the same on the real cluster.
"""

from __future__ import annotations

import threading
from pathlib import Path

from filelock import FileLock

from tasks.execution import RetryRequest, advance
from tasks.execution._retries import RetryOutcome
from tasks.model._layout import GroupLayout
from tasks.model._status import RunsStatus
from tasks.model._status_file import StatusStore
from tests.support.fake_scheduler import FakeScheduler, read_status

RUN = "Llama-3.2-1B-Instruct_rank4"
EVALS = ["cap_epoch_0", "cap_epoch_1"]


def _no_sleep(seconds: float) -> None:
    return None


def _ids(group: Path) -> list[str]:
    return [s.job_id for _, _, s in read_status(group).stages() if s.job_id]


def test_a_second_step_changes_nothing(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    first = advance(run_group, fake_scheduler, sleep=_no_sleep)
    assert first.launch is not None and len(first.launch.submitted) == len(_ids(run_group)) > 0
    submits = len(fake_scheduler.submits)
    second = advance(run_group, fake_scheduler, sleep=_no_sleep)
    assert len(fake_scheduler.submits) == submits and second.launch is not None and not second.launch.submitted
    assert second.status.counts == first.status.counts and not second.finished


def test_a_held_lock_skips_the_step(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    with FileLock(str(GroupLayout(run_group).advance_lock)):
        report = advance(run_group, fake_scheduler, sleep=_no_sleep)
    assert report.skipped and not fake_scheduler.submits and fake_scheduler.calls == 0


def test_a_code_error_with_its_evaluations_unsubmitted_ends_every_stage(
    run_group: Path, fake_scheduler: FakeScheduler
) -> None:
    """The launcher died after submitting RUN's fine-tune but not its evaluations; the fine-tune
    then fails with a code error. One step records the failure, decides against a retry, and
    cancels its evaluations with the reason: nothing is left pending that no flow would move.
    """
    group, fake = run_group, fake_scheduler
    advance(group, fake, sleep=_no_sleep)
    job = read_status(group).stage(RUN).job_id
    for key in EVALS:  # as if sbatch had never been called for them
        fake.jobs.pop(read_status(group).stage(RUN, key).job_id or "", None)

    def unsubmitted(current: RunsStatus) -> None:
        for key in EVALS:
            current.stage(RUN, key).mark("pending", job_id=None)
            current.stage(RUN, key).attempts.clear()

    StatusStore(GroupLayout(group).status_file).update(unsubmitted, force=True)
    (group / RUN / f"slurm-{job}.out").write_text("Traceback (most recent call last):\nKeyError: 'output'\n")
    fake.finish(job, "FAILED", exit_code="1:0", node="gpu2")
    seen: list[RetryRequest] = []

    def act(request: RetryRequest, decide):  # type: ignore[no-untyped-def]
        seen.append(request)
        outcome: RetryOutcome = decide()
        return outcome

    report = advance(group, fake, act=act, sleep=_no_sleep)
    assert [(r.run, r.cause, r.attempt) for r in seen] == [(RUN, "error", 1)]
    status = read_status(group)
    assert status.stage(RUN).status == "failed"
    for key in EVALS:
        stage = status.stage(RUN, key)
        assert stage.status == "cancelled" and stage.reason.startswith("not run: its fine-tune failed"), stage
    assert [e.run for e in report.ended] == [RUN] and report.ended[0].status == "failed"
    assert not any(s.status == "pending" for _, _, s in status.stages())


def test_an_oom_is_retried_once_whoever_advances(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    """Two advancers at once (a launcher and the schedule): one decides and resubmits, the others
    skip or find nothing left to do; no job is ever submitted twice.
    """
    group, fake = run_group, fake_scheduler
    advance(group, fake, sleep=_no_sleep)
    job = read_status(group).stage(RUN).job_id
    fake.finish(job, "OUT_OF_MEMORY", exit_code="0:125", node="gpu1")
    reports = []

    def step() -> None:
        reports.append(advance(group, fake, lock_wait_s=5.0, sleep=_no_sleep))

    threads = [threading.Thread(target=step) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    retried = [o for r in reports for o in r.retries]
    assert len(retried) == 1 and retried[0].job_id and retried[0].remedy.kind != "none", retried
    stage = read_status(group).stage(RUN)
    assert stage.status == "submitted" and len(stage.attempts) == 2 and stage.attempts[1].batch_size
    names = [s["name"] for s in fake.submits]
    assert names.count(RUN) == 2  # the first attempt and its one retry
    ids = _ids(group)
    assert len(ids) == len(set(ids))
