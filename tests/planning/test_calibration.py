"""Model-size scaling fitted on the project's own runs (tasks/planning/_calibration.py) and used by the estimates."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tasks.planning._calibration import fit_speed_exponent
from tasks.planning._estimate import estimate_plan
from tasks.planning._formulas import SPEED_SCALE, scale
from tasks.training._prior_logs import PriorRun
from tests.planning.test_estimate import TESTS, TRAIN, design

M1, M3, M8 = "Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct", "Llama-3.1-8B-Instruct"
DATA = "/data/words_5L_80P_10000.json"


def _prior(model: str, it_s: float, batch: int = 4, packed: bool = True, dataset: str = DATA, **kw) -> PriorRun:
    fields = {"log_path": Path(f"/prior/{model}/slurm-1.out"), "model": model, "batch_size": batch, "speed_it_s": it_s,
              "gradient_accumulation_steps": 1, "packed": packed, "packing_density": 2.0 if packed else 1.0,
              "dataset": dataset, "completed": True, "epochs": 1, "epochs_completed": 1}
    return PriorRun(**{**fields, **kw})


def test_exponent_from_two_sizes_of_the_projects_runs() -> None:
    """1B at 10 it/s and 3B at 5 it/s (same batch, data): 2x slower for 2.59x the parameters: alpha 0.73."""
    fit = fit_speed_exponent([_prior(M1, 10.0), _prior(M3, 5.0)], packed=True, dataset=Path(DATA))
    assert fit is not None and fit.models == (M1, M3)
    assert fit.alpha == pytest.approx(math.log(2) / math.log(3.21 / 1.24), abs=1e-3)
    assert fit.slowdown(M8, M3) == pytest.approx((8.03 / 3.21) ** fit.alpha, rel=1e-6)
    assert "fitted on this project's runs of" in fit.describe()


@pytest.mark.parametrize("priors", [
    [_prior(M1, 10.0)],  # one size only
    [_prior(M1, 10.0), _prior(M3, 5.0, packed=False)],  # not the same packing
    [_prior(M1, 10.0), _prior(M3, 5.0, dataset="/data/other.json")],  # not the same data
    [_prior(M1, 10.0), _prior(M3, 12.0)],  # the bigger model faster: noise, not a fit
    [_prior(M1, 10.0), _prior(M3, 5.0, completed=False)],  # an unfinished run teaches nothing
])
def test_no_fit_without_two_comparable_finished_sizes(priors: list[PriorRun]) -> None:
    assert fit_speed_exponent(priors, packed=True, dataset=Path(DATA)) is None


def test_a_model_without_a_log_is_scaled_by_the_fit(tmp_path: Path) -> None:
    """8B has no log: its speed comes from the 3B log, slowed by the fitted exponent, not the seed's table."""
    priors = [_prior(M1, 10.0), _prior(M3, 5.0)]
    d, runs = design(tmp_path, models=[M8], training={"batch_size": 4})
    d = d.model_copy(update={"dataset": d.dataset.model_copy(update={"path": Path(DATA)})})
    runs = [r.model_copy(update={"params": r.params.model_copy(update={"dataset": d.dataset})}) for r in runs]
    _, est = estimate_plan(d, runs, {Path(DATA): TRAIN}, TESTS, priors)
    speed = est.per_model[M8].speed_it_s
    fitted = (8.03 / 3.21) ** (math.log(2) / math.log(3.21 / 1.24))
    assert speed.value == pytest.approx(5.0 / fitted, rel=1e-2)
    assert speed.value > 5.0 / scale(SPEED_SCALE, M8, M3)  # the table's 2.75x would be slower
    assert speed.source.startswith(f"scaled from {M3} prior log") and "fitted on this project's runs" in speed.source
