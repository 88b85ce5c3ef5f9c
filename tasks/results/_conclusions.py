"""What the data support, in plain words: per task, which differences stand out from noise.

Reads and writes nothing: turns an `Analysis` (tasks.results._analysis) into the sentences of
summary.md's "What the data support" section. A difference is called distinguishable from noise
only when its Holm-adjusted p-value is below the design's alpha; every other one is said to be
within noise, with its interval and what would resolve it. The intervals are per comparison
(unadjusted): where one excludes 0 while the verdict is "within noise" (Holm, or a test that
disagrees with a bootstrap at the edge), or includes 0 while the verdict is "distinguishable", the
sentence says why, so no interval contradicts its verdict unexplained. A comparison made over an
unbalanced set, or with replicates left out, carries that note. The seed sentences say whether the
seed variance was measured, from which cells, and which cells' intervals borrow it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from tasks.results._analysis import Analysis, SeedPool
from tasks.results._effects import Effect

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
    if effect.seed_part:
        return ("its interval includes the seed variance, which more test items do not shrink: more replicates "
                "(and items) would narrow it")
    if effect.items_needed is None:
        return "no difference was observed at all, so no test size would show one; the interval bounds it"
    return (f"a true difference of this size would need about {effect.items_needed:,} test items "
            f"(this test has {effect.n_items:,}) to be detected at {power:.0%} power and alpha {alpha:g}")


def _agreement(effect: Effect, verdict: bool, alpha: float, family: int) -> str:
    """Why the interval seems to say otherwise than the verdict, or "" when it does not."""
    if effect.ci_low is None or effect.ci_high is None or effect.p_value is None:
        return ""
    excludes_zero = effect.ci_low > 0 or effect.ci_high < 0
    if verdict and not excludes_zero:
        return (f"the interval includes 0 although the paired test rejects (p = {effect.p_value:.2g}): the two "
                "methods disagree at the edge, so this difference is marginal")
    if verdict or not excludes_zero:
        return ""
    if effect.p_value < alpha:
        return (f"the 95 % interval is unadjusted and excludes 0 (p = {effect.p_value:.2g} before adjustment), but "
                f"after Holm adjustment over the {family} comparisons of this task the difference is not "
                "distinguishable from noise")
    return (f"the interval excludes 0 but the paired test does not reject (p = {effect.p_value:.2g} before "
            "adjustment): the two methods disagree at the edge, and the test decides")


def _seed_lines(analysis: Analysis, task: str) -> list[str]:
    """Whether the seed variance was measured on this task, and from which cells."""
    pools: list[SeedPool] = [p for p in analysis.seed_pools if p.task == task]
    lines = []
    unmeasured = [p.epoch for p in pools if p.variance is None]
    if unmeasured and analysis.replicates == 1:
        lines.append("Seed variance is unmeasured (`replicates: 1`): every interval covers the sampling of "
                     "test items only, and a difference between two runs may be the seed's. "
                     "`replicates: 2` or more measures it.")
    elif unmeasured:
        lines.append(f"Seed variance is unmeasured at epoch {', '.join(unmeasured)}: the design asks for "
                     f"{analysis.replicates} replicates, but no cell has two usable ones there, so those "
                     "intervals cover the sampling of test items only and a difference may be the seed's.")
    for pool in pools:
        if pool.variance is not None and pool.single:
            lines.append(
                f"At epoch {pool.epoch}, {', '.join(f'`{c}`' for c in pool.single)} "
                f"{'has' if len(pool.single) == 1 else 'have'} one usable replicate: "
                f"{'its' if len(pool.single) == 1 else 'their'} intervals add the seed variance measured on the "
                f"{len(pool.replicated)} replicated cell(s) (seed SD {pool.variance ** 0.5:.3f}, {pool.df} df).")
    return lines


def _spread_lines(analysis: Analysis, task: str) -> list[str]:
    lines = []
    for spread in (s for s in analysis.spreads if s.task == task):
        where = (f"`{spread.cell}` at epoch {spread.epoch}: accuracy {spread.mean:.3f} over "
                 f"{len(spread.accuracies)} seeds (95 % CI {spread.ci_low:.3f} to {spread.ci_high:.3f})")
        if spread.seed_sd == 0 and spread.item_se == 0:
            lines.append(f"{where}; every seed scored every item alike")
            continue
        size = "as large as or larger than" if spread.seed_to_item >= SEED_DOMINATES else "smaller than"
        lines.append(
            f"{where}; seed SD {spread.seed_sd:.3f} is {size} the test items' SE {spread.item_se:.3f}"
            + (" (the seed decides this cell's result)" if spread.seed_to_item >= 10 else ""))
    return lines


def conclusions(analysis: Analysis) -> list[TaskConclusions]:
    """One `TaskConclusions` per task that has comparisons."""
    found = []
    for task in analysis.tasks:
        mine = TaskConclusions(task=task)
        family = sum(1 for e in analysis.task_effects(task) if e.p_value is not None)
        for effect in analysis.task_effects(task):
            verdict = effect.distinguishable(analysis.alpha)
            if effect.estimate is None or effect.ci_low is None or effect.p_adjusted is None or verdict is None:
                mine.not_compared.append(f"{_where(effect)}: {effect.note or 'no test was possible'}")
                continue
            extra = [_agreement(effect, verdict, analysis.alpha, family), effect.note]
            if not verdict:
                extra.insert(0, _resolve(effect, analysis.alpha, analysis.power))
            sentence = "; ".join([f"{_where(effect)}: {_interval(effect)}", *filter(None, extra)])
            (mine.distinguishable if verdict else mine.within_noise).append(sentence)
        mine.seeds = _seed_lines(analysis, task) + _spread_lines(analysis, task)
        found.append(mine)
    return found


__all__ = ["TaskConclusions", "conclusions"]
