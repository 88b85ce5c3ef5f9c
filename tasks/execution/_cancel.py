"""Stop a run group's work on the researcher's request: cancel its queued and running jobs.

Reads: `{group}/runs_status.yaml` and `experiment.yaml`. Calls the scheduler two or three
times: when stages were not submitted yet, one `jobs_named` (a job launch-runs submitted but
could not record before it died is found and cancelled too); one `scancel` of every job id
(or the local backend's equivalent); one status query for the time the jobs ran.
Writes: `runs_status.yaml` (one locked update): every selected stage that had not finished
becomes `cancelled` with the reason (a job recorded meanwhile by a submission pass is
cancelled right after that update), stages still waiting to be submitted included
(launch-runs then leaves them alone). Finished stages are never touched. A cancelled
fine-tune is never retried; `launch-runs` with `rerun_failed_finetunes` (tasks/execution/_reopen.py)
sends it back to the queue later.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from pydantic import BaseModel, Field

from tasks.backends import Backend, JobInfo, job_naming
from tasks.core._errors import SweepflowError
from tasks.execution._submit import adoptable, needs_submit, pending_jobs
from tasks.model._group import GroupRef, RunGroup
from tasks.model._layout import eval_job_name
from tasks.model._status import FINETUNE, RunsStatus, utc_now

QUEUED = ("submitted", "running")  # stages whose job waits or runs
QUEUED_JOB = ("pending", "running")  # the same, as the scheduler says it


class CancelReport(BaseModel):
    """What one cancel did: the job ids handed to the scheduler and the stages marked cancelled."""

    cancelled_jobs: list[str] = Field(default_factory=list)  # job ids handed to the scheduler
    stages: list[str] = Field(default_factory=list)  # `run/stage` entries marked cancelled

    def summary(self) -> str:
        """One line: how many stages and scheduler jobs were cancelled."""
        return f"cancelled {len(self.stages)} stage(s), {len(self.cancelled_jobs)} job(s) in the scheduler"


def unrecorded_jobs(group: GroupRef, backend: Backend, status: RunsStatus, runs: Collection[str]) -> list[JobInfo]:
    """Waiting or running jobs of these runs' unsubmitted stages that the status does not record.

    Such jobs exist when launch-runs died between sbatch's answer and the status write. One
    `jobs_named` call, matched as launch-runs adopts them (job name + submit folder).
    """
    group = RunGroup.of(group)
    plan = group.plan
    todo = [
        (run, job) for run in plan.runs if run.name in runs
        for job in ([] if run.is_control or not needs_submit(status.stage(run.name, FINETUNE)) else [None])
        + pending_jobs(run, status)
    ]
    if not todo:
        return []
    names = [run.name if job is None else eval_job_name(job) for run, job in todo]
    named = backend.jobs_named(names)
    known = {a.job_id for _, _, s in status.stages() for a in s.attempts if a.job_id}
    naming = job_naming(group.cluster)
    found = []
    for (run, job), name in zip(todo, names, strict=True):
        live = [j for j in named.get(name, []) if j.status in QUEUED_JOB]
        info = adoptable(live, group.layout.job_dir(run.name, job), known, naming)
        if info is not None:
            found.append(info)
    return found


def cancel_stages(
    group: GroupRef,
    backend: Backend,
    runs: Collection[str] | None = None,
    reason: str = "",
    now: Callable[[], str] = utc_now,
) -> CancelReport:
    """Cancel every unfinished stage of `runs` (default: every run of the group)."""
    group = RunGroup.of(group)
    store = group.status
    status = store.read()
    wanted = set(status.runs) if runs is None else set(runs)
    unknown = sorted(wanted - set(status.runs))
    if unknown:
        raise SweepflowError(f"{store.path}: no run named {', '.join(unknown)} in this run group")
    report = CancelReport()
    recorded = {s.job_id for run, _, s in status.stages() if run in wanted and s.status in QUEUED and s.job_id}
    unrecorded = {j.job_id for j in unrecorded_jobs(group, backend, status, wanted)}
    report.cancelled_jobs = sorted(recorded | unrecorded, key=lambda j: (len(j), j))
    backend.cancel(report.cancelled_jobs)  # before the status says so: a failed scancel changes nothing
    # the jobs' time so far, for GPU-hours (sync-status never revisits a cancelled stage)
    seen = backend.query(report.cancelled_jobs) if report.cancelled_jobs else {}
    why = "cancelled with cancel-runs" + (f": {reason.strip()}" if reason.strip() else "")
    marked: set[str] = set()  # a set: update() may apply the change more than once
    late: set[str] = set()  # jobs recorded after the scancel above (a submission pass that held the lock)

    def cancel(current: RunsStatus) -> None:
        for run, key, stage in current.stages():
            if run in wanted and not stage.is_terminal:  # a stage that finished meanwhile keeps its outcome
                if stage.job_id and stage.status in QUEUED and stage.job_id not in report.cancelled_jobs:
                    late.add(stage.job_id)
                stage.mark("cancelled", now=now(), reason=why)
                attempt = stage.attempts[-1] if stage.attempts and stage.attempts[-1].job_id == stage.job_id else None
                if attempt is not None:
                    info = seen.get(attempt.job_id)
                    if info is not None:
                        attempt.elapsed_s = info.elapsed_s if info.elapsed_s is not None else attempt.elapsed_s
                        attempt.node = info.node or attempt.node
                        if info.status == "cancelled":
                            attempt.scheduler_state, attempt.exit_code = info.raw_state, info.exit_code
                    attempt.finished, attempt.cause, attempt.reason = stage.last_updated, "cancelled", why
                    attempt.remedy = attempt.remedy or "not retried: cancelled by the researcher"
                marked.add(f"{run}/{key}")

    store.update(cancel, force=True)
    if late:
        backend.cancel(sorted(late))
        report.cancelled_jobs += sorted(late, key=lambda j: (len(j), j))
    report.stages = sorted(marked)
    return report
