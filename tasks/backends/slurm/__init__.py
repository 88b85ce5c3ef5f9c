"""The SLURM backend and SLURM's vocabulary, which stays inside this package.

- `states`: every SLURM job state -> sweepflow status and failure cause (one table);
- `outcomes`: why a job ended badly, from its state, reason and log tail;
- `parse`: sacct / squeue / scontrol output parsers;
- `script`: SLURM's job file names and the `#SBATCH` header of a job script, from a neutral `JobSpec`;
- `backend`: `SlurmBackend` (sbatch, sacct, squeue, scontrol, scancel);
- `kind`: `SLURM`, the registry's entry (`tasks/backends/_select.py`).
"""

from tasks.backends.slurm._backend import SlurmBackend, is_transient_submit_error, override_args, parse_job_id
from tasks.backends.slurm._kind import SLURM, SLURM_CPUS, SLURM_JOB_ID
from tasks.backends.slurm._outcomes import OOM_IN_LOG, classify_failure
from tasks.backends.slurm._parse import parse_elapsed, parse_sacct, parse_scontrol, parse_squeue
from tasks.backends.slurm._script import SLURM_NAMING, render_directives
from tasks.backends.slurm._states import STATES, map_state

__all__ = [
    "OOM_IN_LOG",
    "SLURM",
    "SLURM_CPUS",
    "SLURM_JOB_ID",
    "SLURM_NAMING",
    "STATES",
    "SlurmBackend",
    "classify_failure",
    "is_transient_submit_error",
    "map_state",
    "override_args",
    "parse_elapsed",
    "parse_job_id",
    "parse_sacct",
    "parse_scontrol",
    "parse_squeue",
    "render_directives",
]
