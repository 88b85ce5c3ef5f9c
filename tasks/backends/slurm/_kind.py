"""The SLURM backend as the registry knows it (`tasks/backends/_select.py`): its files, header, states.

Reads and writes nothing. Its scripts are sbatch scripts (`#SBATCH` header, `.slurm`), its logs
SLURM's `slurm-<id>.out`, its jobs read `SLURM_JOB_ID` and `SLURM_CPUS_PER_TASK`, and
`submit_all.sh` submits a whole group with plain sbatch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tasks.backends._base import BackendKind
from tasks.backends.slurm._backend import SlurmBackend
from tasks.backends.slurm._outcomes import classify_failure
from tasks.backends.slurm._script import SLURM_NAMING, render_directives


def _build(_state_dir: Path) -> SlurmBackend:
    return SlurmBackend()


def _controller_up(path: str | None) -> bool:
    """SLURM commands installed is not enough: a controller must answer (`scontrol ping`)."""
    scontrol = shutil.which("scontrol", path=path)
    # Without a config file SLURM falls back to DNS SRV look-ups; don't ask then.
    configured = os.environ.get("SLURM_CONF") or Path("/etc/slurm/slurm.conf").exists()
    if scontrol is None or not configured:
        return False
    try:
        done = subprocess.run([scontrol, "ping"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "UP" in done.stdout


def slurm_available(path: str | None = None) -> bool:
    """`sbatch` on PATH (`path` replaces $PATH) and a controller that answers."""
    return bool(shutil.which("sbatch", path=path)) and _controller_up(path)


SLURM_JOB_ID = "SLURM_JOB_ID"
SLURM_CPUS = "SLURM_CPUS_PER_TASK"

SLURM = BackendKind(
    name="slurm", naming=SLURM_NAMING, build=_build, render_header=render_directives,
    classify_failure=classify_failure, job_id_var=SLURM_JOB_ID, cpus_var=SLURM_CPUS, submit_command="sbatch",
    submit_all_template="slurm/submit_all.sh.j2", by_hand_template="slurm/README_by_hand.md.j2",
    remote=True, available=slurm_available,
)
