"""Each fine-tuned cell against its model's base run: the paired difference over test items.

Reads and writes nothing: works on the per-sample scores of `tasks.results._samples` (one
`ScoredEvaluation` per run x task x epoch) and returns `tasks.results._effects.Effect` rows
(`results/effects.csv`, kind `vs base`).

Per task and evaluated epoch, the cell's usable replicates (averaged per item) against the base
run on the same items (matched by sample id, never by position; different ids give no number):
- **seed variance measured** (some cell of the task and epoch has two usable replicates): the item
  part from an OLS of per-item scores with item-clustered errors (replicates as rows), plus the seed
  part of the cell's mean, the pooled replicate variance / the cell's usable replicates (a cell with
  one replicate takes the variance measured on the replicated cells: one seed's luck is in its
  result whether measured or not), variances added; a t interval and test on the pooled variance's
  df. The base model is not trained (greedy decoding): no seed part.
- **seed variance unmeasured**, 0/1 scores: the exact McNemar test (statsmodels) and an interval
  on the discordant items that agrees with it (`discordant_interval`): it excludes 0 exactly when
  McNemar's p < alpha. No discordant item: the Clopper-Pearson bounds of the discordant shares (p = 1).
- **seed variance unmeasured**, other scores: a paired permutation test and a bootstrap interval
  over items (BCa up to 2,000 items, else percentile; fixed seed). The two can disagree at the
  edge; the conclusions say so where they do.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from tasks.results._effects import (
    Effect,
    Estimate,
    SeedVariance,
    categorical,
    common_items,
    fit_terms,
    item_frame,
    with_interval,
)
from tasks.results._samples import ScoredEvaluation

BOOTSTRAP_RESAMPLES = 9_999
PERMUTATIONS = 9_999
RANDOM_SEED = 20_251_018  # every resampling uses this seed: the same logs give the same intervals
BCA_MAX_ITEMS = 2_000  # BCa's jackknife grows with items squared; above this the percentile interval
UNMEASURED = "seed variance unmeasured: no cell has 2 usable replicates"


def _binary(tuned: Any, base: Any) -> bool:
    return bool(np.isin(tuned, (0.0, 1.0)).all() and np.isin(base, (0.0, 1.0)).all())


def paired_test(tuned: Any, base: Any) -> tuple[float, str]:
    """(p-value, method) of a paired test: exact McNemar for 0/1 scores, else a paired permutation test."""
    from scipy import stats

    if _binary(tuned, base):
        from statsmodels.stats.contingency_tables import mcnemar

        table = [[int(((tuned == 1) & (base == 1)).sum()), int(((tuned == 1) & (base == 0)).sum())],
                 [int(((tuned == 0) & (base == 1)).sum()), int(((tuned == 0) & (base == 0)).sum())]]
        return float(mcnemar(table, exact=True).pvalue), "exact McNemar"
    if np.ptp(tuned - base) == 0 and tuned[0] == base[0]:
        return 1.0, "paired permutation test"
    result = stats.permutation_test((tuned, base), lambda x, y: np.mean(x - y), permutation_type="samples",
                                    n_resamples=PERMUTATIONS, random_state=np.random.default_rng(RANDOM_SEED))
    return float(result.pvalue), f"paired permutation test ({PERMUTATIONS} resamples)"


def discordant_interval(gained: int, lost: int, n: int, alpha: float) -> tuple[float, float]:
    """The McNemar-consistent interval of a paired 0/1 difference (gained - lost) / n; needs gained + lost > 0.

    The difference is delta x (2 pi - 1): delta the share of discordant items (one run right, the
    other wrong), pi the share of those the fine-tune got right. The interval is the range of that
    product over the exact (Clopper-Pearson, scipy) 1 - alpha intervals of pi and of delta. Its sign
    is pi's, so it excludes 0 exactly when pi's interval excludes 1/2, i.e. when the exact McNemar
    test (the binomial test of pi = 1/2 on the discordant items) has p < alpha; delta's interval
    widens it for the sampling of the discordant share (holding delta at its estimate would not
    cover a one-sided difference: with no item lost the upper bound would be the estimate itself).
    """
    from scipy.stats import binomtest

    discordant = gained + lost
    pi = binomtest(gained, discordant).proportion_ci(confidence_level=1 - alpha, method="exact")
    share = binomtest(discordant, n).proportion_ci(confidence_level=1 - alpha, method="exact")
    low, high = 2 * float(pi.low) - 1, 2 * float(pi.high) - 1
    return (low * (float(share.high) if low < 0 else float(share.low)),
            high * (float(share.high) if high > 0 else float(share.low)))


def _exact_bounds(differences: Any, alpha: float) -> tuple[float, float]:
    """An interval for a paired 0/1 difference with no discordant item (its conditional interval is a point).

    The difference is p(only tuned right) - p(only base right); each has a Clopper-Pearson interval at
    alpha/2 (statsmodels), and their extremes bound the difference with at least 1 - alpha coverage.
    """
    from statsmodels.stats.proportion import proportion_confint

    n = len(differences)
    gained, lost = int((differences > 0).sum()), int((differences < 0).sum())
    low_g, high_g = proportion_confint(gained, n, alpha=alpha / 2, method="beta")
    low_l, high_l = proportion_confint(lost, n, alpha=alpha / 2, method="beta")
    return float(low_g - high_l), float(high_g - low_l)


def _bootstrap_ci(differences: Any, alpha: float) -> tuple[float, float, str]:
    """(low, high, method) of a bootstrap interval of the mean difference over items (scipy, fixed seed)."""
    from scipy import stats

    method = "BCa" if len(differences) <= BCA_MAX_ITEMS else "percentile"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap((differences,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=1 - alpha,
                                 method=method, random_state=np.random.default_rng(RANDOM_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high), method


def _with_seed_part(effect: Effect, cell: list[ScoredEvaluation], base: ScoredEvaluation, items: list[str],
                    seed: SeedVariance, alpha: float) -> Effect:
    """Item part (item-clustered OLS) plus the seed part of the cell's mean; a t interval and test."""
    frame = item_frame([*cell, base], items, {s.run: {"arm": "tuned"} for s in cell} | {base.run: {"arm": "base"}})
    categorical(frame, "arm", ["base", "tuned"])
    item_part = fit_terms(frame, "score ~ C(arm)", None)["C(arm)[T.tuned]"]
    where = ("this cell has 1 usable replicate, so its seed's share is the variance pooled over the replicated "
             "cells" if len(cell) == 1 else f"the variance pooled over the replicated cells / {len(cell)} replicates")
    return with_interval(effect, Estimate(
        item_part.value, math.hypot(item_part.se, math.sqrt(seed.variance / len(cell))), float(seed.df),
        f"paired over items: OLS with item-clustered SE{', replicates as rows' if len(cell) > 1 else ''}, plus the "
        f"seed variance of the cell's mean ({where}; variances added); t with {seed.df} df", seed_part=True), alpha)


def _without_seed_part(effect: Effect, tuned: Any, reference: Any, alpha: float) -> Effect:
    """Exact McNemar with its matching interval (0/1 scores), else permutation test and bootstrap interval."""
    differences = tuned - reference
    effect.estimate = float(np.mean(differences))
    effect.item_sd = float(np.std(differences, ddof=1)) if len(differences) > 1 else None
    effect.p_value, test = paired_test(tuned, reference)
    gained, lost = int((differences > 0).sum()), int((differences < 0).sum())
    if _binary(tuned, reference) and gained + lost:
        effect.ci_low, effect.ci_high = discordant_interval(gained, lost, len(differences), alpha)
        items = f"{gained + lost} discordant item{'s' if gained + lost > 1 else ''}"
        interval = (f"exact CI on the {items} (Clopper-Pearson of their share and of the fine-tune's wins among "
                    "them; excludes 0 exactly when McNemar rejects)")
    elif _binary(tuned, reference):
        effect.ci_low, effect.ci_high = _exact_bounds(differences, alpha)
        interval = "no discordant item: exact CI from the Clopper-Pearson bounds of the discordant shares"
    elif np.ptp(differences) > 0:
        effect.ci_low, effect.ci_high, kind = _bootstrap_ci(differences, alpha)
        interval = f"bootstrap CI ({kind}, {BOOTSTRAP_RESAMPLES} resamples)"
    else:
        effect.note = "every item's difference is the same and the scores are not 0/1: no interval can be made"
        interval = "no CI"
    effect.method = f"paired over items: {interval}, {test} ({UNMEASURED})"
    return effect


def vs_base(cell: list[ScoredEvaluation], base: ScoredEvaluation | None, alpha: float,
            seed: SeedVariance | None = None) -> Effect:
    """A fine-tuned cell (its replicates) against its model's base run, on one task and epoch.

    `seed`: the replicate variance pooled over the task and epoch's cells (None: unmeasured). A
    replicate with unusable scores is left out, and the note names it; none usable: no number.
    """
    first = cell[0]
    usable = [s for s in cell if not s.unusable]
    effect = Effect(task=first.task, epoch=first.epoch_text, kind="vs base", n_replicates=len(usable),
                    contrast=f"{first.cell} - {first.model}_base (base)")
    if base is None:
        effect.note = f"no base-model evaluation of {first.model} on {first.task}"
        return effect
    effect.contrast = f"{first.cell} - {base.run} (base)"
    items, why = common_items([*(usable or cell), base])
    if items is None:
        effect.note = why
        return effect
    effect.n_items = len(items)
    if seed is not None:
        effect = _with_seed_part(effect, usable, base, items, seed, alpha)
    else:
        tuned = np.array([np.mean([s.scores[i] for s in usable]) for i in items])
        effect = _without_seed_part(effect, tuned, np.array([base.scores[i] for i in items]), alpha)
    left_out = [f"{s.run} ({s.unusable})" for s in cell if s.unusable]
    if left_out:
        effect.note = "; ".join(filter(None, [f"replicates left out: {'; '.join(left_out)}", effect.note]))
    return effect


__all__ = ["discordant_interval", "paired_test", "vs_base"]
