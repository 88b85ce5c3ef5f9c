"""Pick the job backend named by the cluster settings.

Reads: `ClusterSettings.backend` and PATH (is `sbatch` there?). Writes: nothing (the local
backend creates `state_dir` when it is built).

  backend: slurm -> SlurmBackend
  backend: local -> LocalBackend(state_dir)
  backend: auto  -> SlurmBackend when `sbatch` is on PATH, else LocalBackend(state_dir)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tasks.backends.base import Backend
from tasks.backends.local import LocalBackend
from tasks.backends.slurm import SlurmBackend
from tasks.cluster_settings import ClusterSettings


def select_backend(cluster: ClusterSettings, state_dir: Path, path: str | None = None) -> Backend:
    """The backend for these settings; `path` replaces $PATH for the `auto` look-up (tests)."""
    choice = cluster.backend
    if choice == "auto":
        choice = "slurm" if shutil.which("sbatch", path=path) else "local"
    if choice == "slurm":
        return SlurmBackend()
    return LocalBackend(Path(state_dir))
