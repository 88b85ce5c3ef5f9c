"""The interface every job backend implements, the neutral job spec it renders, the facts it reports.

Reads/writes: nothing. Each backend is a `BackendKind` (a registry entry, `tasks/backends/_select.py`)
that builds its `Backend` (submit, query, find by name, cancel) and owns its vocabulary: the
names of its job files (`JobNaming`), the header of its job scripts, the environment variables
a job reads its id and CPUs from, its raw states and how they map to a `JobStatus` and a
`FailureCause`. Setup describes a job with a `JobSpec`, a retry with `JobOverrides`, and the
backend turns them into its own directives and options.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from tasks.model._job_naming import JobNaming

# sweepflow's view of a job; the backend's raw state is kept beside it.
JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]

# Why a job ended badly; drives the retry policy (tasks/execution/_retry_policy.py).
FailureCause = Literal[
    "oom",  # OUT_OF_MEMORY, or CUDA/torch out-of-memory in the job log
    "timeout",  # TIMEOUT / DEADLINE
    "node",  # NODE_FAIL, PREEMPTED, BOOT_FAIL
    "cancelled",  # CANCELLED by a user
    "dependency",  # never ran: its dependency failed (DependencyNeverSatisfied)
    "launch",  # never started (e.g. JobLaunchFailure, missing output folder)
    "disk",  # no space left on the device (or quota exceeded), said by the job log: retried once space is free
    "environment",  # the job's preflight failed: a package, a version or the GPU is wrong (tasks/core/preflight.py)
    "error",  # any other failure: code or data error, not retried
]


class JobInfo(BaseModel):
    """One job as the backend last saw it."""

    job_id: str
    name: str | None = None
    status: JobStatus
    raw_state: str  # the backend's own word, e.g. "CANCELLED by 1000", "OUT_OF_MEMORY", "PENDING"
    exit_code: str | None = None  # e.g. "rc:signal"
    reason: str | None = None  # e.g. DependencyNeverSatisfied, NonZeroExitCode
    node: str | None = None
    elapsed_s: float | None = None
    max_rss: str | None = None
    work_dir: str | None = None  # the folder it was submitted from (tells our jobs from others')
    submitted: str | None = None  # when the scheduler accepted it (ISO 8601, UTC), where it says
    started: str | None = None  # when it started running (ISO 8601, UTC), where it says
    held: bool = False  # it will never run, yet the scheduler keeps it queued (a dependency failed): cancel it


class JobSpec(BaseModel):
    """What one job asks the scheduler for; each backend renders it in its own words."""

    name: str
    time_limit: str  # a duration (tasks.core._durations): 04:00:00, 1-00:00:00, 90 (minutes)
    mem: str  # e.g. 32G
    cpus: int
    gpus: int = 0
    gpu_type: str | None = None  # e.g. a100, or a MIG slice 3g.40gb
    account: str | None = None
    partition: str | None = None
    constraint: str | None = None
    qos: str | None = None
    extra: list[str] = Field(default_factory=list)  # the site's own options, passed as they are


class JobOverrides(BaseModel):
    """What a retry changes for its next submission (it wins over the script's own settings)."""

    time_limit: str | None = None
    exclude_nodes: list[str] = Field(default_factory=list)


class SubmitError(Exception):
    """sbatch (or the local runner) refused the job; `transient` errors may be retried."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class Backend(Protocol):
    """A scheduler: submit, query in one call, find jobs by name, cancel."""

    name: str
    calls: int  # status queries made so far (the benchmark counts them)

    def submit(
        self,
        script: Path,
        cwd: Path,
        after_ok: list[str] | None = None,  # start only after these jobs completed; never if one fails
        overrides: JobOverrides | None = None,
        script_args: list[str] | None = None,  # the script's own arguments (an evaluation job's tasks)
    ) -> str:
        """Submit a generated script from `cwd`; return the job id."""
        ...

    def query(self, job_ids: list[str], recent: Collection[str] = ()) -> dict[str, JobInfo]:
        """The state of all these jobs, in ONE call to the scheduler. Unknown ids are left out.

        `recent`: ids submitted moments ago; a scheduler whose records lag (e.g. an accounting database)
        may leave them out rather than make a second call for them.
        """
        ...

    def jobs_named(self, names: list[str]) -> dict[str, list[JobInfo]]:
        """Jobs (any state still known) whose job name is one of `names` (duplicate guard)."""
        ...

    def cancel(self, job_ids: list[str]) -> None:
        """Cancel these jobs in one call; ids that already ended are not an error."""
        ...


@dataclass(frozen=True)
class BackendKind:
    """One backend as the registry knows it: what setup, layout and sync ask of it without building it."""

    name: str  # what `cluster.backend` says
    naming: JobNaming  # its job files: script suffix, log name
    build: Callable[[Path], Backend]  # state_dir (for a backend that keeps its own records) -> the backend
    render_header: Callable[[JobSpec], str]  # a job script's header (scheduler directives), newline-terminated
    classify_failure: Callable[[JobInfo, str], FailureCause | None]  # (job, its log's tail) -> why it failed
    job_id_var: str  # the environment variable a running job finds its id in
    cpus_var: str | None = None  # ... the number of CPUs it was given, if the backend says
    submit_command: str = "bash"  # how a user submits a job script by hand, from its folder (script comments)
    submit_all_template: str | None = None  # a template of `submit_all.sh` (submit the whole group by hand)
    by_hand_template: str | None = None  # the group README's paragraph on submitting without the flows
    remote: bool = False  # its jobs run on other machines: a CUDA design must name their Python (job_env)
    available: Callable[[str | None], bool] = lambda _path: True  # can `auto` pick it here? (PATH given, or None)

    def job_id(self, fallback: str) -> str:
        """Shell text of the job's id, or `fallback` outside a job: `${VAR:-fallback}`."""
        return f"${{{self.job_id_var}:-{fallback}}}"

    def cpus(self, fallback: str) -> str:
        """Shell text of the job's CPU count, or `fallback` where the backend does not say."""
        return f"${{{self.cpus_var}:-{fallback}}}" if self.cpus_var else fallback
