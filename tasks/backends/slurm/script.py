"""A job script's SLURM header: the `#SBATCH` lines of a neutral `JobSpec`.

Reads: `templates/slurm/directives.j2`. Writes: nothing (setup-experiment writes the scripts).
The log name is SLURM's `slurm-%j.out`, which is the run group's `JOB_LOG` once sbatch puts
the job id in; the local backend reads the same lines.
"""

from __future__ import annotations

from tasks.backends.base import JobSpec
from tasks.core.templating import render_template
from tasks.model.layout import JOB_LOG

LOG_PATTERN = JOB_LOG.format(job_id="%j")
_EXPRESSION = set("|&[]*()")


def constraint_value(constraint: str) -> str:
    """A constraint as written on its #SBATCH line: an expression (`a100|h100`, `[a|b]`) in double quotes."""
    return f'"{constraint}"' if _EXPRESSION & set(constraint) else constraint


def render_directives(spec: JobSpec) -> str:
    """The `#SBATCH` block (one option per line, newline-terminated) for `spec`."""
    constraint = constraint_value(spec.constraint) if spec.constraint else None
    return render_template("slurm/directives.j2", spec=spec, log=LOG_PATTERN, constraint=constraint)
