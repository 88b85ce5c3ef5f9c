"""Fine-tuned vs base, and what the conclusions say of it, against worked examples computed independently.

- a cell with one replicate, where other cells have several: its interval holds the seed variance
  measured on them (a t interval by hand from the paired SE and the pooled variance, numpy/scipy);
  no cell replicated: the summary says the seed variance is unmeasured although the design asked for replicates;
- 0/1 scores, one replicate: the interval excludes 0 exactly when the exact McNemar test
  (statsmodels, independently) rejects; its bounds by hand from Clopper-Pearson's beta quantiles;
  it covers a one-sided difference (a simulation);
- Holm: an unadjusted interval that excludes 0 next to a "within noise" verdict is explained;
- a replicate with unusable scores is left out of the cell and named; different item ids give no
  number and say which ids.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tasks.results._analysis import Analysis, SeedPool
from tasks.results._conclusions import conclusions
from tasks.results._effects import Effect, adjust_holm, pooled_seed_variance
from tasks.results._paired import discordant_interval, vs_base
from tasks.results._samples import ScoredEvaluation

ALPHA = 0.05


def scored(run: str, values, cell: str | None = None, kind: str = "finetune", replicate: int = 1,
           ids: list[str] | None = None) -> ScoredEvaluation:
    names = ids or [f"{i:04d}" for i in range(len(values))]
    return ScoredEvaluation(run=run, cell=cell or run, model="M", kind=kind, replicate=replicate, task="t",
                            epoch=1 if kind == "finetune" else None,
                            scores={name: float(v) for name, v in zip(names, values, strict=True)})


def _flip(rng, values, share: float):
    return np.where(rng.random(len(values)) < share, 1.0, values)


def test_a_single_replicate_cell_takes_the_seed_variance_measured_on_the_replicated_cells() -> None:
    rng = np.random.default_rng(1)
    n = 200
    base_scores = (rng.random(n) < 0.5).astype(float)
    replicated = [scored("A_rep1", _flip(rng, base_scores, 0.3), cell="A", replicate=1),
                  scored("A_rep2", base_scores, cell="A", replicate=2)]  # one seed learned, one did not
    single = [scored("B_rep1", _flip(rng, base_scores, 0.3), cell="B")]  # B's other replicate failed
    seed = pooled_seed_variance([replicated, single])
    accuracies = [np.mean(list(s.scores.values())) for s in replicated]
    assert seed is not None and seed.df == 1 and seed.variance == pytest.approx(np.var(accuracies, ddof=1))

    row = vs_base(single, scored("M_base", base_scores, kind="control"), ALPHA, seed)
    d = np.array(list(single[0].scores.values())) - base_scores
    # by hand: the paired SE of the mean difference, plus the seed variance of one run; t on the pooled df
    half = stats.t.ppf(1 - ALPHA / 2, 1) * math.sqrt(d.var(ddof=1) / n + seed.variance)
    assert row.estimate == pytest.approx(d.mean())
    assert row.ci_high - row.ci_low == pytest.approx(2 * half, rel=0.01)
    assert row.seed_part and "1 usable replicate" in row.method and "seed variance unmeasured" not in row.method
    # on main the cell took the item-only interval (+0.115 to +0.215 here) and said the seed variance was unmeasured
    item_only = vs_base(single, scored("M_base", base_scores, kind="control"), ALPHA, None)
    assert not item_only.seed_part and row.ci_high - row.ci_low > 5 * (item_only.ci_high - item_only.ci_low)


def _analysis(effects: list[Effect], pools: list[SeedPool], replicates: int) -> Analysis:
    return Analysis(alpha=ALPHA, power=0.8, replicates=replicates, effects=effects, seed_pools=pools)


def _row(contrast: str, estimate: float, low: float, high: float, p: float, **more) -> Effect:
    return Effect(task="t", epoch="1", kind="vs base", contrast=contrast, estimate=estimate, ci_low=low,
                  ci_high=high, p_value=p, n_items=100, n_replicates=1, **more)


def test_the_summary_says_seed_variance_is_unmeasured_when_no_cell_kept_two_replicates() -> None:
    effects = [_row("a - M_base (base)", 0.1, 0.01, 0.2, 0.03)]
    adjust_holm(effects, ALPHA, 0.8)
    unmeasured = _analysis(effects, [SeedPool(task="t", epoch="1", variance=None, single=["a"])], replicates=2)
    [text] = conclusions(unmeasured)
    assert any("Seed variance is unmeasured at epoch 1" in line and "asks for 2 replicates" in line
               for line in text.seeds)
    borrowed = [_row("b - M_base (base)", 0.1, -0.2, 0.4, 0.3, seed_part=True)]
    adjust_holm(borrowed, ALPHA, 0.8)
    measured = _analysis(borrowed, [SeedPool(task="t", epoch="1", variance=0.0004, df=3, replicated=["a", "c"],
                                             single=["b"])], replicates=2)
    [text] = conclusions(measured)
    assert not any("unmeasured" in line for line in text.seeds)
    assert any("`b` has one usable replicate" in line and "seed SD 0.020, 3 df" in line for line in text.seeds)
    assert "includes the seed variance" in text.within_noise[0]
    assert [row["seed variance in CI"] for row in measured.table()] == ["yes"]
    assert [row["seed variance in CI"] for row in unmeasured.table()] == ["no"]


def _clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    low = 0.0 if k == 0 else stats.beta.ppf(alpha / 2, k, n - k + 1)
    high = 1.0 if k == n else stats.beta.ppf(1 - alpha / 2, k + 1, n - k)
    return float(low), float(high)


@pytest.mark.parametrize(("gained", "lost", "n"), [(9, 2, 50), (10, 2, 50), (3, 0, 500), (40, 22, 300), (0, 7, 40)])
def test_the_discordant_interval_is_the_clopper_pearson_product_by_hand(gained: int, lost: int, n: int) -> None:
    pi_low, pi_high = _clopper_pearson(gained, gained + lost, ALPHA)
    share_low, share_high = _clopper_pearson(gained + lost, n, ALPHA)
    corners = [s * (2 * p - 1) for s in (share_low, share_high) for p in (pi_low, pi_high)]
    assert discordant_interval(gained, lost, n, ALPHA) == pytest.approx((min(corners), max(corners)))


def test_the_interval_excludes_zero_exactly_when_exact_mcnemar_rejects() -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    for gained in range(26):
        for lost in range(26):
            if gained + lost == 0:
                continue
            p = mcnemar([[10, gained], [lost, 10]], exact=True).pvalue
            low, high = discordant_interval(gained, lost, 60, ALPHA)
            assert (low > 0 or high < 0) == (p < ALPHA), (gained, lost, p, low, high)


def test_main_s_worked_example_no_longer_contradicts_its_test() -> None:
    # 9 items only the fine-tune got right, 2 only the base: exact McNemar p = 2 x P(X <= 2 | Bin(11, 1/2))
    tuned = np.array([1] * 9 + [0] * 2 + [1] * 20 + [0] * 19, dtype=float)
    reference = np.array([0] * 9 + [1] * 2 + [1] * 20 + [0] * 19, dtype=float)
    row = vs_base([scored("D", tuned)], scored("M_base", reference, kind="control"), ALPHA)
    assert row.p_value == pytest.approx(2 * (1 + 11 + 55) / 2**11)  # 0.065: not below 0.05
    assert row.ci_low < 0 < row.ci_high  # main's bootstrap gave +0.02 to +0.28, excluding 0
    assert "discordant" in row.method and "exact McNemar" in row.method


def test_the_discordant_interval_covers_a_one_sided_difference() -> None:
    # every discordant item gained (p10 = 0.25, p01 = 0): holding the discordant share fixed would cover
    # the true 0.25 only when the sample's share is above it, about half the time
    rng = np.random.default_rng(5)
    n, draws = 200, 400
    hits = 0
    for _ in range(draws):
        gained = int(rng.binomial(n, 0.25))
        low, high = discordant_interval(gained, 0, n, ALPHA)
        hits += low <= 0.25 <= high
    assert hits / draws >= 0.95


def test_an_unadjusted_interval_excluding_zero_is_explained_when_holm_says_within_noise() -> None:
    effects = [_row(c, 0.08, 0.01, 0.15, p) for c, p in (("x - M_base (base)", 0.03), ("y - M_base (base)", 0.04),
                                                           ("z - M_base (base)", 0.02))]
    adjust_holm(effects, ALPHA, 0.8)
    assert all(e.p_adjusted >= ALPHA for e in effects)  # 0.06 for all three
    [text] = conclusions(_analysis(effects, [SeedPool(task="t", epoch="1", variance=None)], replicates=1))
    assert not text.distinguishable and len(text.within_noise) == 3
    for line in text.within_noise:
        assert "+0.010 to +0.150" in line
        assert "unadjusted and excludes 0" in line and "after Holm adjustment over the 3 comparisons" in line
    mismatch = [_row("w - M_base (base)", 0.08, 0.01, 0.15, 0.07)]  # a bootstrap interval vs a permutation test
    adjust_holm(mismatch, ALPHA, 0.8)
    [text] = conclusions(_analysis(mismatch, [], replicates=1))
    assert "the paired test does not reject (p = 0.07" in text.within_noise[0]


def test_an_unusable_replicate_is_left_out_of_its_cell_and_named() -> None:
    good = scored("c_rep1", [1, 1, 0, 1], cell="c", replicate=1)
    broken = scored("c_rep2", [1, 0, 0, 1], cell="c", replicate=2)
    broken.unusable = "sample 0002: score nan is not a finite number (NaN or infinite)"
    row = vs_base([good, broken], scored("M_base", [0, 1, 0, 0], kind="control"), ALPHA)
    assert row.n_replicates == 1 and row.estimate == pytest.approx(0.5)  # c_rep1 alone: (3 - 1) / 4
    assert "replicates left out: c_rep2 (sample 0002: score nan is not a finite number" in row.note


def test_items_with_different_ids_are_never_paired_by_position() -> None:
    run = scored("c", [1, 0, 1], ids=["a", "b", "c"])
    other = scored("M_base", [1, 0, 1], kind="control", ids=["a", "b", "d"])  # same size, one id differs
    row = vs_base([run], other, ALPHA)
    assert row.estimate is None and row.p_value is None
    assert "c lacks 1 (e.g. d)" in row.note and "M_base lacks 1 (e.g. c)" in row.note and "4 in all" in row.note


def test_a_non_finite_score_that_reaches_a_comparison_gives_no_number() -> None:
    # samples.py refuses NaN/inf from a log; scores built otherwise are checked again (main: estimate NaN, p 0.0)
    run = scored("c", [1, 0, 1, 1])
    run.scores["0001"] = float("nan")
    row = vs_base([run], scored("M_base", [0, 0, 1, 1], kind="control"), ALPHA)
    assert row.estimate is None and row.p_value is None and "sample 0001: score nan is not a finite number" in row.note
