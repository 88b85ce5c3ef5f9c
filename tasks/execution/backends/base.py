"""The interface every job backend implements, and the job facts it reports.

Reads/writes: nothing. `tasks/backends/slurm.py` talks to SLURM; `tasks/backends/local.py`
runs the same generated scripts as subprocesses on a machine without SLURM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel

# sweepflow's view of a job; the raw SLURM state is kept beside it.
JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]

# Why a job ended badly; drives the retry policy (tasks/retry_policy.py).
FailureCause = Literal[
    "oom",  # OUT_OF_MEMORY, or CUDA/torch out-of-memory in the job log
    "timeout",  # TIMEOUT / DEADLINE
    "node",  # NODE_FAIL, PREEMPTED, BOOT_FAIL
    "cancelled",  # CANCELLED by a user
    "dependency",  # never ran: its dependency failed (DependencyNeverSatisfied)
    "launch",  # never started (e.g. JobLaunchFailure, missing output folder)
    "error",  # any other failure: code or data error, not retried
]


class JobInfo(BaseModel):
    """One job as the backend last saw it."""

    job_id: str
    name: str | None = None
    status: JobStatus
    raw_state: str  # e.g. "CANCELLED by 1000", "OUT_OF_MEMORY", "PENDING"
    exit_code: str | None = None  # SLURM "rc:signal"
    reason: str | None = None  # e.g. DependencyNeverSatisfied, NonZeroExitCode
    node: str | None = None
    elapsed_s: float | None = None
    max_rss: str | None = None
    work_dir: str | None = None  # the folder it was submitted from (tells our jobs from others')


class SubmitError(Exception):
    """sbatch (or the local runner) refused the job; `transient` errors may be retried."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class Backend(Protocol):
    name: str
    calls: int  # status queries made so far (the benchmark counts them)

    def submit(
        self,
        script: Path,
        cwd: Path,
        after_ok: list[str] | None = None,  # --dependency=afterok:a:b --kill-on-invalid-dep=yes
        extra_args: list[str] | None = None,  # e.g. ["--exclude=node7", "--time=08:00:00"]
    ) -> str:
        """Submit a generated script from `cwd`; return the job id."""
        ...

    def query(self, job_ids: list[str]) -> dict[str, JobInfo]:
        """The state of all these jobs, in ONE call to the scheduler. Unknown ids are left out."""
        ...

    def jobs_named(self, names: list[str]) -> dict[str, list[JobInfo]]:
        """Jobs (any state still known) whose job name is one of `names` (duplicate guard)."""
        ...

    def cancel(self, job_ids: list[str]) -> None: ...
