"""Evaluation estimates from earlier evaluation jobs (tasks/planning/_prior_evals.py) on a real planned group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.model import parse_design
from tasks.planning import build_plan
from tasks.planning._prior_evals import PriorEval, eval_minutes_from_priors, scan_prior_evals
from tests.support.fakesite import FakeSite
from tests.support.setup_groups import planned

ELAPSED = {"Llama-3.2-1B-Instruct": 42.0, "Llama-3.2-3B-Instruct": 96.0}


def _minutes(*args: Any, **kwargs: Any) -> tuple[float, str] | None:
    """(minutes, source text) of `eval_minutes_from_priors`, None where it found no earlier job."""
    figure = eval_minutes_from_priors(*args, **kwargs)
    return (figure.value, figure.source) if figure else None


def _finish_evaluations(group: Path, slower: float = 1.0, base_slower: float = 1.0) -> None:
    """Mark every evaluation completed with its model's elapsed time (x `slower`; a base model's x `base_slower`
    too), as sync records it from sacct."""
    path = group / "runs_status.yaml"
    status = yaml.safe_load(path.read_text())
    for i, (run, entry) in enumerate(status["runs"].items()):
        model = next(m for m in ELAPSED if run.startswith(m))
        for j, stage in enumerate(entry["evaluations"].values()):
            job_id = str(1000 + 10 * i + j)
            stage.update(status="completed", job_id=job_id,
                         attempts=[{"job_id": job_id, "slurm_state": "COMPLETED", "elapsed_s": ELAPSED[model] * slower * (base_slower if run.endswith("_base") else 1.0)}])
    path.write_text(yaml.safe_dump(status, sort_keys=False))


def test_evaluations_are_estimated_from_earlier_evaluation_jobs(fake_site: FakeSite) -> None:
    first = planned(fake_site.design(name="first"), base=fake_site.root)
    _finish_evaluations(first)

    priors = scan_prior_evals([first.parent])
    assert {(p.model, p.task, p.elapsed_s) for p in priors} == {(m, "cap", s) for m, s in ELAPSED.items()}
    assert all(p.samples == 20 for p in priors)  # the fake site's test split

    data = fake_site.design(name="second")
    data["paths"]["prior_runs"] = [str(first.parent)]
    plan = build_plan(parse_design(data, base=fake_site.root), date="2026-01-03")
    for run in plan.runs:
        est = plan.estimates.runs[run.name]
        assert est.eval_minutes == pytest.approx(len(run.evaluations) * ELAPSED[run.model] / 60, rel=1e-3)
    figure = plan.estimates.per_model["Llama-3.2-3B-Instruct"].eval_minutes
    assert figure.value == pytest.approx(96.0 / 60, rel=1e-3)
    assert figure.source.startswith("prior evaluations: ") and f"in {first.name}" in figure.source


def test_sample_counts_scale_the_measured_time(fake_site: FakeSite) -> None:
    first = planned(fake_site.design(name="first"), base=fake_site.root)
    _finish_evaluations(first)
    priors = scan_prior_evals([first.parent])

    minutes, source = _minutes(priors, "Llama-3.2-1B-Instruct", "cap", 40) or (0.0, "")
    assert minutes == pytest.approx(2 * 42.0 / 60) and "scaled x2.00 for 40 samples" in source
    assert _minutes(priors, "Llama-3.2-1B-Instruct", "other task", 20) is None
    assert _minutes(priors, "Llama-3.1-8B-Instruct", "cap", 20) is None


def test_unfinished_or_unreadable_groups_teach_nothing(fake_site: FakeSite, tmp_path: Path) -> None:
    first = planned(fake_site.design(name="first"), base=fake_site.root)
    assert scan_prior_evals([first.parent]) == []  # all pending
    (first / "runs_status.yaml").write_text("runs: [not, a, status]\n")
    assert scan_prior_evals([first.parent]) == []


def _log_inspect_time(group: Path, seconds: float) -> None:
    """A real inspect log per evaluation job of `group`, its stats saying inspect ran `seconds` on the samples."""
    from inspect_ai.log import read_eval_log, write_eval_log

    from tasks.model import load_plan
    from tests.support.finished_runs import mock_eval

    plan = load_plan(group)
    for run in plan.runs:
        for job in run.evaluations:
            path = mock_eval(group, run.name, "base" if job.epoch is None else job.epoch, 4, plan.design_hash)
            log = read_eval_log(str(path))
            log.stats.started_at, log.stats.completed_at = "2026-01-01T00:00:00+00:00", f"2026-01-01T00:00:{seconds:02.0f}+00:00"
            write_eval_log(log, str(path))


def test_inspect_time_and_first_batch_are_read_from_real_logs(fake_site: FakeSite) -> None:
    first = planned(fake_site.design(name="first"), base=fake_site.root)
    _finish_evaluations(first)
    _log_inspect_time(first, 10)
    priors = scan_prior_evals([first.parent])
    assert {p.eval_s for p in priors} == {10.0}
    assert {p.samples for p in priors} == {4}  # what each log completed, not the plan's 20 (the test split)
    assert all(p.first_batch_s is not None and 0 <= p.first_batch_s <= 10.0 for p in priors)
    assert all(p.steady_per_sample_s is None for p in priors)  # 4 samples: nothing after the first batch


def _job(samples: int, elapsed: float, inspect_s: float, first: float | None, steady: float | None = None) -> PriorEval:
    return PriorEval(group=Path("/out/g_2026-01-01"), model="M", task="cap", samples=samples, elapsed_s=elapsed,
                     eval_s=inspect_s, first_batch_s=first, steady_per_sample_s=steady)


def test_fixed_time_and_warm_up_are_not_scaled_by_samples() -> None:
    """The demo's measured job: 65 s, of which inspect 20 s for 500 samples, its first batch 4.5 s."""
    job = _job(500, 65.0, 20.0, 4.5)
    same, source = _minutes([job], "M", "cap", 500) or (0.0, "")
    assert same == pytest.approx(65.0 / 60)  # its own sample count: exactly what it took
    assert "45 s fixed + 20 s of inspect for 500 samples" in source
    double, _ = _minutes([job], "M", "cap", 1000) or (0.0, "")
    assert double == pytest.approx((45.0 + 4.5 + 15.5 / 468 * 968) / 60)  # not 2 x 65 s


def test_one_batch_jobs_bound_each_later_batch_by_the_first() -> None:
    """A 32-sample job (one generation batch, warm-up included): 16 batches of 500 at most as long each."""
    minutes, source = _minutes([_job(32, 19.0, 6.0, 6.0)], "M", "cap", 500) or (0.0, "")
    assert minutes == pytest.approx((13.0 + 6.0 * 16) / 60) and "one generation batch" in source
    linear, _ = _minutes([_job(20, 42.0, 10.0, None)], "M", "cap", 40) or (0.0, "")
    assert linear == pytest.approx((32.0 + 20.0) / 60)  # no sample summaries: inspect's time per sample


def test_a_pilots_evaluations_are_used_alone_and_say_so(fake_site: FakeSite) -> None:
    """Beside an earlier full group, a pilot group (`<name>-pilot_<date>`) of the same model and task wins."""
    first = planned(fake_site.design(name="first"), base=fake_site.root)
    _finish_evaluations(first)
    pilot = planned(fake_site.design(name="first-pilot-0a1b2c"), base=fake_site.root)
    _finish_evaluations(pilot, slower=2.0)
    priors = scan_prior_evals([first.parent])
    assert {p.group.name for p in priors if p.pilot} == {pilot.name}
    minutes, source = _minutes(priors, "Llama-3.2-1B-Instruct", "cap", 20) or (0.0, "")
    assert minutes == pytest.approx(84.0 / 60) and source.startswith("measured by pilot: prior evaluations: ")
    assert pilot.name in source and first.name not in source


def test_base_model_evaluations_are_estimated_from_base_model_evaluations(fake_site: FakeSite) -> None:
    """A control's job (no checkpoint view or merge first) took half as long: its estimate says so."""
    first = planned(fake_site.design(name="first"), base=fake_site.root)
    _finish_evaluations(first, base_slower=0.5)
    priors = scan_prior_evals([first.parent])
    assert {p.base for p in priors} == {True, False}
    base, _ = _minutes(priors, "Llama-3.2-1B-Instruct", "cap", 20, base=True) or (0.0, "")
    tuned, _ = _minutes(priors, "Llama-3.2-1B-Instruct", "cap", 20, base=False) or (0.0, "")
    assert (base, tuned) == (pytest.approx(21.0 / 60), pytest.approx(42.0 / 60))


def test_a_pilots_two_batches_give_the_rate_after_warm_up() -> None:
    """The pilot measured on this machine: 64 samples, inspect 8 s (whole seconds), first batch 4.2 s, then
    latencies of 1.25 s per sample with 32 in flight. 500 samples: 4.2 + 0.039 x 468 s, not 8 / 64 x 500 s.
    (The sweep's own 500-sample jobs then took 19-20 s of inspect.)"""
    pilot = _job(64, 18.0, 8.0, 4.217, steady=0.039)
    minutes, source = _minutes([pilot], "M", "cap", 500) or (0.0, "")
    assert minutes == pytest.approx((10.0 + 4.217 + 0.039 * 468) / 60)
    assert "one generation batch" not in source
    # a job of 4 batches or more is timed by inspect's own clock (its sample latencies are ignored)
    big = _job(500, 33.0, 20.0, 4.187, steady=0.5)
    own, _ = _minutes([big], "M", "cap", 500) or (0.0, "")
    assert own == pytest.approx(33.0 / 60)


def test_a_sub_second_inspect_clock_takes_the_samples_latencies() -> None:
    """inspect's start/end have whole seconds: a fast job can read 0 s; its sample latencies are finer."""
    from tasks.planning._prior_evals import inspect_seconds_for

    clock_zero = _job(4, 20.0, 0.0, None)
    assert inspect_seconds_for(clock_zero, 100) == 0.0  # what a 0 s clock alone predicts: nothing per sample
    with_latencies = _job(4, 20.0, 0.42, 0.42)  # as _group_evals now records it: max(clock, first batch)
    assert inspect_seconds_for(with_latencies, 100) == pytest.approx(0.42 * 4)  # 4 batches of 32, each <= first


def test_zero_second_inspect_clock_is_read_from_real_logs(fake_site: FakeSite) -> None:
    first = planned(fake_site.design(name="first"), base=fake_site.root)
    _finish_evaluations(first)
    _log_inspect_time(first, 0)
    priors = scan_prior_evals([first.parent])
    assert priors and all(p.eval_s is not None and p.eval_s > 0 for p in priors)  # the latencies, not 0 s
    assert all(p.first_batch_s == p.eval_s for p in priors)  # 4 samples: all in the first batch


def _kind(base: bool, pilot: bool, elapsed: float, finished: str) -> PriorEval:
    return PriorEval(group=Path(f"/out/g{'-pilot-0a1b2c' if pilot else ''}_2026-01-01"), model="M", task="cap",
                     samples=20, elapsed_s=elapsed, base=base, pilot=pilot, finished=finished)


def test_base_model_jobs_come_from_base_model_jobs_before_a_pilots() -> None:
    """A pilot has no control run: a base model's estimate keeps the earlier base job, not the pilot's merge."""
    earlier_base = _kind(base=True, pilot=False, elapsed=30.0, finished="2026-01-01T09:00:00")
    pilot_tuned = _kind(base=False, pilot=True, elapsed=90.0, finished="2026-01-02T09:00:00")
    base, source = _minutes([earlier_base, pilot_tuned], "M", "cap", 20, base=True) or (0.0, "")
    assert base == pytest.approx(0.5) and not source.startswith("measured by pilot")
    tuned, source = _minutes([earlier_base, pilot_tuned], "M", "cap", 20, base=False) or (0.0, "")
    assert tuned == pytest.approx(1.5) and source.startswith("measured by pilot")


def test_jobs_that_ended_after_the_pilot_outrank_it() -> None:
    """Planning the design again after its sweep: the sweep's own full jobs, not the pilot's short ones."""
    older = _kind(base=False, pilot=False, elapsed=10.0, finished="2026-01-01T09:00:00")
    pilot = _kind(base=False, pilot=True, elapsed=20.0, finished="2026-01-02T09:00:00")
    sweep = _kind(base=False, pilot=False, elapsed=40.0, finished="2026-01-02T12:00:00")
    assert _minutes([older, pilot], "M", "cap", 20) == (pytest.approx(20 / 60), pytest.approx(
        "measured by pilot: prior evaluations: 1 job(s) of M on cap in g-pilot-0a1b2c_2026-01-01"))
    minutes, source = _minutes([older, pilot, sweep], "M", "cap", 20) or (0.0, "")
    assert minutes == pytest.approx(40 / 60) and not source.startswith("measured by pilot")
