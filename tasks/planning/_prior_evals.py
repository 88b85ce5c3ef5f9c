"""What earlier run groups' evaluation jobs took: the evaluation estimates learn from evaluations.

Reads, under the prior-run folders (recursively): each sweepflow run group's `experiment.yaml`
(model, task and sample count of every evaluation), `runs_status.yaml` (the completed
attempt's job elapsed time, model loading and result logging included; a job that evaluated
several tasks of one checkpoint is split into one job per task, each with the job's fixed part) and the job's inspect
`.eval` log header (the seconds inspect spent on the samples, and how many it completed, which
outranks the plan's count: a task's own dataset may hold fewer than the limit). Writes: nothing.
A group that cannot be read is skipped; nothing here raises on bad input.

An evaluation job's time is fixed (start-up, model load, merge, tear-down: elapsed less inspect's
own time), plus inspect's first generation batch (its warm-up included), plus a time per sample
after it, so a pilot's 64-sample job predicts a 2,000-sample one without multiplying its model
load or its warm-up by 30. The time per sample after the first batch comes from inspect's clock
(whole seconds) for a job of `STEADY_BATCHES` batches or more, else from its samples' latencies
(`tasks.evaluation.sample_timing`). A job of one batch or less has no warm-up-free rate: each later
batch is taken to last as long as its first (an upper bound). A job with no readable log is
scaled by samples as a whole.
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tasks.core._errors import SweepflowError
from tasks.evaluation import SampleTiming, eval_seconds, evaluated_samples, read_log_headers, sample_timing
from tasks.model._layout import PLAN_FILE, STATUS_FILE, GroupLayout, is_pilot_group
from tasks.model._plan import EvalJob, Figure, Plan
from tasks.model._plan_file import load_plan
from tasks.model._status_file import StatusStore
from tasks.planning._formulas import measured_figure

# inspect's hf provider generates this many samples together (its max_connections, "effectively the batch
# size"): a job of fewer samples times one part-filled batch, whose time per sample over-states a full
# one's on a GPU (on a CPU, time grows with the batch). A pilot evaluates one full batch by default.
GENERATION_BATCH = 32
STEADY_BATCHES = 4  # a job of this many batches or more is timed by inspect's clock, a shorter one by its samples'


class PriorEval(BaseModel):
    """One finished evaluation job of an earlier run group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: Path
    model: str
    task: str
    samples: int | None  # evaluated samples (the design's limit, else the test split), when known
    elapsed_s: float
    eval_s: float | None = None  # of which inspect's own time on the samples (its log's stats), when readable
    first_batch_s: float | None = None  # of which its first GENERATION_BATCH samples (warm-up included)
    steady_per_sample_s: float | None = None  # after the first batch, per sample (from the samples' latencies)
    finished: str | None = None  # when the job ended (ISO time, as runs_status.yaml has it)
    pilot: bool = False  # the job of a pilot of this plan
    base: bool = False  # a base model's (control) evaluation: no checkpoint view or adapter merge first


def _samples(plan: Plan, task: str) -> int | None:
    """Samples the plan meant to evaluate (a task's own dataset: the limit, its size not counted then)."""
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
                eval_s, timing, logged = _inspect_seconds(group, run.name, job)
                if eval_s is not None and timing:  # inspect's clock has whole seconds, the latencies finer ones
                    eval_s = max(eval_s, timing.first_batch_s)
                found.append((attempt.job_id, PriorEval(
                    group=group, model=run.model, task=job.task, samples=logged or _samples(plan, job.task),
                    elapsed_s=attempt.elapsed_s, eval_s=eval_s,
                    first_batch_s=min(timing.first_batch_s, eval_s) if timing and eval_s else None,
                    steady_per_sample_s=timing.steady_per_sample_s if timing else None,
                    finished=attempt.finished, pilot=is_pilot_group(group), base=job.epoch is None)))
    return _as_own_jobs(found)


def _as_own_jobs(found: list[tuple[str, PriorEval]]) -> list[PriorEval]:
    """Each task's evaluation as a job of its own.

    A job shared by several tasks (one per checkpoint) paid its fixed part once: each task gets
    that fixed part plus its own inspect seconds.
    """
    by_job: dict[str, list[PriorEval]] = {}
    for job_id, prior in found:
        by_job.setdefault(job_id, []).append(prior)
    own = []
    for priors in by_job.values():
        if len(priors) == 1 or any(p.eval_s is None for p in priors):
            own += priors  # one task, or a task's time unknown: the job's elapsed time stands for each
            continue
        fixed = max(priors[0].elapsed_s - sum(p.eval_s or 0.0 for p in priors), 0.0)
        own += [p.model_copy(update={"elapsed_s": fixed + (p.eval_s or 0.0)}) for p in priors]
    return own


def _inspect_seconds(group: Path, run: str, job: EvalJob) -> tuple[float | None, SampleTiming | None, int | None]:
    """(inspect's seconds, how its samples went, samples it completed) in the newest successful log of this job."""
    logs = [e for e in read_log_headers(GroupLayout(group).eval_logs_dir(run, job.task))
            if e.status == "success" and e.is_for(run, job.epoch)]
    if not logs:
        return None, None, None
    newest = max(logs, key=lambda e: e.mtime)
    seconds = eval_seconds(newest)
    timing = sample_timing(newest, GENERATION_BATCH) if seconds is not None else None
    return seconds, timing, evaluated_samples(newest)


def inspect_seconds_for(prior: PriorEval, samples: int) -> float:
    """Inspect's seconds for `samples` samples, predicted from one earlier job (see the module doc)."""
    n, total = prior.samples or 1, prior.eval_s or 0.0
    first = prior.first_batch_s
    if first is None:
        return total / n * samples
    later = max(samples - GENERATION_BATCH, 0)
    if n >= STEADY_BATCHES * GENERATION_BATCH:  # enough batches: inspect's own whole-second clock is exact enough
        return first + (total - first) / (n - GENERATION_BATCH) * later
    if prior.steady_per_sample_s is not None:
        return first + prior.steady_per_sample_s * later
    return first * math.ceil(samples / GENERATION_BATCH)


def scan_prior_evals(folders: list[Path]) -> list[PriorEval]:
    """Every finished evaluation job of the run groups under `folders` (epoch_* folders not entered)."""
    found: list[PriorEval] = []
    seen: set[Path] = set()  # folders may nest (a pilot group under output_dir): each group is read once
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith(("epoch_", ".")))
            if PLAN_FILE in files and STATUS_FILE in files:
                if Path(root).resolve() not in seen:
                    seen.add(Path(root).resolve())
                    found += _group_evals(Path(root))
                dirs[:] = []  # a run group holds no other group
    return found


def _most_relevant(jobs: list[PriorEval]) -> list[PriorEval]:
    """Jobs that ended after the newest pilot job (the sweep it planned), else the pilot's, else all."""
    pilots = [p for p in jobs if p.pilot]
    if not pilots:
        return jobs
    since = max(p.finished or "" for p in pilots)
    return [p for p in jobs if not p.pilot and (p.finished or "") > since] or pilots


def eval_minutes_from_priors(
    priors: list[PriorEval], model: str, task: str, samples: int | None, base: bool | None = None
) -> Figure | None:
    """The minutes (and their source) of one evaluation job of `model` on `task` from earlier jobs of both.

    With `base` given, jobs of the same kind (base model, or a fine-tuned checkpoint) where there
    are any; among them a pilot's jobs alone (they ran this plan's configuration), unless jobs
    ended after them. With inspect's own time known: median fixed seconds + median seconds per
    sample x `samples`; else the median job scaled by samples.
    """
    same = [p for p in priors if p.model == model and p.task == task]
    same = [p for p in same if base is None or p.base == base] or same
    same = _most_relevant(same)
    if not same:
        return None
    groups = ", ".join(sorted({p.group.name for p in same}))
    timed = [p for p in same if p.eval_s is not None and p.samples]
    if timed and samples:
        fixed = statistics.median(max(p.elapsed_s - (p.eval_s or 0.0), 0.0) for p in timed)
        inspect_s = statistics.median(inspect_seconds_for(p, samples) for p in timed)
        source = (f"prior evaluations: {len(timed)} job(s) of {model} on {task} in {groups}: "
                  f"{fixed:.0f} s fixed + {inspect_s:.0f} s of inspect for {samples} samples")
        fewest = min(p.samples or 0 for p in timed)
        if fewest <= GENERATION_BATCH < samples:
            source += (f" (timed on {fewest} samples, one generation batch: each further batch is taken "
                       "to last as long as the first, an upper bound)")
        return measured_figure((fixed + inspect_s) / 60.0, source, by_pilot=same[0].pilot)
    seconds = statistics.median(p.elapsed_s for p in same)
    counts = [p.samples for p in same if p.samples]
    note = ""
    if samples and counts and statistics.median(counts) != samples:
        ratio = samples / statistics.median(counts)
        seconds *= ratio
        note = f", scaled x{ratio:.2f} for {samples} samples"
    source = f"prior evaluations: {len(same)} job(s) of {model} on {task} in {groups}{note}"
    return measured_figure(seconds / 60.0, source, by_pilot=same[0].pilot)
