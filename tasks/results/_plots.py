"""The summary's figures: training loss, accuracy by factor level with intervals, interactions.

Reads: a `Summary` (tasks.results._summarize) and its `Analysis`' per-sample scores. Writes, each
atomically, with matplotlib's Agg backend (no display):
- `plots/loss_curves.png`: training loss per step, one line per run;
- `plots/accuracy_by_<factor>.png`: accuracy at each run's last evaluated epoch per level of each
  factor (`model` included): one point per run, the level's mean with its 95 % interval over test
  items and, where replicates measured it, over seeds (the pooled seed variance of the task and
  epoch, as the comparisons use it), one colour per task; a level whose runs are not all scored
  has a hollow mean marker and no interval;
- `plots/interaction_<a>_x_<b>.png` when two factors vary among the fine-tuned runs: the mean per
  level of `a`, one line per level of `b`, with the same intervals, one panel per task.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.model._layout import PLOTS_DIR
from tasks.results._collect import final_results
from tasks.results._samples import ScoredEvaluation

if TYPE_CHECKING:
    from tasks.results._summarize import Summary

LOSS_PLOT = "loss_curves.png"
BASE_LEVEL = "base (not fine-tuned)"
MAX_LEGEND = 16  # more runs than this: no legend in the loss plot


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:  # fig: a matplotlib Figure
    """Save a figure atomically (temporary file + rename), then close it (saved or not)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
        os.close(fd)
        try:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
    finally:
        _pyplot().close(fig)


def plot_losses(summary: Summary, path: Path) -> Path:
    """Training loss per step, one line per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run, curve in summary.curves.items():
        ax.plot(curve.steps, curve.losses, label=run, linewidth=1)
    if not summary.curves:
        ax.text(0.5, 0.5, "no training loss logged yet", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="step", ylabel="training loss", title=f"Training loss - {summary.run_group}")
    if 0 < len(summary.curves) <= MAX_LEGEND:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def level_interval(summary: Summary, task: str, runs: list[str]) -> tuple[float, float] | None:
    """(mean, 95 % half-width) of `runs` on `task` at their last evaluated epoch, over items and seeds.

    None when any of the runs has no usable per-sample scores or they scored different items.
    """
    analysis = summary.analysis
    if analysis is None:
        return None
    final = final_results(summary.results)
    epochs = {run: final[(run, task)].epoch for run in runs if (run, task) in final}
    scored = [s for s in analysis.evaluations if s.task == task and s.run in epochs and s.epoch == epochs[s.run]]
    if not scored or len(scored) != len(runs):
        return None
    measured = [p for p in analysis.seed_pools if p.task == task and p.variance is not None
                and p.epoch in {s.epoch_text for s in scored}]
    # the largest of the runs' epochs' pooled variances: a level mixing epochs is not made to look surer
    seed = max(measured, key=lambda p: p.variance or 0.0) if measured else None
    return mean_interval(scored, (seed.variance or 0.0, seed.df) if seed else None)


def mean_interval(scored: list[ScoredEvaluation], seed: tuple[float, int] | None) -> tuple[float, float] | None:
    """(mean, 95 % half-width) of these evaluations' mean accuracy, or None (unusable, different items).

    The runs' per-item scores are averaged per item first; the item part of the variance is that
    mean's variance over items. `seed` (pooled seed variance, its df) adds each fine-tuned run's
    seed noise to the mean of n runs: variance x fine-tuned runs / n^2 (base runs are not trained).
    The half-width is Student's t on the Welch-Satterthwaite df of the two parts.
    """
    from scipy import stats

    if not scored or any(s.unusable or not s.scores for s in scored):
        return None
    items = set(scored[0].scores)
    if any(set(s.scores) != items for s in scored):
        return None
    per_item = [statistics.fmean(s.scores[i] for s in scored) for i in sorted(items)]
    mean = statistics.fmean(per_item)
    if len(per_item) < 2:
        return mean, 0.0
    item_part, item_df = statistics.variance(per_item) / len(per_item), len(per_item) - 1
    trained = sum(1 for s in scored if s.kind == "finetune")
    seed_part, seed_df = (seed[0] * trained / len(scored) ** 2, seed[1]) if seed and seed[1] > 0 else (0.0, 1)
    total = item_part + seed_part
    if total == 0:
        return mean, 0.0
    df = total**2 / (item_part**2 / item_df + seed_part**2 / seed_df)
    return mean, float(stats.t.ppf(0.975, df)) * total**0.5


def _bars(summary: Summary) -> str:
    """What the bars' intervals cover, for the plot's title."""
    measured = summary.analysis is not None and any(p.variance is not None for p in summary.analysis.seed_pools)
    return "over test items and seeds" if measured else "over test items only: seed variance unmeasured"


def _runs_at(summary: Summary, task: str, levels: dict[str, str]) -> list[str]:
    final = final_results(summary.results)
    return [run for (run, t) in final if t == task
            and all(summary.run_levels.get(run, {}).get(f) == lv for f, lv in levels.items())]


def level_accuracies(summary: Summary, task: str, runs: list[str]) -> tuple[list[float], bool]:
    """The accuracies of `runs` on `task` at their last evaluated epoch, and whether every run has one."""
    final = final_results(summary.results)
    values = [a for r in runs if (r, task) in final and (a := final[(r, task)].accuracy) is not None]
    return values, len(values) == len(runs)


def plot_accuracy(summary: Summary, factor: str, path: Path) -> Path:
    """Accuracy per level of `factor`: one point per run, the mean with its 95 % interval over items.

    A level whose runs are not all scored shows its mean over the scored ones as a hollow marker
    (and no interval): a partial mean is never drawn like a complete one.
    """
    plt = _pyplot()
    plan_levels = summary.factors[factor]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(plan_levels) + 3), 4.5))
    for i, task in enumerate(dict.fromkeys(r.task for r in summary.results)):
        means, partial = [], []
        for x, label in enumerate(plan_levels):
            runs = _runs_at(summary, task, {factor: label})
            values, complete = level_accuracies(summary, task, runs)
            ax.scatter([x + 0.05 * i] * len(values), values, s=18, alpha=0.5, color=f"C{i}")
            interval = level_interval(summary, task, runs) if values else None
            if interval is not None:
                ax.errorbar([x + 0.05 * i], [interval[0]], yerr=[interval[1]], color=f"C{i}", capsize=4, fmt="none")
            means.append(statistics.fmean(values) if values else float("nan"))
            if values and not complete:
                partial.append((x, means[-1]))
        ax.plot(range(len(plan_levels)), means, marker="o", color=f"C{i}", label=task)
        if partial:
            ax.scatter(*zip(*partial, strict=True), s=70, facecolors="white", edgecolors=f"C{i}", zorder=3,
                       label=f"{task}: mean of the scored runs only (not every run of the level is scored)")
    ax.set_xticks(range(len(plan_levels)), plan_levels, rotation=20 if len(plan_levels) > 4 else 0)
    ax.set(xlabel=factor, ylabel="accuracy (last evaluated epoch)", ylim=(-0.02, 1.02),
           title=f"Accuracy by {factor} - {summary.run_group}\n(bars: 95 % interval, {_bars(summary)})")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def interaction_factors(summary: Summary) -> tuple[str, str] | None:
    """The first two factors with more than one fine-tuned level (`model` counts), or None."""
    varying = [f for f, levels in summary.factors.items() if len([lv for lv in levels if lv != BASE_LEVEL]) > 1]
    return (varying[0], varying[1]) if len(varying) >= 2 else None


def plot_interaction(summary: Summary, a: str, b: str, path: Path) -> Path:
    """Mean accuracy per level of `a`, one line per level of `b`, with 95 % intervals; one panel per task."""
    plt = _pyplot()
    tasks = list(dict.fromkeys(r.task for r in summary.results))
    levels_a = [lv for lv in summary.factors[a] if lv != BASE_LEVEL]
    levels_b = [lv for lv in summary.factors[b] if lv != BASE_LEVEL]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for j, level_b in enumerate(levels_b):
            points = [level_interval(summary, task, _runs_at(summary, task, {a: la, b: level_b})) for la in levels_a]
            xs = [x for x, p in enumerate(points) if p is not None]
            ax.errorbar(xs, [p[0] for p in points if p is not None], yerr=[p[1] for p in points if p is not None],
                        marker="o", capsize=4, color=f"C{j}", label=f"{b} = {level_b}")
        ax.set_xticks(range(len(levels_a)), levels_a)
        ax.set(xlabel=a, ylabel="accuracy (last evaluated epoch)", ylim=(-0.02, 1.02), title=task)
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{a} x {b} - {summary.run_group} (bars: 95 % interval, {_bars(summary)})")
    return _save(fig, path)


def plot_files(summary: Summary) -> dict[str, Path]:
    """Plot name (as summary.md links it) -> path relative to the run group."""
    names = {"loss": Path(PLOTS_DIR) / LOSS_PLOT}
    for factor in summary.factors:
        names[f"accuracy_by_{factor}"] = Path(PLOTS_DIR) / f"accuracy_by_{factor}.png"
    pair = interaction_factors(summary)
    if pair:
        names["interaction"] = Path(PLOTS_DIR) / f"interaction_{pair[0]}_x_{pair[1]}.png"
    return names


def write_plots(summary: Summary, root: Path) -> list[Path]:
    """Every plot of `plot_files`, under the run group folder `root`."""
    written = []
    pair = interaction_factors(summary)
    for name, rel in plot_files(summary).items():
        if name == "loss":
            written.append(plot_losses(summary, root / rel))
        elif name == "interaction" and pair:
            written.append(plot_interaction(summary, pair[0], pair[1], root / rel))
        else:
            written.append(plot_accuracy(summary, name.removeprefix("accuracy_by_"), root / rel))
    return written


__all__ = ["BASE_LEVEL", "plot_files", "write_plots"]
