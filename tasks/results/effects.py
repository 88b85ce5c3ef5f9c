"""Comparisons a run group supports: fine-tuned vs base, factor main effects, interactions, Holm.

Reads and writes nothing: works on the per-sample scores of `tasks.results.samples` (one
`ScoredEvaluation` per run x task x epoch). `results/effects.csv` and summary.md show its rows.

Every comparison is paired by test item (the runs answer the same items) and made per task and
evaluated epoch:
- **fine-tuned cell vs its model's base run**: the mean per-item difference, replicates averaged
  per item. One replicate: a 95 % interval from a bootstrap over items (BCa up to 2,000 items, else
  percentile; scipy) and the exact
  McNemar test (0/1 scores) or a paired permutation test (other scores). Several replicates: the
  item part from an OLS of per-item scores with item-clustered errors, plus the seed part of the
  cell's mean (the replicates' variance, pooled over the cells of the task and epoch, / R), the
  variances added (conservative: each also holds some scoring noise), a t interval and test on the
  pooled variance's degrees of freedom.
- **each factor's main effect** (each level against the first, within model, over the other factors
  and the replicates) and **every two-factor interaction** (a difference of differences) from an OLS
  of per-item scores with item-clustered errors (statsmodels); with replicates, each term's seed part
  (the same OLS on the runs' accuracies, scaled by the pooled replicate variance) is added as above.
P-values are Holm-adjusted over each task's family of comparisons (statsmodels `multipletests`).
A comparison whose data are incomplete has no numbers, only the reason.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from tasks.evaluation.power import items_needed
from tasks.results.samples import ScoredEvaluation

Kind = Literal["vs base", "main effect", "interaction"]
BOOTSTRAP_RESAMPLES = 9_999
PERMUTATIONS = 9_999
RANDOM_SEED = 20_251_018  # every resampling uses this seed: the same logs give the same intervals
BCA_MAX_ITEMS = 2_000  # BCa's jackknife grows with items squared; above this the percentile interval


class Effect(BaseModel):
    """One row of results/effects.csv."""

    task: str
    epoch: str
    kind: Kind
    contrast: str
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n_items: int = 0
    n_replicates: int = 0  # replicates per fine-tuned cell (the fewest, when they differ)
    method: str = ""
    note: str = ""  # why there are no numbers, or what limits them
    items_needed: int | None = None  # test items to resolve a difference of this size (when within noise)

    def distinguishable(self, alpha: float) -> bool | None:
        """Whether the Holm-adjusted p-value is below `alpha` (None: no test was possible)."""
        return None if self.p_adjusted is None else self.p_adjusted < alpha


@dataclass(frozen=True)
class _Estimate:
    value: float
    se: float
    df: float
    method: str


# ---------------------------------------------------------------------------- data


def _common_items(evaluations: list[ScoredEvaluation]) -> tuple[list[str] | None, str]:
    """The item ids every evaluation scored, or None and why they cannot be paired."""
    for scored in evaluations:
        if scored.unusable:
            return None, f"{scored.run} ({scored.task}, epoch {scored.epoch_text}): {scored.unusable}"
    sets = [set(s.scores) for s in evaluations]
    if any(s != sets[0] for s in sets[1:]):
        sizes = ", ".join(f"{s.run}: {len(s.scores)}" for s in evaluations)
        return None, f"the runs scored different test items ({sizes}); a paired comparison needs the same items"
    return sorted(sets[0]), ""


def _frame(evaluations: list[ScoredEvaluation], items: list[str], columns: dict[str, dict[str, str]]) -> Any:
    """Long table: item, run, score and each run's level of every factor in `columns` (run -> factor -> level)."""
    import pandas as pd

    rows = [{"item": item, "run": s.run, "score": s.scores[item], **columns.get(s.run, {})}
            for s in evaluations for item in items]
    return pd.DataFrame(rows)


def _categorical(frame: Any, factor: str, levels: list[str]) -> None:
    import pandas as pd

    frame[factor] = pd.Categorical(frame[factor], categories=[lv for lv in levels if lv in set(frame[factor])])


# ---------------------------------------------------------------------------- models


@dataclass(frozen=True)
class SeedVariance:
    """The seed variance of a run's accuracy, pooled over the cells of one task and epoch (pure error)."""

    variance: float
    df: int


def pooled_seed_variance(cells: list[list[ScoredEvaluation]]) -> SeedVariance | None:
    """Within-cell variance of the replicates' accuracies, pooled over cells (None: no cell has 2 replicates).

    Pooling assumes the seed moves every cell's accuracy by about as much: the usual ANOVA assumption,
    and what makes two replicates per cell enough to say anything.
    """
    df, total = 0, 0.0
    for cell in cells:
        accuracies = [float(np.mean(list(s.scores.values()))) for s in cell if s.scores and not s.unusable]
        if len(accuracies) >= 2:
            df += len(accuracies) - 1
            total += float(np.var(accuracies, ddof=1)) * (len(accuracies) - 1)
    return SeedVariance(total / df, df) if df else None


def _fit_terms(frame: Any, formula: str, seed: SeedVariance | None) -> dict[str, _Estimate]:
    """Per model term: estimate, SE, df. Item-clustered OLS; with replicates, plus the seed part of each term.

    The seed part is the term's variance in an OLS of the runs' accuracies on the same formula, with
    the pooled replicate variance as its scale.
    """
    import pandas as pd
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = smf.ols(formula, data=frame).fit(
            cov_type="cluster", cov_kwds={"groups": frame["item"].astype("category").cat.codes.to_numpy()},
            use_t=True)
        item_se = items.bse  # computed lazily: a degenerate term's NaN (no interval, below) warns here, quietly
    terms = [t for t in items.params.index if t != "Intercept"]
    if seed is None:
        method = "OLS on per-item scores, item-clustered SE (seed variance unmeasured: 1 replicate)"
        df_items = float(frame["item"].nunique() - 1)
        return {t: _Estimate(float(items.params[t]), float(item_se[t]), df_items, method) for t in terms}
    by_run = frame.groupby("run", observed=True).agg(
        {"score": "mean", **{c: "first" for c in frame.columns if c not in ("item", "run", "score")}}).reset_index()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            by_run[column] = by_run[column].astype(frame[column].dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = smf.ols(formula, data=by_run).fit()
        seed_var = np.diag(runs.cov_params(scale=seed.variance))
    method = (f"OLS on per-item scores, item-clustered SE, plus the seed variance pooled over replicates "
              f"(variances added); t with {seed.df} df")
    index = list(runs.params.index)
    return {t: _Estimate(float(items.params[t]), math.hypot(float(item_se[t]), math.sqrt(seed_var[index.index(t)])),
                         float(seed.df), method) for t in terms if t in index}


def _with_interval(effect: Effect, estimate: _Estimate, alpha: float) -> Effect:
    from scipy import stats

    effect.estimate, effect.method = estimate.value, estimate.method
    if estimate.se == 0 or not math.isfinite(estimate.se):
        effect.note = "the scores compared do not vary at all: no interval or test can be made from them"
        return effect
    half = float(stats.t.ppf(1 - alpha / 2, estimate.df)) * estimate.se
    effect.ci_low, effect.ci_high = estimate.value - half, estimate.value + half
    effect.p_value = float(2 * stats.t.sf(abs(estimate.value) / estimate.se, estimate.df))
    return effect


# ---------------------------------------------------------------------------- fine-tuned vs base


def _exact_bounds(differences: Any, alpha: float) -> tuple[float, float]:
    """An interval for a paired 0/1 difference whose items all differ alike (a bootstrap then gives a point).

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


def paired_test(tuned: Any, base: Any) -> tuple[float, str]:
    """(p-value, method) of a paired test: exact McNemar for 0/1 scores, else a paired permutation test."""
    from scipy import stats

    binary = bool(np.isin(tuned, (0.0, 1.0)).all() and np.isin(base, (0.0, 1.0)).all())
    if binary:
        from statsmodels.stats.contingency_tables import mcnemar

        table = [[int(((tuned == 1) & (base == 1)).sum()), int(((tuned == 1) & (base == 0)).sum())],
                 [int(((tuned == 0) & (base == 1)).sum()), int(((tuned == 0) & (base == 0)).sum())]]
        return float(mcnemar(table, exact=True).pvalue), "exact McNemar"
    if np.ptp(tuned - base) == 0 and tuned[0] == base[0]:
        return 1.0, "paired permutation test"
    result = stats.permutation_test((tuned, base), lambda x, y: np.mean(x - y), permutation_type="samples",
                                    n_resamples=PERMUTATIONS, random_state=np.random.default_rng(RANDOM_SEED))
    return float(result.pvalue), f"paired permutation test ({PERMUTATIONS} resamples)"


def vs_base(cell: list[ScoredEvaluation], base: ScoredEvaluation | None, alpha: float,
            seed: SeedVariance | None = None) -> Effect:
    """A fine-tuned cell (its replicates) against its model's base run, on one task and epoch.

    With replicates (and `seed`, their pooled variance), the seed part of the cell's mean, variance / R,
    is added to the item part; the base model is not trained, so it has no seed part.
    """
    first = cell[0]
    effect = Effect(task=first.task, epoch=first.epoch_text, kind="vs base", n_replicates=len(cell),
                    contrast=f"{first.cell} - {first.model}_base (base)")
    if base is None:
        effect.note = f"no base-model evaluation of {first.model} on {first.task}"
        return effect
    effect.contrast = f"{first.cell} - {base.run} (base)"
    items, why = _common_items([*cell, base])
    if items is None:
        effect.note = why
        return effect
    effect.n_items = len(items)
    tuned = np.array([np.mean([s.scores[i] for s in cell]) for i in items])
    reference = np.array([base.scores[i] for i in items])
    if len(cell) > 1 and seed is not None:
        frame = _frame([*cell, base], items, {s.run: {"arm": "tuned"} for s in cell} | {base.run: {"arm": "base"}})
        _categorical(frame, "arm", ["base", "tuned"])
        item_part = _fit_terms(frame, "score ~ C(arm)", None)["C(arm)[T.tuned]"]
        return _with_interval(effect, _Estimate(
            item_part.value, math.hypot(item_part.se, math.sqrt(seed.variance / len(cell))), float(seed.df),
            "paired over items: OLS with item-clustered SE, replicates as rows, plus the seed variance of the "
            f"cell's mean (pooled over replicates; variances added); t with {seed.df} df"), alpha)
    differences = tuned - reference
    effect.estimate = float(np.mean(differences))
    effect.p_value, test = paired_test(tuned, reference)
    if np.ptp(differences) > 0:
        effect.ci_low, effect.ci_high, kind = _bootstrap_ci(differences, alpha)
        interval = f"bootstrap CI ({kind}, {BOOTSTRAP_RESAMPLES} resamples)"
    elif np.isin(differences, (-1.0, 0.0, 1.0)).all():
        effect.ci_low, effect.ci_high = _exact_bounds(differences, alpha)
        interval = ("every item's difference is the same (a bootstrap would give a point), so an exact CI from "
                    "the Clopper-Pearson bounds of the discordant shares")
    else:
        effect.note = "every item's difference is the same and the scores are not 0/1: no interval can be made"
        interval = "no CI"
    effect.method = f"paired over items: {interval}, {test} (seed variance unmeasured: 1 replicate)"
    return effect


# ---------------------------------------------------------------------------- factors


def _varying(frame: Any, factors: dict[str, list[str]]) -> list[str]:
    return [f for f in factors if f in frame.columns and frame[f].nunique() > 1]


def _main_effects(frame: Any, varying: list[str], seed: SeedVariance | None, base: Effect,
                  alpha: float) -> list[Effect]:
    effects = []
    terms = _fit_terms(frame, "score ~ " + " + ".join(f"C({f})" for f in varying), seed)
    for factor in varying:
        reference = frame[factor].cat.categories[0]
        for level in frame[factor].cat.categories[1:]:
            row = base.model_copy(update={
                "kind": "main effect",
                "contrast": f"{factor}: {level} - {reference} (within model, over the other factors"
                            f"{' and replicates' if seed else ''})"})
            term = f"C({factor})[T.{level}]"
            effects.append(_with_interval(row, terms[term], alpha) if term in terms
                           else row.model_copy(update={"note": f"{level} has no runs"}))
    return effects


def _interactions(frame: Any, varying: list[str], seed: SeedVariance | None, base: Effect,
                  alpha: float) -> list[Effect]:
    effects = []
    for a, b in itertools.combinations(varying, 2):
        cells = frame.groupby([a, b], observed=True).size()
        if len(cells) < frame[a].nunique() * frame[b].nunique():
            effects.append(base.model_copy(update={
                "kind": "interaction", "contrast": f"{a} x {b}",
                "note": f"not every {a} x {b} combination was evaluated"}))
            continue
        others = [f for f in varying if f not in (a, b)]
        formula = f"score ~ C({a}) * C({b})" + "".join(f" + C({f})" for f in others)
        terms = _fit_terms(frame, formula, seed)
        ref_a, ref_b = frame[a].cat.categories[0], frame[b].cat.categories[0]
        for la in frame[a].cat.categories[1:]:
            for lb in frame[b].cat.categories[1:]:
                row = base.model_copy(update={
                    "kind": "interaction",
                    "contrast": f"{a} x {b}: ({la} - {ref_a}) at {lb} minus ({la} - {ref_a}) at {ref_b}"})
                term = f"C({a})[T.{la}]:C({b})[T.{lb}]"
                effects.append(_with_interval(row, terms[term], alpha) if term in terms
                               else row.model_copy(update={"note": "not estimable from these runs"}))
    return effects


def factor_effects(evaluations: list[ScoredEvaluation], run_levels: dict[str, dict[str, str]],
                   factors: dict[str, list[str]], alpha: float, seed: SeedVariance | None = None) -> list[Effect]:
    """Main effects and two-factor interactions of the fine-tuned runs of one task and epoch.

    `run_levels`: run -> factor -> level label ("model" included); `factors`: factor -> levels in
    design order (the first is each contrast's reference).
    """
    if not evaluations:
        return []
    first = evaluations[0]
    replicates = min(sum(1 for s in evaluations if s.cell == c) for c in {s.cell for s in evaluations})
    base = Effect(task=first.task, epoch=first.epoch_text, kind="main effect",
                  contrast="factor effects (main effects and interactions)",
                  n_replicates=replicates)
    items, why = _common_items(evaluations)
    if items is None:
        return [base.model_copy(update={"note": why})]
    base.n_items = len(items)
    frame = _frame(evaluations, items, run_levels)
    for factor, levels in factors.items():
        if factor in frame.columns:
            _categorical(frame, factor, levels)
    varying = _varying(frame, factors)
    if not varying:
        return []
    return _main_effects(frame, varying, seed, base, alpha) + _interactions(frame, varying, seed, base, alpha)


# ---------------------------------------------------------------------------- family


def clip_to_scale(effects: list[Effect], span: float) -> list[Effect]:
    """Clip intervals to what the scores allow: a difference within +-span, a difference of differences 2 x span.

    `span` is the highest score minus the lowest the comparisons' evaluations can give (1 for 0/1
    scores); a t interval from a normal approximation can otherwise reach past 100 % accuracy.
    """
    for effect in effects:
        bound = span * (2 if effect.kind == "interaction" else 1)
        if effect.ci_low is not None and effect.ci_high is not None:
            effect.ci_low, effect.ci_high = max(effect.ci_low, -bound), min(effect.ci_high, bound)
    return effects



def adjust_holm(effects: list[Effect], alpha: float, power: float) -> list[Effect]:
    """Holm-adjust p-values over each task's comparisons; size what a within-noise difference needs."""
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    for task in dict.fromkeys(e.task for e in effects):
        family = [e for e in effects if e.task == task and e.p_value is not None]
        if family:
            _, adjusted, _, _ = multipletests([e.p_value for e in family], alpha=alpha, method="holm")
            for effect, p in zip(family, adjusted, strict=True):
                effect.p_adjusted = float(p)
    z = float(stats.norm.ppf(1 - alpha / 2))
    for effect in effects:
        if effect.p_adjusted is None or effect.p_adjusted < alpha or effect.estimate is None:
            continue
        if effect.ci_low is None or effect.ci_high is None or effect.n_items < 2 or effect.n_replicates > 1:
            continue  # with replicates the interval holds seed variance, which more items do not shrink
        sd = (effect.ci_high - effect.ci_low) / (2 * z) * math.sqrt(effect.n_items)  # per-item SD implied
        effect.items_needed = items_needed(effect.estimate, sd, alpha, power)
    return effects


__all__ = ["Effect", "SeedVariance", "adjust_holm", "clip_to_scale", "factor_effects", "paired_test",
           "pooled_seed_variance", "vs_base"]
