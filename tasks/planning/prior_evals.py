"""What earlier run groups' evaluation jobs took: the evaluation estimates learn from evaluations.

Reads, under the prior-run folders (recursively): each sweepflow run group's `experiment.yaml`
(model, task and sample count of every evaluation job) and `runs_status.yaml` (the completed
attempt's SLURM elapsed time, model loading and result logging included). Writes: nothing.
A group that cannot be read is skipped; nothing here raises on bad input.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tasks.core.errors import SweepflowError
from tasks.model.layout import PLAN_FILE, STATUS_FILE
from tasks.model.plan import Plan
from tasks.model.plan_file import load_plan
from tasks.model.status_file import StatusStore


class PriorEval(BaseModel):
    """One finished evaluation job of an earlier run group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: Path
    model: str
    task: str
    samples: int | None  # evaluated samples (the design's limit, else the test split), when known
    elapsed_s: float


def _samples(plan: Plan, task: str) -> int | None:
    limit = plan.design.evaluation.limit
    if task in plan.resources.eval_datasets:  # its own dataset: not counted at plan time
        return limit
    test = plan.resources.datasets[0].splits.test if plan.resources.datasets else None
    return min(test, limit) if test is not None and limit else test


def _group_evals(group: Path) -> list[PriorEval]:
    try:
        plan = load_plan(group)
        status = StatusStore(group / STATUS_FILE).read()
    except (SweepflowError, OSError):
        return []
    found = []
    for run in plan.runs:
        entry = status.runs.get(run.name)
        for job in run.evaluations if entry else []:
            stage = entry.evaluations.get(job.key) if entry else None
            attempt = stage.attempts[-1] if stage and stage.status == "completed" and stage.attempts else None
            if attempt and attempt.elapsed_s:
                found.append(PriorEval(group=group, model=run.model, task=job.task,
                                       samples=_samples(plan, job.task), elapsed_s=attempt.elapsed_s))
    return found


def scan_prior_evals(folders: list[Path]) -> list[PriorEval]:
    """Every finished evaluation job of the run groups under `folders` (epoch_* folders not entered)."""
    found: list[PriorEval] = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith(("epoch_", ".")))
            if PLAN_FILE in files and STATUS_FILE in files:
                found += _group_evals(Path(root))
                dirs[:] = []  # a run group holds no other group
    return found


def eval_minutes_from_priors(
    priors: list[PriorEval], model: str, task: str, samples: int | None
) -> tuple[float, str] | None:
    """(minutes, source) of one evaluation job of `model` on `task`: the median of earlier jobs, scaled by samples."""
    same = [p for p in priors if p.model == model and p.task == task]
    if not same:
        return None
    seconds = statistics.median(p.elapsed_s for p in same)
    counts = [p.samples for p in same if p.samples]
    note = ""
    if samples and counts and statistics.median(counts) != samples:
        ratio = samples / statistics.median(counts)
        seconds *= ratio
        note = f", scaled x{ratio:.2f} for {samples} samples"
    groups = sorted({p.group.name for p in same})
    source = f"prior evaluations: {len(same)} job(s) of {model} on {task} in {', '.join(groups)}{note}"
    return seconds / 60.0, source
