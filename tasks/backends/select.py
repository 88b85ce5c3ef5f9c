"""Pick the job backend named by the cluster settings.

Reads: `ClusterSettings.backend` and PATH (is `sbatch` there?). Writes: nothing (the local
backend creates `state_dir` when it is built).

  backend: slurm -> SlurmBackend
  backend: local -> LocalBackend(state_dir)
  backend: auto  -> SlurmBackend when `sbatch` is on PATH and `scontrol ping` reaches a
                   controller, else LocalBackend(state_dir)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tasks.backends.base import Backend
from tasks.backends.local import LocalBackend
from tasks.backends.slurm import SlurmBackend
from tasks.model.cluster import ClusterSettings
from tasks.model.group import RunGroup


def backend_name(cluster: ClusterSettings, path: str | None = None) -> str:
    """`slurm` or `local`: what `select_backend` would build, without building it (nothing is created)."""
    choice = cluster.backend
    if choice == "auto":
        choice = "slurm" if shutil.which("sbatch", path=path) and _controller_up(path) else "local"
    return choice


def select_backend(cluster: ClusterSettings, state_dir: Path, path: str | None = None) -> Backend:
    """The backend for these settings; `path` replaces $PATH for the `auto` look-up (tests)."""
    if backend_name(cluster, path) == "slurm":
        return SlurmBackend()
    return LocalBackend(Path(state_dir))


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


def backend_for(group: RunGroup) -> Backend:
    """The backend a run group's cluster settings select (the local one keeps its jobs in the group)."""
    return select_backend(group.cluster, group.layout.local_jobs)
