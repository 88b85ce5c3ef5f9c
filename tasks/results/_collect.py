"""Collect what a run group produced: evaluation scores, training loss, time, memory, GPU-hours.

Reads (writes nothing):
- `{group}/experiment.yaml` (the plan: runs, evaluation jobs, estimates) and `runs_status.yaml`
  (stage states, reasons, and every attempt's job id, elapsed time and batch size);
- each evaluation's inspect-ai logs `{group}/{run}/evaluations/{task}/logs/*.eval` (header only:
  `status`, `results.scores[*].metrics`, `results.completed_samples` / `total_samples`, and the
  metadata `run`, `epoch`, `design_hash` that the eval scripts pass): per evaluation job, the
  newest successful log of that run and epoch written by the stage's current attempt (an
  earlier attempt's log, e.g. before a re-run, is not its result);
- training loss per step from torchtune's DiskLogger files `{group}/{run}/logs/log_<unix time>.txt`
  (`Step 10 | loss:1.83 lr:3e-05 ...`), or, when there are none, from the training bars of the
  fine-tune's job logs (`{run}/<job log>`, named as the group's backend names them)
  (`1|10|Loss: 1.83:  1%|...`);
- the final fine-tune attempt's job log through `tasks.training._prior_logs.parse_log` (it/s, peak GPU
  memory, training time).

A stage that has no result (failed, cancelled, still running, no log) gives `None` figures and
a `reason` taken from runs_status.yaml, never an exception.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tasks.backends import job_naming
from tasks.evaluation._eval_logs import EVAL_CLOCK_SLACK_S, EvalLogEntry, read_log_headers
from tasks.model._cluster import cluster_settings
from tasks.model._job_naming import JobNaming
from tasks.model._layout import GroupLayout
from tasks.model._plan import EpochRef, EvalJob, Plan, Run, RunKind
from tasks.model._status import FINETUNE, RunsStatus, StageStatus
from tasks.training._prior_logs import PriorRun, parse_log
from tasks.training._torchtune_logs import bar_losses, disk_logger_losses

FINAL_POINTS = 10  # "final loss" = mean of the last this-many logged values


class EvalResult(BaseModel):
    """One evaluation job's outcome (a row of the results table)."""

    run: str
    model: str
    kind: RunKind
    task: str
    epoch: EpochRef = None
    key: str
    state: str  # the stage's status in runs_status.yaml
    accuracy: float | None = None
    stderr: float | None = None
    metric: str | None = None  # "<scorer>/<metric>" the accuracy was read from
    metrics: dict[str, float] = Field(default_factory=dict)  # every "<scorer>/<metric>" of the log
    completed_samples: int | None = None
    total_samples: int | None = None
    log: Path | None = None
    reason: str | None = None  # why there is no accuracy
    delta_vs_base: float | None = None  # accuracy minus the same model's base accuracy on this task


class LossCurve(BaseModel):
    """One run's training loss per step, and the log files it was read from."""

    run: str
    source: str  # DiskLogger file(s) or job log(s) read
    steps: list[int] = Field(default_factory=list)
    losses: list[float] = Field(default_factory=list)

    @property
    def first(self) -> float | None:
        """The first logged loss."""
        return self.losses[0] if self.losses else None

    @property
    def final(self) -> float | None:
        """The "final loss": the mean of the last `FINAL_POINTS` logged losses."""
        tail = self.losses[-FINAL_POINTS:]
        return sum(tail) / len(tail) if tail else None

    @property
    def minimum(self) -> float | None:
        """The lowest logged loss."""
        return min(self.losses) if self.losses else None


class AttemptUse(BaseModel):
    """One submission of one stage, as accounted in GPU-hours."""

    run: str
    stage: str
    job_id: str
    gpus: int
    elapsed_s: float | None
    outcome: Literal["succeeded", "failed", "active"]  # failed: ended without success (cancelled too)

    @property
    def succeeded(self) -> bool:
        """Whether this is the attempt that completed its stage."""
        return self.outcome == "succeeded"

    @property
    def failed(self) -> bool:
        """Whether this attempt ended without success (cancelled ones included)."""
        return self.outcome == "failed"

    @property
    def gpu_hours(self) -> float:
        """GPU-hours used: elapsed time x GPUs (0 while the elapsed time is unknown)."""
        return (self.elapsed_s or 0.0) * self.gpus / 3600.0


class RunResources(BaseModel):
    """Estimated (from the plan) against actual (from attempts and the job log) for one run."""

    run: str
    model: str
    kind: RunKind
    state: str  # fine-tune stage status ("skipped" for base models)
    reason: str | None = None
    attempts: int = 0
    failed_attempts: int = 0
    batch_size_est: int | None = None
    batch_size_used: int | None = None
    train_minutes_est: float | None = None
    train_minutes: float | None = None  # the successful attempt's job elapsed time (else the log's bars)
    train_minutes_all: float | None = None  # every attempt together
    speed_it_s_est: float | None = None
    speed_it_s: float | None = None
    peak_memory_gib_est: float | None = None
    peak_memory_gib: float | None = None
    eval_minutes_est: float | None = None
    eval_minutes: float | None = None  # every evaluation attempt together
    gpu_hours_est: float | None = None
    gpu_hours: float = 0.0  # every attempt of every stage, failed ones included
    failed_gpu_hours: float = 0.0
    missing_elapsed: int = 0  # ended attempts whose elapsed time the scheduler never reported
    log: Path | None = None  # the fine-tune log the actual figures come from

    @property
    def train_error_pct(self) -> float | None:
        """(estimated - actual) / actual of the fine-tune's time, in percent, once it completed."""
        done = self.kind == "finetune" and self.state == "completed"
        return estimate_error_pct(self.train_minutes_est, self.train_minutes) if done else None

    @property
    def eval_error_pct(self) -> float | None:
        """The same for the run's evaluation jobs together (only when none had to be retried)."""
        return estimate_error_pct(self.eval_minutes_est, self.eval_minutes)


def estimate_error_pct(estimated: float | None, actual: float | None) -> float | None:
    """How far an estimate was off, in percent of the actual (+: over-estimated); None without both."""
    if estimated is None or not actual:
        return None
    return round((estimated - actual) / actual * 100, 1)


# ---------------------------------------------------------------------------- evaluations


def _why(stage: StageStatus | None) -> str:
    if stage is None:
        return "not in runs_status.yaml"
    if stage.reason:
        return f"{stage.status}: {stage.reason}"
    return {"pending": "not submitted yet", "submitted": "waiting in the queue", "running": "running"}.get(
        stage.status, stage.status)


def _scores(header: Any) -> tuple[float | None, float | None, str | None, dict[str, float]]:
    """(accuracy, its stderr, "<scorer>/<metric>", all metrics) of a log's results."""
    metrics: dict[str, float] = {}
    accuracy = stderr = None
    chosen = None
    for score in getattr(header.results, "scores", None) or []:
        values = {name: float(m.value) for name, m in score.metrics.items() if isinstance(m.value, (int, float))}
        metrics.update({f"{score.name}/{name}": value for name, value in values.items()})
        if chosen is None and values:
            name = "accuracy" if "accuracy" in values else next(iter(values))
            chosen, accuracy, stderr = f"{score.name}/{name}", values[name], values.get("stderr")
    return accuracy, stderr, chosen, metrics


def collect_evaluations(plan: Plan, status: RunsStatus) -> list[EvalResult]:
    """One EvalResult per evaluation job of the plan, with the base-model delta filled in."""
    layout = GroupLayout(plan.group_dir)
    folders: dict[Path, list[EvalLogEntry]] = {}
    results: list[EvalResult] = []
    for run in plan.runs:
        for job in run.evaluations:
            entry = status.runs.get(run.name)
            stage = entry.evaluations.get(job.key) if entry else None
            result = EvalResult(run=run.name, model=run.model, kind=run.kind, task=job.task, epoch=job.epoch,
                                key=job.key, state=stage.status if stage else "unknown")
            folder = layout.eval_logs_dir(run.name, job.task)
            if folder not in folders:
                folders[folder] = [entry for entry in read_log_headers(folder) if entry.header is not None]
            _fill(result, job, folders[folder], plan.design_hashes, stage)
            results.append(result)
    add_deltas(results)
    return results


def current_attempt_since(stage: StageStatus | None) -> float | None:
    """The earliest mtime a log of the stage's current attempt can have (None: any log counts).

    Logs of an earlier attempt (a re-run, a retried task, a re-trained checkpoint) are not this
    attempt's result. A stage reopened after its last attempt has no current attempt yet: no log
    counts (`math.inf`). A stage with no attempt on record (made by hand) takes any log.
    """
    if stage is None or not stage.attempts:
        return None
    last = stage.attempts[-1]
    if last.reopened:
        return math.inf
    try:
        submitted = datetime.fromisoformat(last.submitted).timestamp() if last.submitted else None
    except ValueError:
        return None
    return None if submitted is None else submitted - EVAL_CLOCK_SLACK_S


def _fill(result: EvalResult, job: EvalJob, logs: list[EvalLogEntry], design_hashes: set[str],
          stage: StageStatus | None) -> None:
    mine = []
    since = current_attempt_since(stage)
    for entry in logs:
        if not entry.is_for(job.run, job.epoch):
            continue
        if since is not None and entry.mtime < since:
            continue  # an earlier attempt's log: not what the current attempt scored
        if entry.metadata.get("design_hash") not in (None, *design_hashes):
            continue  # written for another design of the same name (an extension's earlier designs are its own)
        mine.append((entry.status == "success", entry.mtime, str(entry.path), entry.path, entry.header))
    if not mine:
        result.reason = (
            _why(stage) if stage is None or stage.status != "completed" else "completed but no .eval log found"
            + (" of its current attempt" if since is not None else "")
        )
        return
    ok, _, _, path, header = max(mine)
    result.log = path
    if not ok:
        result.reason = f".eval status {header.status}" + (f" ({_why(stage)})" if stage and stage.reason else "")
        return
    result.accuracy, result.stderr, result.metric, result.metrics = _scores(header)
    if header.results is not None:
        result.completed_samples = header.results.completed_samples
        result.total_samples = header.results.total_samples
    if result.accuracy is None:
        result.reason = "the log has no scores"


def _final_epoch_key(result: EvalResult) -> tuple[int, int]:
    if isinstance(result.epoch, int):
        return (1, result.epoch)
    return (2 if result.epoch == "best" else 0, 0)


def final_results(results: list[EvalResult]) -> dict[tuple[str, str], EvalResult]:
    """(run, task) -> the result of its last evaluated epoch ("best" over numbers; base: its only one)."""
    chosen: dict[tuple[str, str], EvalResult] = {}
    for result in results:
        key = (result.run, result.task)
        if key not in chosen or _final_epoch_key(result) >= _final_epoch_key(chosen[key]):
            chosen[key] = result
    return chosen


def add_deltas(results: list[EvalResult]) -> None:
    """Fill each fine-tuned result's `delta_vs_base` (the same model's base accuracy on the task, where both exist)."""
    base = {(r.model, r.task): r.accuracy for r in results if r.kind == "control" and r.accuracy is not None}
    for result in results:
        reference = base.get((result.model, result.task))
        if result.kind == "finetune" and result.accuracy is not None and reference is not None:
            result.delta_vs_base = result.accuracy - reference


# ---------------------------------------------------------------------------- training loss


def _merge(curves: list[dict[int, float]]) -> dict[int, float]:
    """One curve from the curves of successive attempts.

    A later attempt replaces every step from its first step on (a restart from step 1 replaces
    all; a resume keeps the earlier epochs).
    """
    merged: dict[int, float] = {}
    for curve in curves:
        if not curve:
            continue
        first = min(curve)
        merged = {step: loss for step, loss in merged.items() if step < first}
        merged.update(curve)
    return dict(sorted(merged.items()))


def _job_order(path: Path) -> tuple[int, str]:
    digits = re.sub(r"\D", "", path.stem.split("-", 1)[-1])
    return (int(digits) if digits else 0, path.name)


def _log_order(path: Path, naming: JobNaming) -> tuple[int, str]:
    digits = re.sub(r"\D", "", naming.job_id_of(path) or "")
    return (int(digits) if digits else 0, path.name)


def loss_curve(run_dir: Path, naming: JobNaming) -> LossCurve | None:
    """The run's training loss per step (DiskLogger files first, else the bars of its job logs, named by `naming`)."""
    metric_files = sorted((run_dir / "logs").glob("log_*.txt"), key=_job_order)
    sources, curves = metric_files, []
    for path in metric_files:
        curves.append(disk_logger_losses(path.read_text(encoding="utf-8", errors="replace")))
    if not any(curves):
        sources = sorted(run_dir.glob(naming.log_glob), key=lambda path: _log_order(path, naming))
        curves = [bar_losses(path.read_text(encoding="utf-8", errors="replace")) for path in sources]
    merged = _merge(curves)
    if not merged:
        return None
    used = [str(p) for p, c in zip(sources, curves, strict=True) if c]
    return LossCurve(run=run_dir.name, source=", ".join(used), steps=list(merged), losses=list(merged.values()))


# ---------------------------------------------------------------------------- time, memory, GPU-hours


def attempt_uses(plan: Plan, status: RunsStatus) -> list[AttemptUse]:
    """Every attempt of every stage, with how it was used.

    The last one of a completed stage succeeded, that of an unfinished stage is active, every
    other one failed (an earlier attempt was always replaced after failing). The tasks of one
    evaluated checkpoint share a job: each stage counts an equal share of its elapsed time, so
    the job's time is counted once.
    """
    uses: list[AttemptUse] = []
    for run in plan.runs:
        entry = status.runs.get(run.name)
        if entry is None:
            continue
        stages = [(FINETUNE, entry.finetune, plan.design.gpu.count)] + [
            (k, s, 1) for k, s in entry.evaluations.items()
        ]
        sharing = Counter(a.job_id for _, s, _ in stages for a in s.attempts)
        for key, stage, gpus in stages:
            for i, attempt in enumerate(stage.attempts):
                last = i == len(stage.attempts) - 1
                outcome = (
                    ("succeeded" if stage.status == "completed" else "failed" if stage.is_terminal else "active")
                    if last else "failed"
                )
                share = None if attempt.elapsed_s is None else attempt.elapsed_s / sharing[attempt.job_id]
                uses.append(AttemptUse(run=run.name, stage=key, job_id=attempt.job_id, gpus=gpus,
                                       elapsed_s=share, outcome=outcome))
    return uses


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60.0


def _estimated_memory(plan: Plan, run: Run, batch: int | None) -> float | None:
    """Peak GPU memory expected at the run's batch size.

    Only when the plan's memory and speed figures come from one prior log, whose batch size is known.
    """
    model = plan.estimates.per_model.get(run.model)
    if model is None or model.peak_memory_gib is None:
        return None
    if model.prior_batch_size and batch and model.peak_memory_gib.source == model.speed_it_s.source:
        return model.peak_memory_gib.value * batch / model.prior_batch_size
    return None


def run_resources(plan: Plan, status: RunsStatus, uses: list[AttemptUse]) -> list[RunResources]:
    """One row per run of the plan: estimated against actual time, memory and GPU-hours."""
    rows: list[RunResources] = []
    by_run: dict[str, list[AttemptUse]] = {}
    for use in uses:
        by_run.setdefault(use.run, []).append(use)
    naming = job_naming(cluster_settings(plan.design))
    for run in plan.runs:
        entry = status.runs.get(run.name)
        est = plan.estimates.runs.get(run.name)
        model = plan.estimates.per_model.get(run.model)
        mine = by_run.get(run.name, [])
        ft = [u for u in mine if u.stage == FINETUNE]
        evals = [u for u in mine if u.stage != FINETUNE]
        row = RunResources(
            run=run.name, model=run.model, kind=run.kind,
            state=entry.finetune.status if entry else "unknown",
            reason=(entry.finetune.reason if entry else "not in runs_status.yaml"),
            attempts=len(ft), failed_attempts=sum(1 for u in ft if u.failed),
            batch_size_est=run.params.batch_size,
            train_minutes_est=est.train_minutes if est and not run.is_control else None,
            speed_it_s_est=model.speed_it_s.value if model and not run.is_control else None,
            peak_memory_gib_est=None if run.is_control else _estimated_memory(plan, run, run.params.batch_size),
            eval_minutes_est=est.eval_minutes if est else None,
            gpu_hours_est=est.gpu_hours if est else None,
            gpu_hours=sum(u.gpu_hours for u in mine),
            failed_gpu_hours=sum(u.gpu_hours for u in mine if u.failed),
            missing_elapsed=sum(1 for u in mine if u.elapsed_s is None and u.outcome != "active"),
        )
        spent = [u.elapsed_s for u in ft if u.elapsed_s is not None]
        row.train_minutes_all = _minutes(sum(spent)) if spent else None
        eval_spent = [u.elapsed_s for u in evals if u.elapsed_s is not None]
        row.eval_minutes = _minutes(sum(eval_spent)) if eval_spent else None
        if entry and entry.finetune.attempts and not run.is_control:
            last = entry.finetune.attempts[-1]
            row.batch_size_used = last.batch_size
            _from_log(row, GroupLayout(plan.group_dir).job_log(run.name, None, last.job_id, naming),
                      last.elapsed_s if entry.finetune.status == "completed" else None)
        rows.append(row)
    return rows


def _from_log(row: RunResources, path: Path, elapsed_s: float | None) -> None:
    prior: PriorRun | None = parse_log(path) if path.is_file() else None
    row.train_minutes = _minutes(elapsed_s)
    if prior is None:
        return
    row.log = path
    row.speed_it_s = prior.speed_it_s
    row.peak_memory_gib = prior.peak_memory_gib
    if row.batch_size_used is None:
        row.batch_size_used = prior.batch_size
    if row.train_minutes is None and prior.completed and prior.train_elapsed_s is not None:
        row.train_minutes = _minutes(prior.train_elapsed_s)


__all__ = [
    "AttemptUse", "EvalResult", "LossCurve", "RunResources", "attempt_uses", "collect_evaluations",
    "final_results", "loss_curve", "run_resources",
]
