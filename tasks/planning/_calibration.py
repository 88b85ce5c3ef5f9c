"""Model-size scaling fitted on the project's own runs: how much slower a bigger model trains, measured.

Reads nothing (pure): prior runs as `tasks.training._prior_logs` parsed them. Writes nothing.
Where finished fine-tunes of at least two model sizes exist under one condition (packing, and the
same dataset file among themselves), samples per second ~ parameters^-alpha is fitted by least
squares in log-log space. The fit replaces the seed's SPEED_SCALE table when a model with no log
of its own is estimated from another model's log. Parameter counts alone over-state it
(cruijff_kit measured 3B/1B at 1.7x where 3.21/1.24 says 2.6x; the seed's table says 2x).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import NamedTuple

from tasks.planning._formulas import _params
from tasks.training._prior_logs import PriorRun

MIN_ALPHA, MAX_ALPHA = 0.2, 1.5  # outside this, the fit is noise (a bigger model cannot be faster per sample)


class SpeedFit(NamedTuple):
    """samples/s ~ params^-alpha, fitted on these models' finished runs (on `dataset`)."""

    alpha: float
    models: tuple[str, ...]
    dataset: str

    def slowdown(self, to_model: str, from_model: str) -> float | None:
        """How many times slower `to_model` trains than `from_model` (None: a size is unknown)."""
        to_p, from_p = _params(to_model), _params(from_model)
        return (to_p / from_p) ** self.alpha if to_p and from_p else None

    def describe(self) -> str:
        """The fit as a source note."""
        return (f"size exponent {self.alpha:.2f} fitted on this project's runs of {' and '.join(self.models)} "
                f"({self.dataset})")


def samples_per_second(p: PriorRun) -> float | None:
    """Training examples per second per GPU of a prior: it/s x batch x accumulation x packing density.

    The bars of a distributed run count each rank's steps of its own batches.
    """
    if not (p.speed_it_s and p.batch_size):
        return None
    density = p.packing_density or 1.0
    return p.speed_it_s * p.batch_size * (p.gradient_accumulation_steps or 1) * density


def _fit(points: dict[str, float]) -> float | None:
    """-slope of log(samples/s) on log(params) over one point per model."""
    xs = [math.log(_params(m) or 1.0) for m in points]
    ys = [math.log(v) for v in points.values()]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var <= 0:
        return None
    return -sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def fit_speed_exponent(priors: list[PriorRun], packed: bool, dataset: Path | None) -> SpeedFit | None:
    """The fit over finished runs of one packing mode on one dataset (the run's own dataset first), if any."""
    by_data: dict[str, dict[str, list[float]]] = {}
    for p in priors:
        sps = samples_per_second(p)
        if not (p.completed and not p.oom and p.model and _params(p.model) and sps and bool(p.packed) == packed):
            continue
        name = Path(p.dataset).name if p.dataset else "?"
        by_data.setdefault(name, {}).setdefault(p.model, []).append(sps)
    usable = {name: models for name, models in by_data.items() if len({_params(m) for m in models}) >= 2}
    if not usable:
        return None
    name = dataset.name if dataset and dataset.name in usable else max(usable, key=lambda n: (len(usable[n]), n))
    points = {m: statistics.median(v) for m, v in sorted(usable[name].items())}
    alpha = _fit(points)
    if alpha is None or not MIN_ALPHA <= alpha <= MAX_ALPHA:
        return None
    return SpeedFit(alpha=round(alpha, 3), models=tuple(points), dataset=name)


__all__ = ["SpeedFit", "fit_speed_exponent", "samples_per_second"]
