"""A second job backend, `workstation`, registered by name: proof that a backend is one module.

It owns its vocabulary, none of it SLURM's: scripts `<stem>.job.sh` with a `#WS` header (rendered
from its own template, tests/support/templates/workstation_header.j2), logs `job-<id>.log`, and
the variable `WS_JOB_ID` its jobs read. It runs jobs as real processes on this
machine through the local runner (`LocalBackend`: its queue, `afterok` chains, time limits), told
to read `#WS` lines instead of `#SBATCH` ones and to give its jobs these variables. Its states
and failure causes are that runner's.

`registered()` adds it to the registry (`tasks.backends.register_backend`) for one test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jinja2

from tasks.backends import BACKENDS, BackendKind, JobSpec, register_backend
from tasks.backends.local import LOCAL, LocalBackend
from tasks.model._job_naming import JobNaming

NAME = "workstation"
NAMING = JobNaming(script_suffix=".job.sh", log_name="job-{job_id}.log")
DIRECTIVE = "#WS"
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)


def render_header(spec: JobSpec) -> str:
    """The `#WS` header of a job script: its name, time limit and CPUs (the rest is this machine's)."""
    return _TEMPLATES.get_template("workstation_header.j2").render(spec=spec, directive=DIRECTIVE)


class WorkstationBackend(LocalBackend):
    """The local runner, with the workstation's header, file names and job variables."""

    name = NAME
    naming = NAMING
    directive = DIRECTIVE

    def job_vars(self, job_id: str, name: str, cwd: Path) -> dict[str, str]:
        return {"WS_JOB_ID": job_id, "WS_JOB_NAME": name, "WS_SUBMIT_DIR": str(cwd)}


WORKSTATION = BackendKind(
    name=NAME, naming=NAMING, build=WorkstationBackend, render_header=render_header,
    classify_failure=LOCAL.classify_failure, job_id_var="WS_JOB_ID", cpus_var=None, submit_command="bash",
    submit_all_template=None,
)


@contextlib.contextmanager
def registered() -> Iterator[BackendKind]:
    """The workstation backend in the registry for the duration of the block."""
    before = BACKENDS.get(NAME)
    register_backend(replace(WORKSTATION))
    try:
        yield BACKENDS[NAME]
    finally:
        if before is None:
            BACKENDS.pop(NAME, None)
        else:
            BACKENDS[NAME] = before
