"""The backend registry: every job backend by name, and the one the cluster settings pick.

Reads: `ClusterSettings.backend` and, for `auto`, what each backend's `available` looks at. Writes: nothing (the local
backend creates `state_dir` when it is built).

  BACKENDS: name -> BackendKind (one entry per backend module; `register_backend` adds one)
  backend: <name> -> that entry
  backend: auto   -> the first of `AUTO_CHOICES` (slurm, local) whose `available(PATH)` says yes
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tasks.backends._base import Backend, BackendKind, FailureCause, JobInfo
from tasks.backends.local import LOCAL
from tasks.backends.slurm import SLURM
from tasks.core._errors import SweepflowError
from tasks.model._cluster import ClusterSettings
from tasks.model._group import RunGroup
from tasks.model._job_naming import JobNaming

AUTO = "auto"
BACKENDS: dict[str, BackendKind] = {kind.name: kind for kind in (SLURM, LOCAL)}
AUTO_CHOICES = (SLURM.name, LOCAL.name)  # what `auto` picks from, first available


def register_backend(kind: BackendKind) -> None:
    """Add (or replace) a backend under its name; `cluster.backend: <name>` then selects it."""
    if kind.name == AUTO:
        raise ValueError(f"a backend cannot be called {AUTO!r}")
    BACKENDS[kind.name] = kind


def _known(name: str) -> BackendKind:
    kind = BACKENDS.get(name)
    if kind is None:
        known = ", ".join(sorted([AUTO, *BACKENDS]))
        raise SweepflowError(f"cluster settings: backend {name!r} is not a known backend (known: {known})")
    return kind


def backend_name(cluster: ClusterSettings, path: str | None = None) -> str:
    """The backend `select_backend` would build, by name, without building it (nothing is created)."""
    choice = cluster.backend
    if choice == AUTO:
        choice = next(name for name in AUTO_CHOICES if BACKENDS[name].available(path))
    return _known(choice).name


def backend_kind(cluster: ClusterSettings, path: str | None = None) -> BackendKind:
    """The registry's entry for these settings (`auto` resolved as `backend_name` does)."""
    return _known(backend_name(cluster, path))


def _script_parts(kind: BackendKind) -> tuple[object, ...]:
    return (kind.naming, kind.render_header, kind.classify_failure, kind.job_id_var, kind.cpus_var,
            kind.submit_command, kind.submit_all_template, kind.by_hand_template)


def script_kind(cluster: ClusterSettings) -> BackendKind:
    """The entry whose job files (names, header, log reading) these settings use.

    For `auto` no controller is asked when every backend it may pick writes and reads the same files.
    """
    if cluster.backend == AUTO and len({_script_parts(BACKENDS[name]) for name in AUTO_CHOICES}) == 1:
        return BACKENDS[AUTO_CHOICES[0]]
    return backend_kind(cluster)


def job_naming(cluster: ClusterSettings) -> JobNaming:
    """The names of the job files these settings' backend writes and reads."""
    return script_kind(cluster).naming


def failure_classifier(cluster: ClusterSettings) -> Callable[[JobInfo, str], FailureCause | None]:
    """Why a job of these settings' backend failed: (job, its log's tail) -> cause."""
    return script_kind(cluster).classify_failure


def select_backend(cluster: ClusterSettings, state_dir: Path, path: str | None = None) -> Backend:
    """The backend for these settings; `path` replaces $PATH for the `auto` look-up (tests)."""
    return backend_kind(cluster, path).build(Path(state_dir))


def backend_for(group: RunGroup) -> Backend:
    """The backend a run group's cluster settings select (the local one keeps its jobs in the group)."""
    return select_backend(group.cluster, group.layout.local_jobs)
