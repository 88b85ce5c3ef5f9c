"""What earlier run groups' evaluation jobs took: the evaluation estimates learn from evaluations.

Reads, under the prior-run folders (recursively): each sweepflow run group's `experiment.yaml`
(model, task and sample count of every evaluation job), `runs_status.yaml` (the completed
attempt's SLURM elapsed time, model loading and result logging included) and the job's inspect
`.eval` log header (the seconds inspect spent on the samples). Writes: nothing.
A group that cannot be read is skipped; nothing here raises on bad input.

An evaluation job's time is fixed (start-up, model load, merge, tear-down: elapsed less inspect's
own time) plus per sample (inspect's time / samples), so a pilot's 20-sample job predicts a
2,000-sample one without multiplying its model load by 100. A job with no readable log is scaled
by samples as a whole.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tasks.core.errors import SweepflowError
from tasks.evaluation import eval_seconds, read_log_headers
from tasks.model.layout import PLAN_FILE, STATUS_FILE, GroupLayout, is_pilot_group
from tasks.model.plan import EvalJob, Plan
from tasks.model.plan_file import load_plan
from tasks.model.status_file import StatusStore
from tasks.planning.formulas import PILOT

# inspect's hf provider generates this many samples together (its max_connections, "effectively the batch
# size"): a job of fewer samples times one part-filled batch, whose time per sample over-states a full
# one's on a GPU (on a CPU, time grows with the batch). A pilot evaluates one full batch by default.
GENERATION_BATCH = 32


class PriorEval(BaseModel):
    """One finished evaluation job of an earlier run group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: Path
    model: str
    task: str
    samples: int | None  # evaluated samples (the design's limit, else the test split), when known
    elapsed_s: float
    eval_s: float | None = None  # of which inspect's own time on the samples (its log's stats), when readable
    pilot: bool = False  # the job of a pilot of this plan
    base: bool = False  # a base model's (control) evaluation: no checkpoint view or adapter merge first


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
                                       samples=_samples(plan, job.task), elapsed_s=attempt.elapsed_s,
                                       eval_s=_inspect_seconds(group, run.name, job), pilot=is_pilot_group(group),
                                       base=job.epoch is None))
    return found


def _inspect_seconds(group: Path, run: str, job: EvalJob) -> float | None:
    """The seconds inspect spent in the newest successful log of this job."""
    logs = [e for e in read_log_headers(GroupLayout(group).eval_logs_dir(run, job.task))
            if e.status == "success" and e.is_for(run, job.epoch)]
    return eval_seconds(max(logs, key=lambda e: e.mtime)) if logs else None


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
    priors: list[PriorEval], model: str, task: str, samples: int | None, base: bool | None = None
) -> tuple[float, str] | None:
    """(minutes, source) of one evaluation job of `model` on `task` from earlier jobs of both.

    A pilot's jobs are used alone when there are any (they ran this plan's very configuration);
    with `base` given, jobs of the same kind (base model, or a fine-tuned checkpoint) where there are any.
    With inspect's own time known: median fixed seconds + median seconds per sample x `samples`;
    else the median job scaled by samples.
    """
    same = [p for p in priors if p.model == model and p.task == task]
    same = [p for p in same if p.pilot] or same
    same = [p for p in same if base is None or p.base == base] or same
    if not same:
        return None
    groups = ", ".join(sorted({p.group.name for p in same}))
    prefix = f"{PILOT} " if same[0].pilot else ""
    timed = [p for p in same if p.eval_s is not None and p.samples]
    if timed and samples:
        fixed = statistics.median(max(p.elapsed_s - (p.eval_s or 0.0), 0.0) for p in timed)
        per_sample = statistics.median((p.eval_s or 0.0) / (p.samples or 1) for p in timed)
        source = (f"{prefix}prior evaluations: {len(timed)} job(s) of {model} on {task} in {groups}: "
                  f"{fixed:.0f} s fixed + {per_sample:.2f} s/sample x {samples}")
        fewest = min(p.samples or 0 for p in timed)
        if fewest < GENERATION_BATCH < samples:
            source += (f" (timed on {fewest} samples, part of one {GENERATION_BATCH}-sample generation batch: "
                       "on a GPU the time per sample is likely over-stated)")
        return (fixed + per_sample * samples) / 60.0, source
    seconds = statistics.median(p.elapsed_s for p in same)
    counts = [p.samples for p in same if p.samples]
    note = ""
    if samples and counts and statistics.median(counts) != samples:
        ratio = samples / statistics.median(counts)
        seconds *= ratio
        note = f", scaled x{ratio:.2f} for {samples} samples"
    source = f"{prefix}prior evaluations: {len(same)} job(s) of {model} on {task} in {groups}{note}"
    return seconds / 60.0, source
