"""One evaluation job per evaluated checkpoint: grouping, the shared job id, a task retried alone.

A real run group (fake site: 2 models x ranks 4/64, 2 epochs, every epoch evaluated, 2 controls) with
two tasks, submitted to the in-memory scheduler; the tasks' .eval logs are real inspect-ai logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks.execution._reopen import reopen_failed_evaluations
from tasks.execution._submit import submit_pending
from tasks.execution._sync import sync_jobs
from tasks.model._cluster import cluster_settings
from tasks.model._design_file import parse_design
from tasks.model._layout import eval_job_name
from tasks.model._plan_file import load_plan
from tasks.model._status_file import StatusStore
from tasks.planning._deliver import deliver_plan
from tasks.planning._formulas import checkpoint_job_minutes
from tasks.planning._planner import build_plan
from tasks.planning._time_limits import eval_time_limit
from tasks.results._collect import attempt_uses
from tasks.setup._experiment import set_up_group, started_files
from tests.support.fake_scheduler import NOW, FakeScheduler, cluster
from tests.support.fakesite import DATE, design
from tests.support.finished_runs import mock_eval, write_training_outputs

RUN = "Llama-3.2-1B-Instruct_rank4"


def _two_task_group(root: Path) -> Path:
    data = design(root)
    data["evaluation"]["epochs"] = "all"
    data["evaluation"]["tasks"].append({**data["evaluation"]["tasks"][0], "name": "cap2"})
    group = deliver_plan(build_plan(parse_design(data), date=DATE), NOW)
    set_up_group(group)
    return group


def _status(group: Path):
    return StatusStore(group / "runs_status.yaml").read()


def test_one_job_per_checkpoint_with_one_id_for_its_tasks(tmp_path: Path) -> None:
    group = _two_task_group(tmp_path)
    plan = load_plan(group)
    assert len(plan.eval_jobs) == 4 * 2 * 2 + 2 * 2  # (run, epoch, task) + (control, task): a stage each
    assert len(plan.checkpoint_jobs) == 4 * 2 + 2  # one job per evaluated checkpoint
    assert all(job.tasks == ["cap", "cap2"] for job in plan.checkpoint_jobs)
    fake = FakeScheduler()
    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    assert report.complete and len(fake.submits) == 4 + len(plan.checkpoint_jobs)
    assert report.queued == len(fake.submits)  # a shared job is counted once
    status = _status(group)
    for run in plan.runs:
        finetune = status.stage(run.name)
        for job in run.checkpoint_jobs:
            [sub] = fake.by_name(eval_job_name(job))
            assert sub["script"] == group / run.name / "evaluations" / f"{job.key}.slurm"
            assert sub["args"] == ["cap", "cap2"]  # every task of the checkpoint, named
            assert sub["after_ok"] == ([] if run.is_control else [finetune.job_id])
            stages = [status.stage(run.name, e.key) for e in job.evaluations]
            assert [(s.status, s.job_id) for s in stages] == [("submitted", sub["id"])] * 2  # the seed's entries
            assert all(s.attempts[-1].job_id == sub["id"] for s in stages)


def test_the_job_time_limit_is_one_load_plus_each_task(tmp_path: Path) -> None:
    group = _two_task_group(tmp_path)
    plan = load_plan(group)
    run = plan.run(RUN)
    estimate = plan.estimates.runs[RUN]
    per_task = plan.estimates.per_model[run.model].eval_minutes.value  # each task as a job of its own
    assert estimate.eval_jobs == 2  # one job per evaluated epoch, both tasks in each
    assert estimate.eval_minutes == pytest.approx(2 * checkpoint_job_minutes([per_task, per_task]), rel=1e-3)
    limit = eval_time_limit(plan, run, cluster_settings(plan.design))
    assert limit.source.startswith(f"estimate {estimate.eval_minutes / 2:.1f} min")
    script = (group / RUN / "evaluations" / "eval_epoch_0.slurm").read_text()
    assert f"#SBATCH --time={limit.limit}" in script.splitlines()


def _epoch_0_job_submitted(tmp_path: Path) -> tuple[Path, Any, FakeScheduler, Any, dict[str, Any]]:
    """A two-task group whose fine-tune completed: the group, plan, scheduler, epoch 0's job and its submission."""
    group = _two_task_group(tmp_path)
    plan = load_plan(group)
    fake = FakeScheduler()
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    finetune = _status(group).stage(RUN).job_id
    write_training_outputs(group, RUN, finetune, disk_logger=False)
    fake.finish(finetune, "COMPLETED")
    [job] = [j for j in plan.run(RUN).checkpoint_jobs if j.epoch == 0]
    [sub] = fake.by_name(eval_job_name(job))
    return group, plan, fake, job, sub


def test_a_failed_task_fails_alone_and_is_retried_alone(tmp_path: Path) -> None:
    group, plan, fake, job, sub = _epoch_0_job_submitted(tmp_path)
    mock_eval(group, RUN, 0, 4, plan.design_hash, task_name="cap")
    mock_eval(group, RUN, 0, 4, plan.design_hash, task_name="cap2", fail=True)
    (group / RUN / "evaluations" / f"slurm-{sub['id']}.out").write_text("sweepflow: evaluation exited with 1\n")
    fake.finish(sub["id"], "FAILED", exit_code="1:0", elapsed_s=120.0)  # the runner's exit: one task failed
    sync_jobs(group, fake)
    status = _status(group)
    done, failed = status.stage(RUN, "cap_epoch_0"), status.stage(RUN, "cap2_epoch_0")
    assert done.status == "completed" and done.output and "/cap/logs/" in done.output  # its own log decides
    assert failed.status == "failed" and failed.reason.startswith("task failed: .eval status error")
    assert "/cap2/logs/" in failed.output
    # the job's 120 s are counted once: half to each task's stage
    uses = [u for u in attempt_uses(plan, status) if u.job_id == sub["id"]]
    assert sorted((u.stage, u.elapsed_s, u.outcome) for u in uses) == [
        ("cap2_epoch_0", 60.0, "failed"), ("cap_epoch_0", 60.0, "succeeded")]

    assert reopen_failed_evaluations(group) == [f"{RUN}/cap2_epoch_0"]
    report = submit_pending(group, fake, cluster(), sleep=lambda s: None)
    [retry] = [s for s in report.submitted if s.run == RUN]
    assert retry.stage == "cap2_epoch_0" and retry.after_ok == []  # its checkpoint exists: starts at once
    again = fake.by_name(eval_job_name(job))[-1]
    assert again["id"] == retry.job_id and again["args"] == ["cap2"]  # the script runs that task alone
    assert again["script"] == sub["script"]
    status = _status(group)
    assert status.stage(RUN, "cap2_epoch_0").job_id == retry.job_id
    assert status.stage(RUN, "cap_epoch_0").job_id == sub["id"]  # the completed task keeps its job


def _killed_during(log: Path) -> None:
    """The log as inspect leaves it when its process is killed mid-task: status `started`, no results."""
    from inspect_ai.log import read_eval_log, write_eval_log

    started = read_eval_log(str(log)).model_copy(update={"status": "started", "results": None})
    log.unlink()
    write_eval_log(started, str(log))


@pytest.mark.parametrize(("raw_state", "cause", "reason"), [
    ("TIMEOUT", "timeout", "time limit reached (TIMEOUT)"),
    ("OUT_OF_MEMORY", "oom", "out of memory (OUT_OF_MEMORY"),
])
def test_a_task_killed_with_its_job_fails_for_the_jobs_cause(tmp_path: Path, raw_state: str, cause: str,
                                                              reason: str) -> None:
    """The job hit its limit during the second task: that task's half-written log is not its failure's cause."""
    group, plan, fake, _job, sub = _epoch_0_job_submitted(tmp_path)
    mock_eval(group, RUN, 0, 4, plan.design_hash, task_name="cap")
    _killed_during(mock_eval(group, RUN, 0, 4, plan.design_hash, task_name="cap2"))
    (group / RUN / "evaluations" / f"slurm-{sub['id']}.out").write_text("sweepflow: task cap: success\n")
    fake.finish(sub["id"], raw_state, exit_code="0:9", elapsed_s=600.0)
    sync_jobs(group, fake)
    status = _status(group)
    assert status.stage(RUN, "cap_epoch_0").status == "completed"  # its own log says success
    killed = status.stage(RUN, "cap2_epoch_0")
    assert killed.status == "failed" and (killed.reason or "").startswith(reason)
    assert killed.attempts[-1].cause == cause


def test_setup_keeps_a_checkpoints_job_files_only_when_all_its_tasks_started(tmp_path: Path) -> None:
    group = _two_task_group(tmp_path)
    plan = load_plan(group)
    status = _status(group)
    status.stage(RUN, "cap_epoch_0").mark("completed")  # its sibling cap2_epoch_0 still pending
    status.stage(RUN, "cap_epoch_1").mark("completed")
    status.stage(RUN, "cap2_epoch_1").mark("running")
    kept = {p.removeprefix(f"{RUN}/evaluations/") for p in started_files(plan, status, group) if p.startswith(RUN)}
    # the task's and the run's arguments stay as they ran; epoch 0's job files are rendered again for cap2
    assert kept == {"cap/task_args.yaml", "cap2/task_args.yaml", "model_args.yaml",
                    "eval_epoch_1.slurm", "eval_epoch_1.tasks.yaml"}
