"""The pilot's design and figures (tasks/planning/_pilot.py), and how the next plan learns from a pilot group."""

from __future__ import annotations

import math

import shutil
from pathlib import Path

import pytest

from tasks.model import parse_design
from tasks.model._layout import pilot_of
from tasks.planning import build_plan, pilot_design, pilot_figures, pilot_problems
from tasks.planning._planner import prior_run_folders
from tests.support.fakesite import FakeSite
from tests.support.paths import FIXTURES_DIR
from tests.support.setup_groups import DATE, planned

LOG_1B = FIXTURES_DIR / "prior_runs" / "cap_5L_sweep_2025-09-30" / "Llama-3.2-1B-Instruct_5L_rank64" / "slurm-4812345.out"
M1, M3 = "Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct"


def test_one_short_run_per_model_at_the_plans_batch_size(fake_site: FakeSite) -> None:
    data = fake_site.design(factors={"lora_rank": [64, 4], "learning_rate": {"low": 1e-4, "high": 3e-4}},
                            replicates=3)
    data["training"] = {"epochs": 3, "batch_size": {M1: 8, M3: 2}, "save_adapter_weights_only": True}
    data["evaluation"]["epochs"] = "all"
    plan = build_plan(parse_design(data, base=fake_site.root), date=DATE)

    pilot = pilot_design(plan, steps=7, eval_samples=5)
    assert pilot.factors == {"lora_rank": [64], "learning_rate": {"low": 1e-4}}  # each factor's first level
    assert (pilot.training.epochs, pilot.training.max_steps_per_epoch) == (1, 7)
    assert pilot.training.batch_size == {M1: 8, M3: 2}
    assert not pilot.controls and pilot.evaluation.epochs == "last" and pilot.evaluation.limit == 5
    assert pilot.replicates == 1  # the seed does not change speed, memory or size
    assert pilot.name.startswith(f"{plan.design.name}-pilot-") and pilot.paths == plan.design.paths

    pilot_plan = build_plan(pilot, date=DATE)
    assert [(r.model, r.params.lora_rank, r.params.batch_size) for r in pilot_plan.runs] == [(M1, 64, 8), (M3, 64, 2)]
    assert all(r.params.max_steps_per_epoch == 7 for r in pilot_plan.runs)
    for run in pilot_plan.runs:  # the data's own packs (~100 words per pack), at most 7 steps
        tokens = pilot_plan.estimates.per_model[run.model].packing_density.value
        full = math.ceil(round(160 / tokens) / run.params.batch_size)
        assert pilot_plan.estimates.runs[run.name].steps_per_epoch == min(7, full)
    assert pilot_of(planned(pilot, base=fake_site.root)) == plan.design.name

    # the same settings give the same group (a re-run resumes it); other settings another one
    assert pilot_design(plan, steps=7, eval_samples=5).name == pilot.name
    assert pilot_design(plan, steps=8, eval_samples=5).name != pilot.name


def test_the_next_plan_reads_its_own_pilot_whatever_prior_runs_says(fake_site: FakeSite, tmp_path: Path) -> None:
    """A pilot group of this design beside paths.prior_runs: searched, preferred, and named on every figure."""
    data = fake_site.design(models=[M1])
    data["paths"]["prior_runs"] = [str(tmp_path / "elsewhere")]
    (tmp_path / "elsewhere").mkdir()
    plan = build_plan(parse_design(data, base=fake_site.root), date=DATE)
    assert not any(f.by_pilot for f in pilot_figures(plan))

    pilot = pilot_design(plan)
    pilot_dir = planned(pilot, base=fake_site.root)
    run = pilot_dir / build_plan(pilot, date=DATE).runs[0].name
    shutil.copytree(LOG_1B.parent, run, dirs_exist_ok=True)  # a real GPU log: memory, speed, saves, epoch folders
    other = fake_site.root / "out" / "other-pilot-0a1b2c_2026-01-01"  # another design's pilot: not this one's
    assert prior_run_folders(plan.design.paths, plan.design.name) == ([tmp_path / "elsewhere", pilot_dir], False)
    assert other not in prior_run_folders(plan.design.paths, plan.design.name)[0]

    again = build_plan(plan.design, date=DATE)
    m = again.estimates.per_model[M1]
    assert m.speed_it_s.source.startswith(f"measured by pilot: prior log {run / LOG_1B.name}, as ")  # tokens/s
    # "auto" batch size from the pilot's measured peak GPU memory (the seed's headroom formula)
    assert m.batch_size.source.startswith("measured by pilot:") and m.peak_memory_gib is not None
    assert m.peak_memory_gib.source.startswith("measured by pilot:")
    by_pilot = {f.name for f in pilot_figures(again) if f.by_pilot}
    assert {"batch size", "training speed", "peak GPU memory", "checkpoint per epoch"} <= by_pilot


def test_pilot_problems_name_every_stage_that_did_not_complete(fake_site: FakeSite) -> None:
    plan = build_plan(parse_design(fake_site.design(models=[M1]), base=fake_site.root), date=DATE)
    pilot_dir = planned(pilot_design(plan), base=fake_site.root)
    problems = pilot_problems(pilot_dir)
    assert problems and all("pending" in line for line in problems)  # nothing ran yet
    epochs_factor = build_plan(parse_design(fake_site.design(models=[M1], factors={"epochs": [3, 2]}),
                                            base=fake_site.root), date=DATE)
    assert pilot_design(epochs_factor).factors == {"epochs": [1]}  # one short epoch, whatever the factor says
    with pytest.raises(ValueError, match="at least 1 step"):
        pilot_design(plan, steps=0)
