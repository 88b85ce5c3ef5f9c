"""The advance step as flows run it: each retry and each ended fine-tune attempt a named task.

Used by launch-runs (once per poll) and advance-runs (the scheduled deployment). A poll creates
no task run of its own: the Prefect objects of a sweep grow with its runs, not its polls.
- a retry decision is the task `retry-<run>-<cause>-attempt<N>` (Completed: resubmitted, with
  the remedy and the new job in its result; Failed: not retried, or sbatch refused it), in
  whichever flow run applied it;
- a fine-tune attempt that ended is the task `finetune-<run>-attempt<N>` (Completed or Failed
  with its reason);
- the group's progress and runs table are two artifacts per flow run, created once and
  updated in place.
"""

from __future__ import annotations

import json
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate

from flows._common import TASK_OPTIONS, artifact_slug
from flows._notify import notify_run_group
from tasks.backends import Backend
from tasks.execution import AdvanceReport, EndedAttempt, RetryOutcome, RetryRequest, SyncReport, advance
from tasks.model import RunGroup


class FinetuneAttemptFailed(Exception):
    """A fine-tune attempt ended without its checkpoints (its task ends Failed with the reason)."""


class RetryNotApplied(Exception):
    """A failed fine-tune was not resubmitted: no remedy for its cause, out of attempts, or sbatch refused."""

    def __init__(self, outcome: RetryOutcome):
        reason = outcome.error and f"retry could not be submitted: {outcome.error}"
        super().__init__(f"{outcome.run}: {reason or outcome.remedy.description}")
        self.outcome = outcome


@task(name="retry", **TASK_OPTIONS)
def _retry(request: RetryRequest, decide: Any) -> RetryOutcome:
    outcome: RetryOutcome = decide()
    if outcome.job_id is None:
        raise RetryNotApplied(outcome)
    get_run_logger().info("%s attempt %d failed (%s); %s; resubmitted as job %s", request.run, request.attempt,
                          request.reason, outcome.remedy.description, outcome.job_id)
    return outcome


def retry_as_task(request: RetryRequest, decide: Any) -> RetryOutcome:
    """`advance`'s `act`: the decision runs as the task `retry-<run>-<cause>-attempt<N>`."""
    name = f"retry-{request.run}-{request.cause or 'failure'}-attempt{request.attempt}"
    state = _retry.with_options(task_run_name=name)(request, decide, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, RetryNotApplied):
        get_run_logger().warning(str(result))
        return result.outcome
    if isinstance(result, RetryOutcome):
        return result
    raise RuntimeError(f"{name} ended {state.name}: {state.message}")  # a bug in the decision itself


@task(name="finetune-attempt", **TASK_OPTIONS)
def _attempt(ended: EndedAttempt) -> str:
    if ended.status != "completed":
        raise FinetuneAttemptFailed(f"{ended.run} attempt {ended.attempt} (job {ended.job_id}): "
                                    f"{ended.status}: {ended.reason or 'no reason recorded'}")
    return f"{ended.run} attempt {ended.attempt} (job {ended.job_id}): completed"


def record_attempts(report: AdvanceReport) -> None:
    """One task run per fine-tune attempt that ended in this step."""
    for ended in report.ended:
        _attempt.with_options(task_run_name=f"finetune-{ended.run}-attempt{ended.attempt}")(ended, return_state=True)


class GroupArtifacts:
    """The group's progress and runs-table artifacts of one flow run: created once, then updated in place."""

    def __init__(self, group: RunGroup):
        self.group = group
        self.slug = artifact_slug(group.name)
        self.progress_id: UUID | None = None
        self.table_id: UUID | None = None
        self.table: list[dict[str, Any]] | None = None

    def publish(self, report: SyncReport) -> None:
        description = f"{report.done} of {report.total} stages finished in {self.group.name}"
        summary = f"Runs of {self.group.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items()))
        table = report.table()
        if self.progress_id is None or self.table_id is None:
            self.progress_id = cast(UUID, create_progress_artifact(
                progress=round(report.progress, 1), key=f"progress-{self.slug}", description=description))
            self.table_id = cast(UUID, create_table_artifact(
                table=table, key=f"status-{self.slug}", description=summary))
            self.table = table
            return
        update_progress_artifact(self.progress_id, round(report.progress, 1), description=description)
        if table != self.table:
            with get_client(sync_client=True) as client:
                client.update_artifact(self.table_id, ArtifactUpdate(data=json.dumps(table), description=summary))
            self.table = table


def advance_group(group: RunGroup, backend: Backend, max_attempts: int, artifacts: GroupArtifacts,
                  lock_wait_s: float = 0.0) -> AdvanceReport:
    """One `advance` step with its retries and ended attempts as tasks, the artifacts updated, news sent, a log line."""
    logger = get_run_logger()
    report = advance(group, backend, max_attempts, act=retry_as_task, lock_wait_s=lock_wait_s)
    if report.skipped:
        logger.info("%s: another flow is advancing this group; skipped this step", group.name)
        return report
    record_attempts(report)
    artifacts.publish(report.status)
    notify_run_group(group)
    launch = report.launch
    if launch is not None:
        if launch.submitted or launch.adopted:
            logger.info("%s: submitted %d job(s), adopted %d already known to the scheduler",
                        group.name, len(launch.submitted), len(launch.adopted))
        for problem in launch.failed:
            logger.error("sbatch refused %s/%s: %s", problem.run, problem.stage, problem.reason)
        for job in launch.withdrawn:
            logger.warning("%s/%s was cancelled while job %s was being submitted: that job was cancelled too",
                           job.run, job.stage, job.job_id)
    if report.sync is not None:
        for name in report.sync.not_run:
            logger.warning("%s: not run (its fine-tune ended for good)", name)
    return report
