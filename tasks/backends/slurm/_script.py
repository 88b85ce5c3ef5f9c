"""SLURM's job files: their names (`finetune.slurm`, `slurm-<id>.out`) and the `#SBATCH` header of a `JobSpec`.

Reads: `templates/slurm/directives.j2`. Writes: nothing (setup-experiment writes the scripts).
The log name is SLURM's default `slurm-%j.out` (`SLURM_NAMING.log_name` once sbatch puts the
job id in); the local backend reads the same lines and keeps the same names.
"""

from __future__ import annotations

from tasks.backends._base import JobSpec
from tasks.core._templating import render_template
from tasks.model._job_naming import JobNaming

SLURM_NAMING = JobNaming(script_suffix=".slurm", log_name="slurm-{job_id}.out")
LOG_PATTERN = SLURM_NAMING.log("%j")
_EXPRESSION = set("|&[]*()")


def constraint_value(constraint: str) -> str:
    """A constraint as written on its #SBATCH line: an expression (`a100|h100`, `[a|b]`) in double quotes."""
    return f'"{constraint}"' if _EXPRESSION & set(constraint) else constraint


def render_directives(spec: JobSpec) -> str:
    """The `#SBATCH` block (one option per line, newline-terminated) for `spec`."""
    constraint = constraint_value(spec.constraint) if spec.constraint else None
    return render_template("slurm/directives.j2", spec=spec, log=LOG_PATTERN, constraint=constraint)
