"""How finely a test set can tell two models apart: detectable differences and the items they need.

Reads and writes nothing. Used at plan time (runs_plan.md states, per task, the smallest accuracy
difference the test set detects) and by the results (how many test items a difference that is
still within noise would need). Both treat a comparison as a paired one over test items: the two
models answer the same items, and the per-item difference of their scores is what varies.

With no prior results the standard deviation of that per-item difference is taken as that of two
independent models at 50 % accuracy, sqrt(0.5): the largest it is unless the two models' errors
are anti-correlated, which models tuned on one task are not (so the figure is conservative).
"""

from __future__ import annotations

import math

UNKNOWN_PAIRED_SD = math.sqrt(0.5)  # two independent 0/1 scores at p = 0.5: var = 2 p (1 - p)


def detectable_difference(n_items: int, alpha: float, power: float, sd: float = UNKNOWN_PAIRED_SD) -> float:
    """The smallest mean paired difference a two-sided paired t-test on `n_items` detects at `power`."""
    from statsmodels.stats.power import TTestPower  # slow import

    if n_items < 2:
        return math.inf
    effect = TTestPower().solve_power(effect_size=None, nobs=n_items, alpha=alpha, power=power,
                                      alternative="two-sided")
    return float(effect) * sd


def items_needed(difference: float, sd: float, alpha: float, power: float) -> int | None:
    """Test items a paired t-test needs to detect `difference` at `power` (None: no difference to detect)."""
    from statsmodels.stats.power import TTestPower  # slow import

    if difference == 0 or sd <= 0 or not math.isfinite(sd):
        return None
    nobs = TTestPower().solve_power(effect_size=abs(difference) / sd, nobs=None, alpha=alpha, power=power,
                                    alternative="two-sided")
    return math.ceil(float(nobs))


def paired_sd(p_first: float, p_second: float) -> float:
    """SD of the per-item difference of two independent 0/1 scores with these accuracies (no pairing gain)."""
    variance = p_first * (1 - p_first) + p_second * (1 - p_second)
    return math.sqrt(max(variance, 0.0))


__all__ = ["UNKNOWN_PAIRED_SD", "detectable_difference", "items_needed", "paired_sd"]
