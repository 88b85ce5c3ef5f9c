"""Job backends behind one small interface, each one registered by name: SLURM, and a local runner.

Layer 2 (imports `core`, `model`): below every stage that submits or describes a job.
The public surface: the `Backend` protocol and the job facts it reports (`JobInfo`,
`FailureCause`), the neutral job description (`JobSpec`, `JobOverrides`), and the registry
(`BACKENDS`, `register_backend`, `backend_kind`, `select_backend`, `job_naming`,
`failure_classifier`, `script_kind`). Each
`BackendKind` owns its vocabulary: its job files' names, its job-script header
(`render_header`), its states and failure causes (`classify_failure`). The SLURM backend's
are in `tasks/backends/slurm/`; the local backend runs SLURM's scripts as SLURM would.
"""

from tasks.backends._base import (
    Backend,
    BackendKind,
    FailureCause,
    JobInfo,
    JobOverrides,
    JobSpec,
    JobStatus,
    SubmitError,
)
from tasks.backends._select import (
    AUTO,
    BACKENDS,
    backend_for,
    backend_kind,
    backend_name,
    failure_classifier,
    job_naming,
    register_backend,
    script_kind,
    select_backend,
)

__all__ = [
    "AUTO",
    "BACKENDS",
    "Backend",
    "BackendKind",
    "FailureCause",
    "JobInfo",
    "JobOverrides",
    "JobSpec",
    "JobStatus",
    "SubmitError",
    "backend_for",
    "backend_kind",
    "backend_name",
    "failure_classifier",
    "job_naming",
    "register_backend",
    "script_kind",
    "select_backend",
]
