"""launch-runs logic: chaining, controls, queue cap, stagger, crash-resume without duplicates, sbatch errors.

Against `FakeScheduler` (tests/support/fake_scheduler.py), on a real run group (plan -> deliver -> setup).
The status file's concurrency (8 processes, no lost update) is tested in tests/model/test_status.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.backends._base import SubmitError
from tasks.execution._submit import BACKOFF_S, submit_pending
from tasks.model._status_file import StatusStore
from tests.support.fake_scheduler import FakeScheduler, cluster, make_group

FT_RUNS = ["Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64", "Llama-3.2-3B-Instruct_rank4", "Llama-3.2-3B-Instruct_rank64"]
CONTROLS = ["Llama-3.2-1B-Instruct_base", "Llama-3.2-3B-Instruct_base"]


def _status(group: Path):
    return StatusStore(group / "runs_status.yaml").read()


def test_evaluations_are_chained_to_their_own_finetune_and_controls_start_at_once(
    run_group: Path, fake_scheduler: FakeScheduler
) -> None:
    group, fake, naps = run_group, fake_scheduler, []
    report = submit_pending(group, fake, cluster(), sleep=naps.append)
    assert report.complete and not report.failed and len(report.submitted) == 14
    status = _status(group)
    for run in FT_RUNS:
        ft = status.stage(run)
        assert ft.status == "submitted" and ft.job_id
        [sub] = fake.by_name(run)
        assert sub["after_ok"] == [] and sub["cwd"] == group / run and sub["script"] == group / run / "finetune.slurm"
        for epoch in (0, 1):
            stage = status.stage(run, f"cap_epoch_{epoch}")
            [esub] = fake.by_name(f"{run}__eval_epoch_{epoch}")
            assert esub["after_ok"] == [ft.job_id]  # its own fine-tune only: no global barrier
            assert esub["script"] == group / run / "evaluations" / f"eval_epoch_{epoch}.slurm"
            assert stage.job_id == esub["id"] and stage.status == "submitted"
            assert stage.attempts[0].job_id == esub["id"]
        assert ft.attempts[0].batch_size is not None and ft.attempts[0].gradient_accumulation_steps == 1
    for run in CONTROLS:
        [sub] = fake.by_name(f"{run}__eval")
        assert sub["after_ok"] == [] and sub["script"].name == "eval.slurm"
        assert status.stage(run).status == "skipped"  # base models are never fine-tuned
    # stagger only between jobs that can start at once: 4 fine-tunes + 2 controls -> 5 pauses
    assert naps == [5.0] * 5


def test_status_is_written_after_every_submission(
    run_group: Path, fake_scheduler: FakeScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    group, fake = run_group, fake_scheduler
    seen: list[int] = []
    original = fake.submit

    def spy(*args, **kwargs):  # at each submit, every earlier job id is already in the file
        seen.append(sum(1 for _, _, s in _status(group).stages() if s.job_id))
        return original(*args, **kwargs)

    monkeypatch.setattr(fake, "submit", spy)
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    assert seen == list(range(14))


def test_queue_cap_defers_whole_runs_and_a_later_call_finishes(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake = run_group, fake_scheduler
    first = submit_pending(group, fake, cluster(max_queued_jobs=7), sleep=lambda s: None)
    assert first.queued <= 7 and not first.complete
    assert len(first.submitted) == 7  # two whole runs (3 jobs each) + one control evaluation
    assert sum(1 for s in first.submitted if s.stage == "finetune") == 2
    assert "Llama-3.2-3B-Instruct_rank4/finetune" in first.deferred
    again = submit_pending(group, fake, cluster(max_queued_jobs=7), sleep=lambda s: None)
    assert again.submitted == [] and again.queued == 7  # nothing finished: still full
    for sub in fake.submits:
        fake.finish(sub["id"], "COMPLETED")
    from tasks.execution._sync import sync_jobs  # frees the queue like the flow does

    sync_jobs(group, fake)
    rest = submit_pending(group, fake, cluster(max_queued_jobs=7), sleep=lambda s: None)
    assert rest.complete and len(rest.submitted) == 7
    assert len({s["name"] for s in fake.submits}) == 14 == len(fake.submits)


def test_crash_after_half_the_submissions_never_duplicates(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake = run_group, fake_scheduler
    store = StatusStore(group / "runs_status.yaml")
    submit_pending(group, fake, cluster(max_queued_jobs=6), sleep=lambda s: None)  # 2 runs fully submitted
    ids = {s["name"]: s["id"] for s in fake.submits}
    # the orchestrator died right after sbatch returned for the next fine-tune: the job exists, the file does not say so
    run = "Llama-3.2-3B-Instruct_rank4"
    lost = fake.submit(group / run / "finetune.slurm", group / run)
    assert store.read().stage(run).status == "pending"
    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    names = [s["name"] for s in fake.submits]
    assert len(names) == len(set(names)) == 14  # every job exactly once
    assert [a.stage for a in report.adopted] == ["finetune"] and report.adopted[0].job_id == lost
    status = store.read()
    assert status.stage(run).job_id == lost and "adopted" in (status.stage(run).attempts[0].reason or "")
    assert fake.by_name(f"{run}__eval_epoch_0")[0]["after_ok"] == [lost]  # chained to the adopted job
    assert status.stage("Llama-3.2-1B-Instruct_rank4").job_id == ids["Llama-3.2-1B-Instruct_rank4"]
    assert report.already_submitted == 6


def test_status_saying_submitted_is_trusted(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake = run_group, fake_scheduler
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    other = FakeScheduler(first_id=900)  # a scheduler that knows nothing: the status file is trusted
    report = submit_pending(group, other, cluster(), sleep=lambda s: None)
    assert other.submits == [] and report.already_submitted == 14 and report.complete
    assert other.named_calls == 0  # nothing pending: not even a name lookup


@pytest.mark.parametrize("reports_work_dir", [True, False])
def test_foreign_finished_job_with_the_same_name_is_not_adopted(run_group: Path, reports_work_dir: bool) -> None:
    group = run_group
    fake = FakeScheduler(reports_work_dir=reports_work_dir)
    run = "Llama-3.2-1B-Instruct_rank4"
    other = group.parent / "other_group" / run
    other.mkdir(parents=True)
    old = fake.submit(group / run / "finetune.slurm", other)
    fake.finish(old, "COMPLETED")  # another group's job: its log is not in this run folder
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    assert len(fake.by_name(run)) == 2 and _status(group).stage(run).job_id != old


def test_an_old_finished_job_of_an_earlier_folder_at_the_same_path_is_not_adopted(
    run_group: Path, fake_scheduler: FakeScheduler
) -> None:
    """The run group was deleted and planned again at the same path (or a new clone): SLURM's
    accounting still knows the old, finished job by name and folder, but its log is gone.
    """
    group, fake = run_group, fake_scheduler
    run = "Llama-3.2-1B-Instruct_rank4"
    old = fake.submit(group / run / "finetune.slurm", group / run)
    fake.finish(old, "COMPLETED")
    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    assert report.adopted == [] and _status(group).stage(run).job_id != old
    # the same job with its log in the folder: launch-runs died after sbatch, the job then finished
    group2 = make_group(group.parent / "again")
    fake2 = FakeScheduler()
    lost = fake2.submit(group2 / run / "finetune.slurm", group2 / run)
    fake2.finish(lost, "COMPLETED")
    (group2 / run / f"slurm-{lost}.out").write_text("done\n")
    report = submit_pending(group2, fake2, cluster(), sleep=lambda s: None)
    assert [(a.run, a.job_id) for a in report.adopted] == [(run, lost)]


def test_foreign_waiting_job_with_the_same_name_is_not_adopted(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    """Run names repeat across run groups (same design, other date): a job of another group
    still waiting in the queue is told apart by the folder it was submitted from.
    """
    group, fake = run_group, fake_scheduler
    run = "Llama-3.2-1B-Instruct_rank4"
    other = group.parent / "cap_2x2_2025-01-01" / run
    other.mkdir(parents=True)
    foreign = fake.submit(group / run / "finetune.slurm", other)  # pending, like ours would be
    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    assert report.adopted == [] and _status(group).stage(run).job_id != foreign
    assert [s["cwd"] for s in fake.by_name(run)] == [other, group / run]


def test_waiting_job_submitted_from_a_symlinked_path_is_adopted(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake = run_group, fake_scheduler
    run = "Llama-3.2-1B-Instruct_rank4"
    link = group.parent / "link_to_group"
    link.symlink_to(group, target_is_directory=True)
    lost = fake.submit(group / run / "finetune.slurm", link / run)  # e.g. SLURM reports the resolved path
    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    assert [(a.run, a.job_id) for a in report.adopted] == [(run, lost)]


def test_transient_errors_are_retried_with_backoff(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake, naps = run_group, fake_scheduler, []
    fake.errors = [SubmitError("Socket timed out", transient=True)] * 2
    report = submit_pending(group, fake, cluster(submit_stagger_seconds=0), sleep=naps.append)
    assert report.complete and report.transient_errors == 2 and len(fake.submits) == 14
    assert naps == [BACKOFF_S, BACKOFF_S * 2]


def test_transient_errors_that_persist_defer_and_a_later_call_submits(
    run_group: Path, fake_scheduler: FakeScheduler
) -> None:
    group, fake = run_group, fake_scheduler
    fake.errors = [SubmitError("Unable to contact slurm controller", transient=True)] * 4
    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    first = FT_RUNS[0]
    assert f"{first}/finetune" in report.deferred and f"{first}/cap_epoch_1" in report.deferred
    assert _status(group).stage(first).status == "pending"
    assert len(fake.submits) == 11
    later = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    assert later.complete and len(fake.submits) == 14


def test_permanent_error_fails_that_stage_only(run_group: Path, fake_scheduler: FakeScheduler) -> None:
    group, fake = run_group, fake_scheduler
    fake.errors = [SubmitError("Requested time limit is invalid (missing or exceeds some limit)")]
    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    first = FT_RUNS[0]
    assert [(p.run, p.stage) for p in report.failed] == [(first, "finetune")]
    status = _status(group)
    assert status.stage(first).status == "failed" and "time limit is invalid" in status.stage(first).reason
    assert status.stage(first, "cap_epoch_0").status == "pending"  # never submitted after a refused fine-tune
    assert report.complete and len(fake.submits) == 11  # every other run went on


def test_failed_evaluations_of_a_finished_model_are_reopened_and_resubmitted(run_group: Path) -> None:
    group = run_group
    from tasks.execution._reopen import reopen_failed_evaluations

    fake = FakeScheduler()
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    run, broken = FT_RUNS[0], FT_RUNS[1]
    store = StatusStore(group / "runs_status.yaml")

    def outcome(status) -> None:
        status.stage(run).mark("completed")
        status.stage(run, "cap_epoch_1").mark("failed", reason="inspect crashed")
        status.stage(CONTROLS[0], "cap").mark("cancelled", reason="cancelled by a user")
        status.stage(broken).mark("failed", reason="code error")
        status.stage(broken, "cap_epoch_1").mark("cancelled", reason="fine-tune failed")

    store.update(outcome)
    old_job = _status(group).stage(run, "cap_epoch_1").job_id
    fake.finish(old_job, "FAILED", exit_code="1:0")  # what the scheduler saw for the two jobs
    fake.finish(_status(group).stage(CONTROLS[0], "cap").job_id, "CANCELLED by 0")
    assert sorted(reopen_failed_evaluations(group)) == sorted([f"{run}/cap_epoch_1", f"{CONTROLS[0]}/cap"])
    status = _status(group)
    stage = status.stage(run, "cap_epoch_1")
    assert stage.status == "pending" and stage.job_id is None and "inspect crashed" in stage.reason
    assert stage.attempts[0].job_id == old_job  # the failed attempt stays on record
    assert status.stage(broken, "cap_epoch_1").status == "cancelled"  # its fine-tune failed: nothing to evaluate

    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    assert sorted(f"{j.run}/{j.stage}" for j in report.submitted) == sorted([f"{run}/cap_epoch_1", f"{CONTROLS[0]}/cap"])
    [again] = [j for j in report.submitted if j.run == run]
    assert again.after_ok == []  # its fine-tune already completed: no dependency
    assert len(_status(group).stage(run, "cap_epoch_1").attempts) == 2
