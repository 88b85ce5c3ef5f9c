"""The plots' level intervals against a worked example: items, and seeds where replicates measured them.

The level mean of n runs: item part = variance over items of the per-item mean / items; seed part =
pooled seed variance x fine-tuned runs / n^2; half-width = t(0.975) on the Welch-Satterthwaite df.
Computed here by hand (numpy, scipy's t quantile) independently of tasks.results._plots.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tasks.results._plots import mean_interval
from tasks.results._samples import ScoredEvaluation


def scored(run: str, values: list[float], kind: str = "finetune") -> ScoredEvaluation:
    return ScoredEvaluation(run=run, cell=run, model="M", kind=kind, replicate=1, task="t",
                            epoch=1 if kind == "finetune" else None,
                            scores={f"{i:03d}": float(v) for i, v in enumerate(values)})


RNG = np.random.default_rng(7)
REP1 = (RNG.random(200) < 0.30).astype(float)  # two seeds of one cell: 30 % and about 70 % right
REP2 = (RNG.random(200) < 0.70).astype(float)


def by_hand(runs: list[np.ndarray], trained: int, seed: tuple[float, int] | None) -> tuple[float, float]:
    per_item = np.mean(runs, axis=0)
    item_part, item_df = per_item.var(ddof=1) / len(per_item), len(per_item) - 1
    seed_part, seed_df = (seed[0] * trained / len(runs) ** 2, seed[1]) if seed else (0.0, 1)
    df = (item_part + seed_part) ** 2 / (item_part**2 / item_df + seed_part**2 / seed_df)
    return float(per_item.mean()), float(stats.t.ppf(0.975, df) * np.sqrt(item_part + seed_part))


def test_without_seed_variance_the_interval_is_over_items() -> None:
    mean, half = mean_interval([scored("a", list(REP1)), scored("b", list(REP2))], None)
    assert (mean, half) == pytest.approx(by_hand([REP1, REP2], 2, None))
    assert half == pytest.approx(stats.t.ppf(0.975, 199) * np.mean([REP1, REP2], axis=0).std(ddof=1) / 200**0.5)


def test_the_seed_variance_widens_the_level_interval() -> None:
    seed_variance = float(np.var([REP1.mean(), REP2.mean()], ddof=1))  # the two seeds' accuracies, 1 df
    runs = [scored("rep1", list(REP1)), scored("rep2", list(REP2))]
    items_only = mean_interval(runs, None)
    with_seeds = mean_interval(runs, (seed_variance, 1))
    assert with_seeds == pytest.approx(by_hand([REP1, REP2], 2, (seed_variance, 1)))
    assert items_only is not None and with_seeds is not None
    # two seeds 0.4 apart: the item-only bar (about +-0.05) hides what the seed does; with 1 df it is wide
    assert with_seeds[1] > 5 * items_only[1]


def test_base_runs_carry_no_seed_part() -> None:
    base = (RNG.random(200) < 0.5).astype(float)
    runs = [scored("base", list(base), kind="control")]
    assert mean_interval(runs, (0.04, 3)) == pytest.approx(mean_interval(runs, None))
    mixed = [scored("base", list(base), kind="control"), scored("rep1", list(REP1))]
    assert mean_interval(mixed, (0.04, 3)) == pytest.approx(by_hand([base, REP1], 1, (0.04, 3)))


def test_unusable_or_different_items_give_no_interval() -> None:
    broken = scored("x", list(REP1)).model_copy(update={"unusable": "score nan is not a finite number"})
    assert mean_interval([broken, scored("y", list(REP2))], None) is None
    fewer = scored("z", list(REP2[:150]))
    assert mean_interval([scored("y", list(REP1)), fewer], None) is None
