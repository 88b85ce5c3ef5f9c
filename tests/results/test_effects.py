"""The comparisons' statistics against worked examples computed independently of tasks.results._effects.

- exact McNemar: the two-sided binomial tail of the discordant pairs, by hand (math.comb);
- the paired bootstrap (fixed seed): reproducible, and within the normal-theory interval's width;
- a two-factor design with known cell means: main effects and the interaction as differences of means;
- pairing: on items whose difficulty both runs share, the paired interval is narrower than the
  unpaired one (statsmodels' interval for two independent proportions);
- Holm: the step-down adjustment by hand;
- replicates: the pooled seed variance by hand, and intervals that widen with it;
- incomplete data: no number, and the reason.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.evaluation._power import detectable_difference, items_needed
from tasks.results._effects import Effect, adjust_holm, factor_effects, pooled_seed_variance
from tasks.results._paired import paired_test, vs_base
from tasks.results._samples import ScoredEvaluation, score_value

ALPHA = 0.05


def scored(run: str, values: list[float], cell: str | None = None, model: str = "M", kind: str = "finetune",
           epoch: int | None = 1, replicate: int = 1) -> ScoredEvaluation:
    return ScoredEvaluation(run=run, cell=cell or run, model=model, kind=kind, replicate=replicate, task="t",
                            epoch=epoch if kind == "finetune" else None,
                            scores={f"{i:04d}": float(v) for i, v in enumerate(values)})


def base(values: list[float], model: str = "M") -> ScoredEvaluation:
    return scored(f"{model}_base", values, model=model, kind="control")


def test_exact_mcnemar_matches_the_binomial_tail_by_hand() -> None:
    # 30 items both right, 10 only the fine-tune right, 2 only the base right, 8 both wrong
    tuned = np.array([1] * 30 + [1] * 10 + [0] * 2 + [0] * 8, dtype=float)
    reference = np.array([1] * 30 + [0] * 10 + [1] * 2 + [0] * 8, dtype=float)
    p, method = paired_test(tuned, reference)
    by_hand = min(1.0, 2 * sum(math.comb(12, k) for k in range(3)) / 2**12)  # P(X <= 2), X ~ Bin(12, 1/2), x2
    assert method == "exact McNemar"
    assert p == pytest.approx(by_hand) and by_hand == pytest.approx(158 / 4096)


def test_non_binary_scores_take_the_paired_permutation_test() -> None:
    rng = np.random.default_rng(3)
    reference = rng.random(60)
    tuned = reference + 0.3
    p, method = paired_test(tuned, reference)
    assert method.startswith("paired permutation test") and p < 0.001
    p_same, _ = paired_test(reference, reference)
    assert p_same == 1.0


def test_vs_base_bootstrap_is_reproducible_and_matches_normal_theory() -> None:
    rng = np.random.default_rng(7)  # partial-credit scores (0, 0.5, 1): not 0/1, so the bootstrap interval
    n = 400
    base_scores = rng.integers(0, 3, n) / 2
    tuned_scores = np.minimum(1.0, base_scores + (rng.random(n) < 0.35) / 2)  # lifts some answers half a point
    first = vs_base([scored("cell", list(tuned_scores))], base(list(base_scores)), ALPHA)
    again = vs_base([scored("cell", list(tuned_scores))], base(list(base_scores)), ALPHA)
    d = tuned_scores - base_scores
    assert first.estimate == pytest.approx(d.mean())
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)  # fixed seed
    half = 1.96 * d.std(ddof=1) / math.sqrt(n)
    assert first.ci_low == pytest.approx(d.mean() - half, abs=0.01)
    assert first.ci_high == pytest.approx(d.mean() + half, abs=0.01)
    assert first.n_items == n and first.n_replicates == 1 and "(base)" in first.contrast and "base" in first.contrast
    assert "bootstrap" in first.method and "permutation" in first.method and "seed variance unmeasured" in first.method
    assert not first.seed_part and first.item_sd == pytest.approx(d.std(ddof=1))


def test_paired_interval_is_narrower_than_the_unpaired_one_on_correlated_items() -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep

    rng = np.random.default_rng(11)
    n = 300
    easy = rng.random(n) < 0.5  # items both runs find easy: their scores move together
    base_scores = (easy & (rng.random(n) < 0.9)).astype(float)
    tuned_scores = ((easy & (rng.random(n) < 0.95)) | (~easy & (rng.random(n) < 0.1))).astype(float)
    paired = vs_base([scored("cell", list(tuned_scores))], base(list(base_scores)), ALPHA)
    low, high = confint_proportions_2indep(int(tuned_scores.sum()), n, int(base_scores.sum()), n,
                                           method="wald", compare="diff")
    assert paired.ci_high - paired.ci_low < 0.75 * (high - low)
    assert paired.ci_low <= paired.estimate <= paired.ci_high


def _two_factor(noise_sd: float = 0.0, replicates: int = 1, seed_shift: float = 0.0):
    """Cells A1B1 .2, A2B1 .4, A1B2 .3, A2B2 .9 over 100 items: main effects .4 (A) and .3 (B), interaction .4."""
    means = {("a1", "b1"): 0.2, ("a2", "b1"): 0.4, ("a1", "b2"): 0.3, ("a2", "b2"): 0.9}
    n = 100
    evals, levels = [], {}
    for (a, b), mean in means.items():
        for r in range(1, replicates + 1):
            shift = seed_shift * (1 if r % 2 else -1)
            right = round((mean + shift) * n)
            values = [1.0] * right + [0.0] * (n - right)
            run = f"{a}_{b}" + (f"_rep{r}" if replicates > 1 else "")
            evals.append(scored(run, values, cell=f"{a}_{b}", replicate=r))
            levels[run] = {"model": "M", "fa": a, "fb": b}
    return evals, levels


def test_two_factor_design_recovers_known_main_effects_and_interaction() -> None:
    evals, levels = _two_factor()
    effects = factor_effects(evals, levels, {"model": ["M"], "fa": ["a1", "a2"], "fb": ["b1", "b2"]}, ALPHA)
    by_contrast = {e.contrast.split(" (")[0] if e.kind == "main effect" else e.kind: e for e in effects}
    assert by_contrast["fa: a2 - a1"].estimate == pytest.approx(0.4)
    assert by_contrast["fb: b2 - b1"].estimate == pytest.approx(0.3)
    interaction = by_contrast["interaction"]
    assert interaction.estimate == pytest.approx((0.9 - 0.3) - (0.4 - 0.2))
    assert interaction.contrast == "fa x fb: (a2 - a1) at b2 minus (a2 - a1) at b1"
    assert all(e.ci_low < e.estimate < e.ci_high and e.p_value is not None for e in effects)
    assert all("item-clustered" in e.method for e in effects)


def test_replicates_pool_seed_variance_into_the_intervals() -> None:
    evals, levels = _two_factor(replicates=2, seed_shift=0.05)  # each replicate 5 points above / below its cell
    cells: dict[str, list[ScoredEvaluation]] = {}
    for e in evals:
        cells.setdefault(e.cell, []).append(e)
    seed = pooled_seed_variance(list(cells.values()))
    assert seed is not None and seed.df == 4
    assert seed.variance == pytest.approx(np.var([0.25, 0.15], ddof=1))  # (0.1^2 / 2) in every cell
    factors = {"model": ["M"], "fa": ["a1", "a2"], "fb": ["b1", "b2"]}
    with_seed = factor_effects(evals, levels, factors, ALPHA, seed)
    without = factor_effects(evals, levels, factors, ALPHA, None)
    for a, b in zip(with_seed, without, strict=True):
        assert a.estimate == pytest.approx(b.estimate)
        assert (a.ci_high - a.ci_low) > (b.ci_high - b.ci_low)
        assert "seed variance" in a.method and "4 df" in a.method and a.n_replicates == 2
    cell = cells["a2_b2"]
    row = vs_base(cell, base([0.0] * 100), ALPHA, seed)
    assert row.estimate == pytest.approx(0.9) and row.n_replicates == 2 and "4 df" in row.method


def test_no_discordant_item_gives_exact_bounds_not_a_point() -> None:
    from statsmodels.stats.proportion import proportion_confint

    row = vs_base([scored("cell", [0.0] * 500)], base([0.0] * 500), ALPHA)
    upper = proportion_confint(0, 500, alpha=ALPHA / 2, method="beta")[1]  # 0 of 500 items discordant
    assert row.estimate == 0 and row.p_value == 1.0
    assert (row.ci_low, row.ci_high) == pytest.approx((-upper, upper)) and 0.006 < upper < 0.01
    all_gained = vs_base([scored("cell", [1.0] * 50)], base([0.0] * 50), ALPHA)
    # 50 of 50 discordant, all gained: Clopper-Pearson lower bounds (alpha/2)^(1/n) of both shares, by hand
    edge = (ALPHA / 2) ** (1 / 50)
    assert all_gained.estimate == 1.0 and all_gained.ci_high == pytest.approx(1.0)
    assert all_gained.ci_low == pytest.approx((2 * edge - 1) * edge)


def test_holm_adjustment_by_hand() -> None:
    effects = [Effect(task="t", epoch="1", kind="vs base", contrast=c, estimate=0.1, ci_low=0.0, ci_high=0.2,
                      p_value=p, n_items=100, n_replicates=1)
               for c, p in (("x", 0.01), ("y", 0.04), ("z", 0.03))]
    effects.append(Effect(task="other", epoch="1", kind="vs base", contrast="w", p_value=0.04))
    adjust_holm(effects, ALPHA, 0.8)
    # sorted 0.01, 0.03, 0.04 -> x 3 x 0.01 = 0.03; z 2 x 0.03 = 0.06; y max(0.06, 1 x 0.04) = 0.06
    assert [e.p_adjusted for e in effects[:3]] == pytest.approx([0.03, 0.06, 0.06])
    assert effects[3].p_adjusted == pytest.approx(0.04)  # its own family
    assert effects[0].items_needed is None and effects[1].items_needed is not None  # only within-noise rows


def test_incomplete_or_unpaired_data_give_no_number_and_say_why() -> None:
    broken = scored("cell", [1.0, 0.0])
    broken.unusable = "sample 2: no score"
    row = vs_base([broken], base([1.0, 0.0]), ALPHA)
    assert row.estimate is None and row.p_value is None and "sample 2: no score" in row.note
    other_items = base([1.0, 0.0, 1.0])
    row = vs_base([scored("cell", [1.0, 0.0])], other_items, ALPHA)
    assert row.estimate is None and "different test items" in row.note
    assert vs_base([scored("cell", [1.0])], None, ALPHA).note.startswith("no base-model evaluation")


def test_score_values_are_numbers_or_inspect_letters_never_a_guess() -> None:
    assert [score_value(v) for v in ("C", "I", "P", "N", True, 0, 0.25, "0.5")] == [1, 0, 0.5, 0, 1, 0, 0.25, 0.5]
    assert score_value("maybe") is None and score_value({"a": 1}) is None


def test_power_figures_match_the_normal_approximation() -> None:
    z = 1.959964 + 0.841621  # alpha 0.05 two-sided, power 0.8
    n, sd = 500, math.sqrt(0.5)
    assert detectable_difference(n, 0.05, 0.8) == pytest.approx(z * sd / math.sqrt(n), rel=0.01)
    assert items_needed(0.05, sd, 0.05, 0.8) == pytest.approx((z * sd / 0.05) ** 2, rel=0.01)
    assert items_needed(0.0, sd, 0.05, 0.8) is None


def test_intervals_are_clipped_to_what_scores_allow() -> None:
    from tasks.results._effects import clip_to_scale

    rows = [Effect(task="t", epoch="1", kind="vs base", contrast="a", estimate=0.99, ci_low=0.95, ci_high=1.03),
            Effect(task="t", epoch="1", kind="interaction", contrast="b", estimate=-1.9, ci_low=-2.2, ci_high=-1.6)]
    clip_to_scale(rows, 1.0)
    assert (rows[0].ci_low, rows[0].ci_high) == (0.95, 1.0)
    assert (rows[1].ci_low, rows[1].ci_high) == (-2.0, -1.6)


def test_replicate_spread_interval_stays_within_accuracy() -> None:
    from tasks.results._analysis import _spread

    cell = [scored("c_rep1", [0.0] * 99 + [1.0], cell="c", replicate=1),
            scored("c_rep2", [1.0] * 100, cell="c", replicate=2)]  # one seed learned, one did not
    spread = _spread(cell, ALPHA)
    assert spread is not None and spread.mean == pytest.approx(0.505)
    assert (spread.ci_low, spread.ci_high) == (0.0, 1.0)  # the t interval (df 1) reaches far past both
    assert spread.seed_sd == pytest.approx(np.std([0.01, 1.0], ddof=1)) and spread.seed_to_item > 10


FACTORS = {"model": ["M"], "fa": ["a1", "a2"], "fb": ["b1", "b2"]}


def test_a_missing_cell_gives_main_effects_that_say_they_are_over_an_unbalanced_set() -> None:
    evals, levels = _two_factor()
    balanced = factor_effects(evals, levels, FACTORS, ALPHA, cells=[e.cell for e in evals])
    assert all(e.note == "" and "unbalanced" not in e.method for e in balanced)
    # a2_b2 was not evaluated on this task: A1B1 .2, A2B1 .4, A1B2 .3 fit the additive model exactly
    three = [e for e in evals if e.cell != "a2_b2"]
    effects = factor_effects(three, levels, FACTORS, ALPHA, cells=[e.cell for e in evals])
    mains = {e.contrast.split(" (")[0]: e for e in effects if e.kind == "main effect"}
    assert mains["fa: a2 - a1"].estimate == pytest.approx(0.4 - 0.2)  # on main: the same numbers, no word
    assert mains["fb: b2 - b1"].estimate == pytest.approx(0.3 - 0.2)
    for row in mains.values():
        assert row.note.startswith("unbalanced: no usable run of 1 of 4 cells: a2_b2 (not evaluated on this task")
        assert "only if the factors do not interact" in row.note and "over an unbalanced set" in row.method
    [interaction] = [e for e in effects if e.kind == "interaction"]
    assert interaction.estimate is None and "unbalanced" in interaction.note


def test_an_unusable_run_is_left_out_of_the_factor_effects_and_named() -> None:
    evals, levels = _two_factor(replicates=2)
    evals[-1].unusable = "sample 0003: no score"  # a2_b2_rep2
    effects = factor_effects(evals, levels, FACTORS, ALPHA, cells=list(dict.fromkeys(e.cell for e in evals)))
    assert effects and all(e.estimate is not None for e in effects)
    for row in effects:
        assert "replicates left out: a2_b2_rep2 (sample 0003: no score)" in row.note
        assert "replicates per cell differ (1 to 2; fewer in a2_b2)" in row.note and row.n_replicates == 1
    evals[-2].unusable = "the log holds 90 of 100 samples"  # a2_b2 has no usable run at all now
    effects = factor_effects(evals, levels, FACTORS, ALPHA, cells=list(dict.fromkeys(e.cell for e in evals)))
    assert all("no usable run of 1 of 4 cells: a2_b2 (the log holds 90 of 100 samples)" in e.note for e in effects)


def test_runs_that_score_every_item_alike_give_no_interval_from_rounding_residue() -> None:
    # two ranks that answered the same 2 of 4 items: the rank effect is exactly 0, its SE exactly 0;
    # on main the OLS residue (SE ~1e-17) gave "+0.000 (95 % CI -0.000 to +0.000)", p 0.85 and 2,063 items needed
    same = [1.0, 0.0, 1.0, 0.0]
    evals = [scored("r4", same), scored("r64", same)]
    levels = {"r4": {"model": "M", "rank": "4"}, "r64": {"model": "M", "rank": "64"}}
    [row] = factor_effects(evals, levels, {"model": ["M"], "rank": ["4", "64"]}, ALPHA)
    assert row.estimate == 0.0 and row.ci_low is None and row.p_value is None
    assert "do not vary at all" in row.note
