"""The experiment summary of a run group: results, comparisons, loss, resources, plots.

Reads: everything `tasks.results._collect` reads (experiment.yaml, runs_status.yaml, `.eval` logs,
DiskLogger metric files, fine-tune job logs). `summarize(group_dir)` writes nothing.
Writes (`write_summary`): `{group}/summary.md` (from `templates/reports/summary.md.j2`), the
tables `{group}/results/*.csv` (tasks.results._analysis) and the plots (tasks.results._plots), each
atomically.

A figure that does not exist (a failed run, an evaluation without a log) is shown as "-" with the
reason from runs_status.yaml.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from tasks.backends import job_naming
from tasks.core._files import atomic_write_text
from tasks.core._templating import render_template
from tasks.model._group import GroupRef, RunGroup
from tasks.model._plan import EpochRef, Plan
from tasks.model._status import RunsStatus
from tasks.results._analysis import Analysis, analyze, withhold_incomplete, write_tables
from tasks.results._collect import (
    EvalResult,
    LossCurve,
    RunResources,
    attempt_uses,
    collect_evaluations,
    final_results,
    loss_curve,
    run_resources,
)
from tasks.results._conclusions import TaskConclusions, conclusions
from tasks.results._plots import BASE_LEVEL, plot_files, write_plots


class TaskDelta(BaseModel):
    """Fine-tuned against base, one task and one model, at each run's last evaluated epoch."""

    task: str
    model: str
    base_accuracy: float | None
    runs: int  # fine-tuned runs with an accuracy
    best_run: str | None = None
    best_epoch: EpochRef = None
    best_accuracy: float | None = None
    best_delta: float | None = None
    mean_delta: float | None = None
    reason: str | None = None


class LossRow(BaseModel):
    """One run's training loss: steps logged, first, final and lowest loss, and its source (or why none)."""

    run: str
    steps: int = 0
    first: float | None = None
    final: float | None = None  # mean of the last logged values (tasks.results._collect.FINAL_POINTS)
    minimum: float | None = None
    source: str | None = None
    reason: str | None = None


class GpuHoursRow(BaseModel):
    """GPU-hours of one factor level's runs: attempts, failed ones, actual against estimated."""

    factor: str
    level: str
    runs: int
    attempts: int
    failed_attempts: int
    gpu_hours: float
    failed_gpu_hours: float
    gpu_hours_est: float


class Summary(BaseModel):
    """Everything summary.md and the result artifacts show about one run group."""

    run_group: str
    question: str
    group_dir: Path
    design_hash: str
    written: str
    factors: dict[str, list[str]]  # factor -> level labels ("model" first)
    run_levels: dict[str, dict[str, str]]  # run -> factor -> its level
    state_counts: dict[str, int]
    results: list[EvalResult]
    deltas: list[TaskDelta]
    losses: list[LossRow]
    resources: list[RunResources]
    gpu_hours: list[GpuHoursRow]
    gpu_hours_total: float
    gpu_hours_failed: float
    gpu_hours_est: float
    notes: list[str] = Field(default_factory=list)
    curves: dict[str, LossCurve] = Field(default_factory=dict, exclude=True)
    analysis: Analysis | None = None  # the comparisons (None: summarize(..., compare=False))
    conclusions: list[TaskConclusions] = Field(default_factory=list)

    def mean_abs_error_pct(self, stage: str) -> tuple[float, int] | None:
        """(mean absolute estimate error in percent, runs it is over) for `train` or `eval`; None without any."""
        errors = [abs(e) for r in self.resources
                  if (e := (r.train_error_pct if stage == "train" else r.eval_error_pct)) is not None]
        return (round(sum(errors) / len(errors), 1), len(errors)) if errors else None

    def table(self) -> list[dict[str, object]]:
        """Rows for Prefect's create_table_artifact: run, task, epoch, accuracy, samples, delta vs base.

        The UI renders cells as Markdown, where a lone "-" becomes a bullet: missing values are "n/a".
        """
        def cell(text: str) -> str:
            return "n/a" if text == "-" else text

        return [
            {"run": r.run, "task": r.task, "epoch": epoch_label(r.epoch), "accuracy": cell(_num(r.accuracy)),
             "samples": cell(samples_text(r)), "delta vs base": cell(_num(r.delta_vs_base, signed=True)),
             "note": r.reason or ""}
            for r in self.results
        ]


def epoch_label(epoch: EpochRef) -> str:
    return "base" if epoch is None else str(epoch)


def _num(value: float | None, signed: bool = False, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pval(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}" if value >= 1e-4 else "< 0.0001"


def samples_text(result: EvalResult) -> str:
    if result.completed_samples is None:
        return "-"
    return (
        f"{result.completed_samples}/{result.total_samples}" if result.total_samples
        else str(result.completed_samples)
    )


def _levels(plan: Plan) -> dict[str, list[str]]:
    levels = plan.factor_levels()
    if plan.control_runs:
        for factor in list(levels)[1:]:
            levels[factor].append(BASE_LEVEL)
    return levels


def _run_levels(plan: Plan, factors: list[str]) -> dict[str, dict[str, str]]:
    """Run -> factor -> the run's level (base-model runs: BASE_LEVEL for every factor but model)."""
    return {run.name: {f: run.model if f == "model" else run.factors.get(f, BASE_LEVEL) for f in factors}
            for run in plan.runs}


def _deltas(plan: Plan, results: list[EvalResult]) -> list[TaskDelta]:
    final = final_results(results)
    rows: list[TaskDelta] = []
    for task in dict.fromkeys(r.task for r in results):
        for model in dict.fromkeys(r.model for r in plan.runs):
            base = next(
                (r for (_, t), r in final.items() if t == task and r.model == model and r.kind == "control"), None
            )
            tuned = [r for (_, t), r in final.items() if t == task and r.model == model and r.kind == "finetune"]
            if not tuned:
                continue
            scored = [r for r in tuned if r.accuracy is not None]
            row = TaskDelta(task=task, model=model, base_accuracy=base.accuracy if base else None, runs=len(scored))
            if scored:
                best = max(scored, key=lambda r: r.accuracy or 0.0)
                row.best_run, row.best_epoch, row.best_accuracy = best.run, best.epoch, best.accuracy
                row.best_delta = best.delta_vs_base
                deltas = [r.delta_vs_base for r in scored if r.delta_vs_base is not None]
                row.mean_delta = statistics.fmean(deltas) if deltas else None
            if base is None:
                row.reason = f"no base-model run of {model} (controls: false)"
            elif base.accuracy is None:
                row.reason = f"base model: {base.reason}"
            elif not scored:
                row.reason = "no fine-tuned run has an accuracy yet"
            rows.append(row)
    return rows


def _loss_rows(plan: Plan, status: RunsStatus, curves: dict[str, LossCurve]) -> list[LossRow]:
    rows = []
    for run in plan.finetune_runs:
        curve = curves.get(run.name)
        if curve is None:
            entry = status.runs.get(run.name)
            stage = entry.finetune if entry else None
            why = "no loss logged" + (f" ({stage.status}: {stage.reason})" if stage and stage.reason else
                                      f" ({stage.status})" if stage else "")
            rows.append(LossRow(run=run.name, reason=why))
            continue
        rows.append(LossRow(run=run.name, steps=len(curve.steps), first=curve.first, final=curve.final,
                            minimum=curve.minimum, source=curve.source))
    return rows


def _gpu_hours(levels: dict[str, list[str]], run_levels: dict[str, dict[str, str]],
               resources: list[RunResources]) -> list[GpuHoursRow]:
    rows = []
    for factor, labels in levels.items():
        grouped: dict[str, list[RunResources]] = {}
        for row in resources:
            grouped.setdefault(run_levels[row.run][factor], []).append(row)
        for label in labels:
            mine = grouped.get(label, [])
            if not mine:
                continue
            rows.append(GpuHoursRow(
                factor=factor, level=label, runs=len(mine),
                attempts=sum(r.attempts for r in mine), failed_attempts=sum(r.failed_attempts for r in mine),
                gpu_hours=sum(r.gpu_hours for r in mine), failed_gpu_hours=sum(r.failed_gpu_hours for r in mine),
                gpu_hours_est=sum(r.gpu_hours_est or 0.0 for r in mine)))
    return rows


def summary_plan(group: RunGroup, include_dropped: bool = False) -> Plan:
    """The runs a summary covers: the design's, and, with `include_dropped`, those an extension dropped."""
    return group.plan.with_dropped() if include_dropped else group.plan


def summarize(group: GroupRef, compare: bool = True, include_dropped: bool = False) -> Summary:
    """Everything summary.md shows, computed from the files of the run group (writes nothing).

    `compare=False` leaves out the comparisons (they read every sample of every `.eval` log).
    `include_dropped`: the runs an extension dropped from the design too (left out by default).
    """
    group = RunGroup.of(group)
    plan = summary_plan(group, include_dropped)
    status = group.status.read()
    results = collect_evaluations(plan, status)
    uses = attempt_uses(plan, status)
    resources = run_resources(plan, status, uses)
    naming = job_naming(group.cluster)
    curves = {r.name: c for r in plan.finetune_runs
              if (c := loss_curve(group.layout.run_dir(r.name), naming)) is not None}
    levels = _levels(plan)
    run_levels = _run_levels(plan, list(levels))
    counts: dict[str, int] = {}
    for _, _, stage in status.stages():
        if include_dropped or stage.status != "dropped":
            counts[stage.status] = counts.get(stage.status, 0) + 1
    notes = []
    if plan.dropped_runs and not include_dropped:
        notes.append(f"{len(plan.dropped_runs)} run(s) dropped from the design are left out "
                     f"({', '.join(d.run.name for d in plan.dropped_runs)}); include_dropped shows them.")
    missing = sum(r.missing_elapsed for r in resources)
    if missing:
        notes.append(f"{missing} finished attempt(s) have no elapsed time from the scheduler (e.g. cancelled while "
                     "waiting); their GPU-hours count as 0.")
    analysis = analyze(plan, results) if compare else None
    if analysis is not None:
        withhold_incomplete(results, analysis.evaluations)
    if not any(r.accuracy is not None for r in results):
        notes.append("No evaluation has a score yet.")
    return Summary(
        analysis=analysis, conclusions=conclusions(analysis) if analysis else [],
        run_group=plan.run_group, question=plan.design.question, group_dir=plan.group_dir, design_hash=plan.design_hash,
        written=datetime.now(UTC).isoformat(timespec="seconds"), factors=levels,
        run_levels=run_levels, state_counts=counts,
        results=results, deltas=_deltas(plan, results), losses=_loss_rows(plan, status, curves), resources=resources,
        gpu_hours=_gpu_hours(levels, run_levels, resources), gpu_hours_total=sum(u.gpu_hours for u in uses),
        gpu_hours_failed=sum(u.gpu_hours for u in uses if u.failed),
        gpu_hours_est=plan.estimates.total_gpu_hours, notes=notes, curves=curves,
    )


def render_summary(summary: Summary) -> str:
    """summary.md's text for `summary`."""
    return render_template("reports/summary.md.j2", s=summary, plots=plot_files(summary), epoch_label=epoch_label,
                           num=_num, samples=samples_text, pval=_pval)


def write_summary(group: GroupRef, summary: Summary | None = None, include_dropped: bool = False) -> list[Path]:
    """Write summary.md and the plots into the run group; return their paths (summary.md first)."""
    group = RunGroup.of(group)
    summary = summary or summarize(group, include_dropped=include_dropped)
    written = [atomic_write_text(group.layout.summary_file, render_summary(summary))]
    if summary.analysis is not None:
        written += write_tables(summary_plan(group, include_dropped), summary.analysis)
    return written + write_plots(summary, group.root)


__all__ = ["GpuHoursRow", "LossRow", "Summary", "TaskDelta", "render_summary", "summarize", "write_summary"]
