"""Stop a run group's work on the researcher's request: cancel its queued and running jobs.

Reads: `{group}/runs_status.yaml`. Calls the scheduler twice: one `scancel` of every job id
(or the local backend's equivalent), then one status query for the time the jobs ran.
Writes: `runs_status.yaml` (one locked update): every selected stage that had not finished
becomes `cancelled` with the reason, stages still waiting to be submitted included
(launch-runs then leaves them alone). Finished stages are never touched. A cancelled
fine-tune is never retried; `launch-runs` with `rerun_failed_finetunes` (tasks/reopen.py)
sends it back to the queue later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Collection

from pydantic import BaseModel, Field

from tasks.backends.base import Backend
from tasks.errors import SweepflowError
from tasks.plan import STATUS_FILE
from tasks.status import RunsStatus, StatusStore, utc_now

QUEUED = ("submitted", "running")


class CancelReport(BaseModel):
    cancelled_jobs: list[str] = Field(default_factory=list)  # job ids handed to the scheduler
    stages: list[str] = Field(default_factory=list)  # `run/stage` entries marked cancelled

    def summary(self) -> str:
        return f"cancelled {len(self.stages)} stage(s), {len(self.cancelled_jobs)} job(s) in the scheduler"


def cancel_runs(
    group_dir: str | Path,
    backend: Backend,
    runs: Collection[str] | None = None,
    reason: str = "",
    now: Callable[[], str] = utc_now,
) -> CancelReport:
    """Cancel every unfinished stage of `runs` (default: every run of the group)."""
    store = StatusStore(Path(group_dir) / STATUS_FILE)
    status = store.read()
    wanted = set(status.runs) if runs is None else set(runs)
    unknown = sorted(wanted - set(status.runs))
    if unknown:
        raise SweepflowError(f"{store.path}: no run named {', '.join(unknown)} in this run group")
    report = CancelReport()
    report.cancelled_jobs = sorted(
        {s.job_id for run, _, s in status.stages() if run in wanted and s.status in QUEUED and s.job_id},
        key=lambda j: (len(j), j),
    )
    backend.cancel(report.cancelled_jobs)  # before the status says so: a failed scancel changes nothing
    # the jobs' time so far, for GPU-hours (sync-status never revisits a cancelled stage)
    seen = backend.query(report.cancelled_jobs) if report.cancelled_jobs else {}
    why = "cancelled with cancel-runs" + (f": {reason.strip()}" if reason.strip() else "")
    marked: set[str] = set()  # a set: update() may apply the change more than once

    def cancel(current: RunsStatus) -> None:
        for run, key, stage in current.stages():
            if run in wanted and not stage.is_terminal:  # a stage that finished meanwhile keeps its outcome
                stage.mark("cancelled", now=now(), reason=why)
                attempt = stage.attempts[-1] if stage.attempts and stage.attempts[-1].job_id == stage.job_id else None
                if attempt is not None:
                    info = seen.get(attempt.job_id)
                    if info is not None:
                        attempt.elapsed_s = info.elapsed_s if info.elapsed_s is not None else attempt.elapsed_s
                        attempt.node = info.node or attempt.node
                        if info.status == "cancelled":
                            attempt.slurm_state, attempt.exit_code = info.raw_state, info.exit_code
                    attempt.finished, attempt.cause, attempt.reason = stage.last_updated, "cancelled", why
                    attempt.remedy = attempt.remedy or "not retried: cancelled by the researcher"
                marked.add(f"{run}/{key}")

    store.update(cancel, force=True)
    report.stages = sorted(marked)
    return report
