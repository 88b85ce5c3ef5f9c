"""What the data support, in plain words: per task, which differences stand out from noise.

Reads and writes nothing: turns an `Analysis` (tasks.results.analysis) into the sentences of
summary.md's "What the data support" section. A difference is called distinguishable from noise
only when its Holm-adjusted p-value is below the design's alpha; every other one is said to be
within noise, with its interval and what would resolve it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from tasks.results.analysis import Analysis
from tasks.results.effects import Effect

SEED_DOMINATES = 1.0  # seed SD / item SE above this: the seed moves accuracy as much as the test set size


class TaskConclusions(BaseModel):
    """The sentences of one task."""

    task: str
    distinguishable: list[str] = Field(default_factory=list)
    within_noise: list[str] = Field(default_factory=list)
    not_compared: list[str] = Field(default_factory=list)
    seeds: list[str] = Field(default_factory=list)


def _where(effect: Effect) -> str:
    return f"`{effect.contrast}`" + ("" if effect.epoch == "base" else f" at epoch {effect.epoch}")


def _interval(effect: Effect) -> str:
    return (f"{effect.estimate:+.3f} (95 % CI {effect.ci_low:+.3f} to {effect.ci_high:+.3f}, "
            f"Holm p = {effect.p_adjusted:.2g})")


def _resolve(effect: Effect, alpha: float, power: float) -> str:
    if effect.n_replicates > 1:
        return ("its interval includes the seed variance, which more test items do not shrink: more replicates "
                "(and items) would narrow it")
    if effect.items_needed is None:
        return "no difference was observed at all, so no test size would show one; the interval bounds it"
    return (f"a true difference of this size would need about {effect.items_needed:,} test items "
            f"(this test has {effect.n_items:,}) to be detected at {power:.0%} power and alpha {alpha:g}")


def conclusions(analysis: Analysis) -> list[TaskConclusions]:
    """One `TaskConclusions` per task that has comparisons."""
    found = []
    for task in analysis.tasks:
        mine = TaskConclusions(task=task)
        for effect in analysis.task_effects(task):
            verdict = effect.distinguishable(analysis.alpha)
            if effect.estimate is None or effect.ci_low is None or effect.p_adjusted is None or verdict is None:
                mine.not_compared.append(f"{_where(effect)}: {effect.note or 'no test was possible'}")
            elif verdict:
                mine.distinguishable.append(f"{_where(effect)}: {_interval(effect)}")
            else:
                mine.within_noise.append(
                    f"{_where(effect)}: {_interval(effect)}; {_resolve(effect, analysis.alpha, analysis.power)}")
        spreads = [s for s in analysis.spreads if s.task == task]
        if analysis.replicates == 1:
            mine.seeds.append("Seed variance is unmeasured (`replicates: 1`): every interval covers the sampling of "
                              "test items only, and a difference between two runs may be the seed's. "
                              "`replicates: 2` or more measures it.")
        for spread in spreads:
            ratio = spread.seed_to_item
            size = ("as large as or larger than" if ratio >= SEED_DOMINATES else "smaller than")
            mine.seeds.append(
                f"`{spread.cell}` at epoch {spread.epoch}: accuracy {spread.mean:.3f} over {len(spread.accuracies)} "
                f"seeds (95 % CI {spread.ci_low:.3f} to {spread.ci_high:.3f}); seed SD {spread.seed_sd:.3f} is "
                f"{size} the test items' SE {spread.item_se:.3f}")
        found.append(mine)
    return found


__all__ = ["TaskConclusions", "conclusions"]
