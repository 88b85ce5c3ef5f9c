"""The statistics of a run group: which differences its data support, and how firmly.

Reads: the per-sample scores of every evaluation (`tasks.results._samples`), the plan (cells,
factors, replicates, the design's `analysis:` settings). Writes (`write_tables`):
`results/samples.csv` (one row per run x task x epoch x sample) and `results/effects.csv` (one
row per comparison: fine-tuned vs base, factor main effects, interactions, Holm-adjusted) and
`results/replicates.csv` (per cell: accuracy of each seed, their mean, its interval, the seed SD
next to the test items' SE), each atomically.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from pydantic import BaseModel, Field

from tasks.core._files import atomic_write_text
from tasks.model._layout import RESULT_TABLES, GroupLayout
from tasks.model._plan import Plan
from tasks.results._collect import EvalResult, add_deltas
from tasks.results._effects import (
    Effect,
    SeedVariance,
    adjust_holm,
    clip_to_scale,
    factor_effects,
    pooled_seed_variance,
)
from tasks.results._paired import vs_base
from tasks.results._samples import ScoredEvaluation, csv_text, samples_csv, scored_evaluations

EFFECT_COLUMNS = ["task", "epoch", "kind", "contrast", "estimate", "ci_low", "ci_high", "p_value", "p_adjusted",
                  "n_items", "n_replicates", "seed_part", "method", "items_needed", "note"]


class SeedPool(BaseModel):
    """Where one task and epoch's seed variance comes from: the cells with 2+ usable replicates, pooled."""

    task: str
    epoch: str
    variance: float | None  # None: no cell has two usable replicates (seed variance unmeasured)
    df: int = 0
    replicated: list[str] = Field(default_factory=list)  # cells with 2+ usable replicates
    single: list[str] = Field(default_factory=list)  # cells with exactly one usable replicate


class ReplicateSpread(BaseModel):
    """One cell's replicates on one task and epoch: how much the seed moves its accuracy."""

    task: str
    epoch: str
    cell: str
    accuracies: list[float]  # one per replicate (seed), in replicate order
    seeds: list[int]
    mean: float
    ci_low: float
    ci_high: float
    seed_sd: float
    item_se: float  # a single run's accuracy SE over the test items (mean over the replicates)
    n_items: int

    @property
    def seed_to_item(self) -> float:
        """Seed SD over item SE (above about 1: the seed moves accuracy as much as the test set's size does)."""
        return self.seed_sd / self.item_se if self.item_se > 0 else math.inf if self.seed_sd > 0 else 0.0


class Analysis(BaseModel):
    """Every comparison of a run group, and what could not be compared."""

    alpha: float
    power: float
    replicates: int
    effects: list[Effect] = Field(default_factory=list)
    spreads: list[ReplicateSpread] = Field(default_factory=list)
    seed_pools: list[SeedPool] = Field(default_factory=list)
    evaluations: list[ScoredEvaluation] = Field(default_factory=list, exclude=True)

    def task_effects(self, task: str) -> list[Effect]:
        """The comparisons of one task, in table order."""
        return [e for e in self.effects if e.task == task]

    @property
    def tasks(self) -> list[str]:
        """Tasks with at least one comparison row."""
        return list(dict.fromkeys(e.task for e in self.effects))

    def table(self) -> list[dict[str, object]]:
        """Rows for Prefect's table artifact (rounded for reading; effects.csv keeps every digit).

        The UI renders cells as Markdown, where a lone "-" becomes a bullet: missing values are "n/a".
        """
        def signed(value: float | None) -> str:
            return "n/a" if value is None else f"{value:+.3f}"

        return [{"task": e.task, "epoch": e.epoch, "contrast": e.contrast, "estimate": signed(e.estimate),
                 "95% CI": "n/a" if e.ci_low is None else f"[{e.ci_low:+.3f}, {e.ci_high:+.3f}]",
                 "p (Holm)": "n/a" if e.p_adjusted is None else f"{e.p_adjusted:.2g}",
                 "items": e.n_items, "replicates": e.n_replicates,
                 "seed variance in CI": "n/a" if e.ci_low is None else "yes" if e.seed_part else "no",
                 "note": e.note} for e in self.effects]


def _spread(cell: list[ScoredEvaluation], alpha: float) -> ReplicateSpread | None:
    """The cell's accuracy per replicate, their mean with a t interval (clipped to 0..1 for 0/1 scores)."""
    from scipy import stats

    if len(cell) < 2 or any(s.unusable or not s.scores for s in cell):
        return None
    accuracies = [statistics.fmean(s.scores.values()) for s in cell]
    mean, sd = statistics.fmean(accuracies), statistics.stdev(accuracies)
    half = float(stats.t.ppf(1 - alpha / 2, len(cell) - 1)) * sd / math.sqrt(len(cell))
    low, high = mean - half, mean + half
    if _unit_scores(cell):
        low, high = max(low, 0.0), min(high, 1.0)
    item_se = statistics.fmean(
        statistics.stdev(s.scores.values()) / math.sqrt(len(s.scores)) if len(s.scores) > 1 else 0.0 for s in cell)
    first = cell[0]
    return ReplicateSpread(task=first.task, epoch=first.epoch_text, cell=first.cell, accuracies=accuracies,
                           seeds=[], mean=mean, ci_low=low, ci_high=high, seed_sd=sd,
                           item_se=item_se, n_items=min(len(s.scores) for s in cell))


def _unit_scores(evaluations: list[ScoredEvaluation]) -> bool:
    """Whether every score lies in 0..1 (0/1 and C/I/P/N scores do): accuracies and their differences are bounded."""
    return all(0 <= v <= 1 for s in evaluations for v in s.scores.values())


def _span(evaluations: list[ScoredEvaluation]) -> float:
    """Highest minus lowest score these evaluations can give: 1 for scores in 0..1, else as seen."""
    if _unit_scores(evaluations):
        return 1.0
    values = [v for s in evaluations for v in s.scores.values()]
    return max(values) - min(values)


def _seed_pool(task: str, epoch: str, cells: dict[str, list[ScoredEvaluation]]) -> tuple[SeedPool, SeedVariance | None]:
    """The pooled seed variance of one task and epoch, and which cells it comes from."""
    seed = pooled_seed_variance(list(cells.values()))
    usable = {name: sum(1 for s in cell if not s.unusable) for name, cell in cells.items()}
    return SeedPool(task=task, epoch=epoch, variance=seed.variance if seed else None, df=seed.df if seed else 0,
                    replicated=[c for c, n in usable.items() if n >= 2],
                    single=[c for c, n in usable.items() if n == 1]), seed


def analyze(plan: Plan, results: list[EvalResult]) -> Analysis:
    """Every comparison the plan's evaluations allow (reads the `.eval` logs' samples)."""
    spec = plan.design.analysis
    seeds = {run.name: run.params.seed for run in plan.runs}
    evaluations = scored_evaluations(plan, results)
    factors = plan.factor_levels()
    run_levels = {r.name: {"model": r.model, **r.factors} for r in plan.finetune_runs}
    design_cells = list(dict.fromkeys(r.cell_name for r in plan.finetune_runs))
    analysis = Analysis(alpha=spec.alpha, power=spec.power, replicates=plan.design.replicates,
                        evaluations=evaluations)
    for task in dict.fromkeys(s.task for s in evaluations):
        bases = {s.model: s for s in evaluations if s.task == task and s.kind == "control"}
        tuned = [s for s in evaluations if s.task == task and s.kind == "finetune"]
        for epoch in dict.fromkeys(s.epoch_text for s in tuned):
            at_epoch = [s for s in tuned if s.epoch_text == epoch]
            cells: dict[str, list[ScoredEvaluation]] = {}
            for scored in at_epoch:
                cells.setdefault(scored.cell, []).append(scored)
            pool, seed = _seed_pool(task, epoch, cells)
            analysis.seed_pools.append(pool)
            found = [vs_base(cell, bases.get(cell[0].model), spec.alpha, seed)
                     for cell in cells.values()] if plan.control_runs else []
            found += factor_effects(at_epoch, run_levels, factors, spec.alpha, seed, design_cells)
            analysis.effects += clip_to_scale(found, _span([*at_epoch, *bases.values()]))
            for cell in cells.values():
                usable = [s for s in cell if not s.unusable and s.scores]
                spread = _spread(usable, spec.alpha)
                if spread is not None:
                    spread.seeds = [seeds[s.run] for s in usable]
                    analysis.spreads.append(spread)
    adjust_holm(analysis.effects, spec.alpha, spec.power)
    return analysis


def withhold_incomplete(results: list[EvalResult], evaluations: list[ScoredEvaluation]) -> None:
    """Withhold the accuracy of every result whose samples are not all usable (and the deltas built on it).

    inspect-ai's metrics leave out what they cannot use (its `mean` skips a NaN score): its accuracy
    is then over fewer samples than the test set without saying so. The note keeps inspect's figure
    and says why it is no result.
    """
    unusable = {(s.run, s.task, s.epoch): s.unusable for s in evaluations if s.unusable}
    withheld = False
    for result in results:
        why = unusable.get((result.run, result.task, result.epoch))
        if why and result.accuracy is not None:
            result.reason = (f"no accuracy from incomplete scores: {why} (inspect's {result.metric} "
                             f"{result.accuracy:.3f} leaves such samples out)")
            result.accuracy = result.stderr = None
            withheld = True
    if withheld:
        for result in results:
            result.delta_vs_base = None
        add_deltas(results)


def effects_csv(analysis: Analysis) -> str:
    """results/effects.csv's text."""
    return csv_text(EFFECT_COLUMNS, [
        {k: ("" if v is None else v) for k, v in e.model_dump(include=set(EFFECT_COLUMNS)).items()}
        for e in analysis.effects])


def replicates_csv(analysis: Analysis) -> str:
    """results/replicates.csv's text."""
    columns = ["task", "epoch", "cell", "replicates", "seeds", "accuracies", "mean", "ci_low", "ci_high",
               "seed_sd", "item_se", "n_items"]
    return csv_text(columns, [
        {"task": s.task, "epoch": s.epoch, "cell": s.cell, "replicates": len(s.accuracies),
         "seeds": " ".join(map(str, s.seeds)), "accuracies": " ".join(f"{a:.6g}" for a in s.accuracies),
         "mean": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "seed_sd": s.seed_sd, "item_se": s.item_se,
         "n_items": s.n_items} for s in analysis.spreads])


def write_tables(plan: Plan, analysis: Analysis) -> list[Path]:
    """Write results/samples.csv, effects.csv and replicates.csv; return their paths."""
    folder = GroupLayout(plan.group_dir).results_dir
    folder.mkdir(parents=True, exist_ok=True)
    texts = (samples_csv(plan, analysis.evaluations), effects_csv(analysis), replicates_csv(analysis))
    return [atomic_write_text(folder / name, text) for name, text in zip(RESULT_TABLES, texts, strict=True)]


__all__ = ["Analysis", "ReplicateSpread", "SeedPool", "analyze", "effects_csv", "replicates_csv", "withhold_incomplete",
           "write_tables"]
