"""Comparisons a run group supports: factor main effects, interactions, Holm; the shared models.

Reads and writes nothing: works on the per-sample scores of `tasks.results._samples` (one
`ScoredEvaluation` per run x task x epoch). `results/effects.csv` and summary.md show its rows;
the fine-tuned vs base rows are made by `tasks.results._paired`.

Every comparison is paired by test item (the runs answer the same items) and made per task and
evaluated epoch:
- **each factor's main effect** (each level against the first, within model, over the other factors
  and the replicates) and **every two-factor interaction** (a difference of differences) from an OLS
  of per-item scores with item-clustered errors (statsmodels); when the seed variance is measured
  (some cell has two usable replicates), each term's seed part (the same OLS on the runs'
  accuracies, scaled by the replicates' variance pooled over the cells of the task and epoch) is
  added, and the t interval and test take the pooled variance's degrees of freedom.
- A design left **unbalanced** (a cell that failed, was not evaluated on the task, or is unusable;
  cells with unequal replicates) is fitted over the runs there are, and every factor row says so:
  which cells are missing and why, and that the additive model then assumes no interaction with them.
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

from tasks.evaluation._power import items_needed
from tasks.results._samples import ScoredEvaluation

Kind = Literal["vs base", "main effect", "interaction"]
ROUNDING = 1e-10  # an SE or estimate below this is floating-point residue of an exact 0 (scores are O(1))
UNBALANCED = ("The estimate is the OLS fit over the runs there are: it holds for the missing cells only if the "
              "factors do not interact")


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
    seed_part: bool = False  # whether the interval holds the seed variance (measured on replicated cells)
    note: str = ""  # why there are no numbers, or what limits them
    items_needed: int | None = None  # test items to resolve a difference of this size (when within noise)
    item_sd: float | None = None  # SD of the per-item difference, where known (sizes `items_needed`)

    def distinguishable(self, alpha: float) -> bool | None:
        """Whether the Holm-adjusted p-value is below `alpha` (None: no test was possible)."""
        return None if self.p_adjusted is None else self.p_adjusted < alpha


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float
    df: float
    method: str
    seed_part: bool = False


# ---------------------------------------------------------------------------- data


def common_items(evaluations: list[ScoredEvaluation]) -> tuple[list[str] | None, str]:
    """The item ids every evaluation scored, or None and why they cannot be paired."""
    for scored in evaluations:
        if scored.unusable:
            return None, f"{scored.run} ({scored.task}, epoch {scored.epoch_text}): {scored.unusable}"
        bad = next((item for item, value in scored.scores.items() if not math.isfinite(value)), None)
        if bad is not None:
            return None, (f"{scored.run} ({scored.task}, epoch {scored.epoch_text}): sample {bad}: score "
                          f"{scored.scores[bad]} is not a finite number")
    every = set().union(*(set(s.scores) for s in evaluations))
    lacking = [(s.run, sorted(every - set(s.scores))) for s in evaluations if set(s.scores) != every]
    if lacking:
        which = "; ".join(f"{run} lacks {len(ids)} (e.g. {ids[0]})" for run, ids in lacking)
        return None, (f"the runs scored different test items ({len(every)} in all; {which}); a paired comparison "
                      "needs the same items, and none is dropped silently")
    return sorted(every), ""


def item_frame(evaluations: list[ScoredEvaluation], items: list[str], columns: dict[str, dict[str, str]]) -> Any:
    """Long table: item, run, score and each run's level of every factor in `columns` (run -> factor -> level)."""
    import pandas as pd

    rows = [{"item": item, "run": s.run, "score": s.scores[item], **columns.get(s.run, {})}
            for s in evaluations for item in items]
    return pd.DataFrame(rows)


def categorical(frame: Any, factor: str, levels: list[str]) -> None:
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


def fit_terms(frame: Any, formula: str, seed: SeedVariance | None) -> dict[str, Estimate]:
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
        method = "OLS on per-item scores, item-clustered SE (seed variance unmeasured: no cell has 2 usable replicates)"
        df_items = float(frame["item"].nunique() - 1)
        return {t: Estimate(float(items.params[t]), float(item_se[t]), df_items, method) for t in terms}
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
    return {t: Estimate(float(items.params[t]), math.hypot(float(item_se[t]), math.sqrt(seed_var[index.index(t)])),
                         float(seed.df), method, seed_part=True) for t in terms if t in index}


def with_interval(effect: Effect, estimate: Estimate, alpha: float) -> Effect:
    """Fill the estimate, a t interval and test; none where the SE is zero up to rounding (no variation at all).

    OLS leaves rounding residue (an SE of 1e-17, an estimate of 5e-17) where runs scored every item
    alike; taken as numbers they give an interval of width 0 and a meaningless p-value.
    """
    from scipy import stats

    value = 0.0 if abs(estimate.value) < ROUNDING else estimate.value
    effect.estimate, effect.method, effect.seed_part = value, estimate.method, estimate.seed_part
    if not math.isfinite(estimate.se) or estimate.se < ROUNDING:
        effect.note = ("the per-item differences of this contrast do not vary at all (the runs compared score the "
                       "items alike): no interval or test can be made from them")
        return effect
    half = float(stats.t.ppf(1 - alpha / 2, estimate.df)) * estimate.se
    effect.ci_low, effect.ci_high = value - half, value + half
    effect.p_value = float(2 * stats.t.sf(abs(value) / estimate.se, estimate.df))
    return effect


# ---------------------------------------------------------------------------- factors


def _varying(frame: Any, factors: dict[str, list[str]]) -> list[str]:
    return [f for f in factors if f in frame.columns and frame[f].nunique() > 1]


def _main_effects(frame: Any, varying: list[str], seed: SeedVariance | None, base: Effect,
                  alpha: float) -> list[Effect]:
    effects = []
    terms = fit_terms(frame, "score ~ " + " + ".join(f"C({f})" for f in varying), seed)
    for factor in varying:
        reference = frame[factor].cat.categories[0]
        for level in frame[factor].cat.categories[1:]:
            row = base.model_copy(update={
                "kind": "main effect",
                "contrast": f"{factor}: {level} - {reference} (within model, over the other factors"
                            f"{' and replicates' if seed else ''})"})
            term = f"C({factor})[T.{level}]"
            effects.append(with_interval(row, terms[term], alpha) if term in terms
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
        terms = fit_terms(frame, formula, seed)
        ref_a, ref_b = frame[a].cat.categories[0], frame[b].cat.categories[0]
        for la in frame[a].cat.categories[1:]:
            for lb in frame[b].cat.categories[1:]:
                row = base.model_copy(update={
                    "kind": "interaction",
                    "contrast": f"{a} x {b}: ({la} - {ref_a}) at {lb} minus ({la} - {ref_a}) at {ref_b}"})
                term = f"C({a})[T.{la}]:C({b})[T.{lb}]"
                effects.append(with_interval(row, terms[term], alpha) if term in terms
                               else row.model_copy(update={"note": "not estimable from these runs"}))
    return effects


def _balance(evaluations: list[ScoredEvaluation], counts: dict[str, int], cells: list[str]) -> str:
    """What makes these runs an unbalanced set (missing cells and why, left-out or unequal replicates), or ""."""
    missing = []
    for cell in dict.fromkeys([*cells, *(s.cell for s in evaluations)]):
        if cell not in counts:
            reasons = [s.unusable for s in evaluations if s.cell == cell and s.unusable]
            missing.append(f"{cell} ({reasons[0] if reasons else 'not evaluated on this task at this epoch'})")
    parts = []
    if missing:
        parts.append(f"no usable run of {len(missing)} of {len(counts) + len(missing)} cells: " + "; ".join(missing))
    left_out = [f"{s.run} ({s.unusable})" for s in evaluations if s.unusable and s.cell in counts]
    if left_out:
        parts.append("replicates left out: " + "; ".join(left_out))
    if len(set(counts.values())) > 1:
        fewer = [c for c, n in counts.items() if n < max(counts.values())]
        parts.append(f"replicates per cell differ ({min(counts.values())} to {max(counts.values())}; fewer in "
                     + ", ".join(fewer) + ")")
    return "unbalanced: " + "; ".join(parts) if parts else ""


def _without_variation(frame: Any, factors: dict[str, list[str]], varying: list[str], base: Effect) -> list[Effect]:
    """A row without numbers for each factor the design varies but whose usable runs show one level or none."""
    rows = []
    for factor, levels in factors.items():
        if len(levels) > 1 and factor not in varying:
            seen = sorted(set(frame[factor])) if factor in frame.columns else []
            rows.append(base.model_copy(update={
                "contrast": f"{factor}: {' vs '.join(levels)}",
                "note": f"only {', '.join(map(str, seen)) or 'no level'} of {factor} has usable runs here; "
                        + (base.note or "no contrast can be made")}))
    return rows


def factor_effects(evaluations: list[ScoredEvaluation], run_levels: dict[str, dict[str, str]],
                   factors: dict[str, list[str]], alpha: float, seed: SeedVariance | None = None,
                   cells: list[str] | None = None) -> list[Effect]:
    """Main effects and two-factor interactions of the fine-tuned runs of one task and epoch.

    `run_levels`: run -> factor -> level label ("model" included); `factors`: factor -> levels in
    design order (the first is each contrast's reference); `cells`: every fine-tuned cell of the
    design, so that one without a usable run here is named. Unusable runs are left out, and every row
    says so (see `_balance`).
    """
    if not evaluations:
        return []
    first = evaluations[0]
    usable = [s for s in evaluations if not s.unusable]
    counts = {c: sum(1 for s in usable if s.cell == c) for c in dict.fromkeys(s.cell for s in usable)}
    base = Effect(task=first.task, epoch=first.epoch_text, kind="main effect",
                  contrast="factor effects (main effects and interactions)",
                  n_replicates=min(counts.values(), default=0), note=_balance(evaluations, counts, cells or []))
    if not usable:
        return [base.model_copy(update={"note": f"no fine-tuned run has usable scores: {base.note}"})]
    items, why = common_items(usable)
    if items is None:
        return [base.model_copy(update={"note": why})]
    base.n_items = len(items)
    frame = item_frame(usable, items, run_levels)
    for factor, levels in factors.items():
        if factor in frame.columns:
            categorical(frame, factor, levels)
    varying = _varying(frame, factors)
    found = _main_effects(frame, varying, seed, base, alpha) + _interactions(frame, varying, seed, base, alpha) \
        if varying else []
    for row in (r for r in found if base.note):
        if row.estimate is None:
            row.note = "; ".join(filter(None, [row.note.replace(base.note, ""), base.note]))
        else:
            row.note = "; ".join(filter(None, [f"{base.note}. {UNBALANCED}", row.note.replace(base.note, "")]))
            row.method += "; over an unbalanced set (see note)"
    return found + _without_variation(frame, factors, varying, base)


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
        if effect.ci_low is None or effect.ci_high is None or effect.n_items < 2 or effect.seed_part:
            continue  # an interval holding seed variance is not narrowed by more items alone
        sd = effect.item_sd  # else the per-item SD the interval implies
        if sd is None:
            sd = (effect.ci_high - effect.ci_low) / (2 * z) * math.sqrt(effect.n_items)
        effect.items_needed = items_needed(effect.estimate, sd, alpha, power)
    return effects


__all__ = ["Effect", "SeedVariance", "adjust_holm", "clip_to_scale", "factor_effects", "pooled_seed_variance"]
