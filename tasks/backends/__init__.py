"""Job backends behind one small interface: SLURM, and a local runner of the same scripts.

Layer 2 (imports `core`, `model`): below every stage that submits or describes a job.
The public surface: the `Backend` protocol and the job facts it reports (`JobInfo`,
`FailureCause`), the neutral job description (`JobSpec`, `JobOverrides`), `select_backend`,
`classify_failure`, and `job_directives`, the scheduler header of a generated job script.
Job scripts are sbatch scripts; the local backend runs them as SLURM would, so both
backends share the SLURM package's vocabulary, and nothing outside `tasks/backends/` does.
"""

from tasks.backends.base import Backend, FailureCause, JobInfo, JobOverrides, JobSpec, JobStatus, SubmitError
from tasks.backends.select import backend_for, backend_name, select_backend
from tasks.backends.slurm import classify_failure
from tasks.backends.slurm import render_directives as job_directives

__all__ = [
    "Backend",
    "FailureCause",
    "JobInfo",
    "JobOverrides",
    "JobSpec",
    "JobStatus",
    "SubmitError",
    "backend_for",
    "backend_name",
    "classify_failure",
    "job_directives",
    "select_backend",
]
