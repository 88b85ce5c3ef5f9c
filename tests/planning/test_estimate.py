"""Resource estimates: the seed's worked examples, priors vs defaults, scenarios, disk."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tasks.model._design_file import parse_design
from tasks.planning._estimate import estimate_plan
from tasks.planning._expand import expand_design
from tasks.planning._formulas import (
    CHECKPOINT_GIB,
    DEFAULT,
    EVAL_LOAD_MIN,
    MEMORY_SCALE,
    SPEED_SCALE,
    batch_from_memory,
    checkpoint_job_minutes,
    default_batch,
    default_figure,
    design_figure,
    disk_estimate,
    eval_job_minutes,
    power_of_two_floor,
    scale,
    scenarios,
)
from tasks.training._prior_logs import PriorRun, parse_log
from tests.support.paths import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "prior_runs" / "cap_5L_sweep_2025-09-30"
LOG_1B = FIXTURES / "Llama-3.2-1B-Instruct_5L_rank64" / "slurm-4812345.out"
LOG_3B = FIXTURES / "Llama-3.2-3B-Instruct_5L_rank64" / "slurm-4812346.out"
M1, M3, M8 = "Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct", "Llama-3.1-8B-Instruct"
TRAIN = 8000
TESTS = {"cap": 1000, "reasoning": 200}


def design(tmp_path: Path, models: list[str] | None = None, **overrides: Any):
    data: dict[str, Any] = {
        "name": "exp", "question": "q?", "task": "cap",
        "models": models or [M1, M3],
        "factors": {"lora_rank": [4, 64]},
        "dataset": {"path": "data/words_5L_80P_10000.json"},
        "training": {"epochs": 2, "batch_size": "auto", "packed": True},
        "evaluation": {"epochs": "last", "tasks": [{"name": "cap", "script": "eval.py"}, {"name": "reasoning", "script": "r.py"}]},
        "paths": {"models_dir": "models", "output_dir": "out"},
        "gpu": {"count": 1, "memory_gb": 80, "available": 4},
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    d = parse_design(data, base=tmp_path)
    return d, expand_design(d)


def plan(tmp_path: Path, priors: list[PriorRun], **kw: Any):
    d, runs = design(tmp_path, **kw)
    return d, runs, *estimate_plan(d, runs, {d.dataset.path: TRAIN}, TESTS, priors)


# --- the seed's worked examples -------------------------------------------------------------

def test_seed_batch_size_example() -> None:
    # 80 GB, 2.4 GB at batch 1: headroom 33x, x0.7 = 23 -> 16 (power of two); packed /2.8 -> 8
    bs, raw = batch_from_memory(80, 2.4, 1)
    assert raw == pytest.approx(23.33, abs=0.01) and bs == 16
    bs, raw = batch_from_memory(80, 2.4, 1, density_divisor=2.8)
    assert raw == pytest.approx(8.33, abs=0.01) and bs == 8
    # 3B: 2.4 x 2.5 = 6 GB per sample -> 13x -> x0.7 = 9 -> 8
    assert scale(MEMORY_SCALE, M3, M1) == pytest.approx(2.5)
    assert batch_from_memory(80, 2.4 * scale(MEMORY_SCALE, M3, M1), 1)[0] == 8


def test_scaling_factors_follow_the_seed() -> None:
    assert scale(MEMORY_SCALE, M8, M1) == pytest.approx(5.0)
    assert scale(SPEED_SCALE, M3, M1) == pytest.approx(2.0)
    assert scale(SPEED_SCALE, M8, M1) == pytest.approx(5.5)
    assert 4.5 < scale(SPEED_SCALE, "Qwen2.5-7B-Instruct", M1) < 5.5  # interpolated by params
    assert scale(CHECKPOINT_GIB, M1, M3) == pytest.approx(2.4 / 6.2)
    assert scale(MEMORY_SCALE, M1, "not-a-model") == 1.0


def test_power_of_two_floor_bounds() -> None:
    assert [power_of_two_floor(v) for v in (0.3, 1, 1.9, 7.99, 8, 23.3, 1000)] == [1, 1, 1, 4, 8, 16, 64]


def test_seed_eval_example() -> None:
    # 10 it/s training -> 25 it/s inference; 1000 / 16 = 63 steps = 2.5 s; + 60 s overhead
    assert eval_job_minutes(1000, 16, 10.0) == pytest.approx((63 / 25 + 60) / 60)


def test_seed_disk_example() -> None:
    disk = disk_estimate({M1: 2 * 2 * 2.4, M3: 2 * 2 * 6.1}, 20)
    assert disk.checkpoints_gib == pytest.approx(34.0)
    assert disk.eval_logs_gib == pytest.approx(0.2)
    assert disk.margin_gib == pytest.approx(5.13)
    assert disk.total_gib == pytest.approx(39.33)
    assert disk.per_model_gib == {M1: pytest.approx(9.6), M3: pytest.approx(24.4)}


def test_default_batch_table() -> None:
    assert [default_batch(1.24, True, g) for g in (80, 40, 32, 16)] == [4, 2, 1, 1]
    assert [default_batch(p, False, 80) for p in (1.24, 3.21, 8.03, 70.6)] == [16, 8, 4, 4]
    assert [default_batch(p, False, 24) for p in (1.24, 3.21)] == [2, 1]


# --- scenarios ---------------------------------------------------------------------------------

def test_scenarios_arithmetic() -> None:
    par, seq, mixed = scenarios([20, 20, 45, 45, 10], [2.5] * 7, gpus_per_job=1, available=2)
    assert (par.gpus, par.training_minutes, par.eval_minutes) == (7, 45, 2.5)
    assert (seq.gpus, seq.training_minutes, seq.eval_minutes) == (1, 140, 17.5)
    # 5 jobs on 2 GPUs: 3 batches x 45 min; 7 evals on 2 GPUs: 4 batches x 2.5 min
    assert (mixed.gpus, mixed.training_minutes, mixed.eval_minutes) == (2, 135, 10)
    assert "3 batches × 45.0 min" in mixed.detail and "4 batches × 2.5 min" in mixed.detail
    assert par.total_minutes == 47.5


def test_checkpoint_job_minutes_pay_the_load_once() -> None:
    assert checkpoint_job_minutes([]) == 0.0
    assert checkpoint_job_minutes([2.5]) == 2.5  # one task: the job it always was
    assert checkpoint_job_minutes([2.5, 4.0, 1.0]) == pytest.approx(EVAL_LOAD_MIN + 2.0 + 3.5 + 0.5)
    assert checkpoint_job_minutes([2.5, 2.5], load_minutes=2.0) == pytest.approx(3.0)
    assert checkpoint_job_minutes([0.2, 0.2]) == pytest.approx(EVAL_LOAD_MIN)  # never less than one load


def test_scenarios_multi_gpu_jobs() -> None:
    par, seq, mixed = scenarios([30, 30, 30], [5, 5], gpus_per_job=2, available=4)
    assert par.gpus == 6 and seq.gpus == 2
    assert mixed.training_minutes == 2 * 30  # 4 GPUs hold 2 two-GPU jobs at once
    assert "1 batch × 5.0 min" in mixed.detail


# --- estimate_plan -------------------------------------------------------------------------------

def test_without_priors_everything_is_default(tmp_path: Path) -> None:
    d, runs, out, est = plan(tmp_path, [])
    for m in est.per_model.values():
        for fig in (m.batch_size, m.packing_density, m.speed_it_s, m.checkpoint_gib_per_epoch, m.eval_minutes):
            assert (fig.source, fig.kind, fig.by_pilot) == (DEFAULT, "default", False)
        assert m.peak_memory_gib is None
    assert {r.name: r.params.batch_size for r in out if not r.is_control} == {
        f"{M1}_rank4": 4, f"{M1}_rank64": 4, f"{M3}_rank4": 2, f"{M3}_rank64": 2}
    assert all(r.params.batch_size is None for r in runs)  # inputs are not mutated
    r1 = est.runs[f"{M1}_rank4"]
    assert (r1.minutes_per_epoch, r1.train_minutes) == (45.0, 90.0)
    assert r1.steps_per_epoch == math.ceil(TRAIN / 2.8 / 4)
    assert est.runs[f"{M3}_rank4"].train_minutes == 180.0
    assert est.training_minutes_sequential == 2 * 90 + 2 * 180
    base = est.runs[f"{M1}_base"]
    # two tasks at the seed's 2.5 min each as jobs of their own; one job loads the model once for both
    assert base.train_minutes == 0 and base.disk_gib == pytest.approx(0.02) and base.eval_jobs == 1
    assert base.eval_minutes == pytest.approx(EVAL_LOAD_MIN + 2 * (2.5 - EVAL_LOAD_MIN)) and base.eval_minutes < 2 * 2.5
    assert est.disk.checkpoints_gib == pytest.approx(2 * 2 * 2.4 + 2 * 2 * 6.2)
    assert est.notes[0].startswith("No usable prior run log")
    assert any("preliminary" in n and M3 in n for n in est.notes)


def test_with_priors_sources_and_numbers(tmp_path: Path) -> None:
    p1, p3 = parse_log(LOG_1B), parse_log(LOG_3B)
    d, runs, out, est = plan(tmp_path, [p1, p3])
    e1, e3 = est.per_model[M1], est.per_model[M3]
    assert e1.batch_size.source == e1.speed_it_s.source == e1.checkpoint_gib_per_epoch.source == f"prior log {LOG_1B}"
    assert e3.speed_it_s.source == f"prior log {LOG_3B}"
    assert (e1.prior_samples, e1.prior_batch_size, e1.speed_it_s.value) == (2000, 4, 4.35)

    # 1B: 15.27 GiB at batch 4 -> 3.82/sample -> 80/3.82 x 0.7 = 14.7 -> 8 (prior was packed too)
    assert e1.batch_size.value == 8
    # 3B: 21.74 GiB at batch 8 unpacked -> 2.72/sample -> 20.6 -> / density 2.81 (packed now) = 7.3 -> 4
    assert e3.batch_size.value == 4
    assert e3.packing_density.value == 2.81  # the 3B prior was unpacked: density from the 1B log
    assert {r.params.batch_size for r in out if r.model == M1} == {8}

    # 1B time: samples/s = 4.35 it/s x 4 x 2.81 (prior, packed); 8000 samples; x1.5 overhead
    r1 = est.runs[f"{M1}_rank4"]
    assert r1.steps_per_epoch == math.ceil(TRAIN / 2.81 / 8)
    assert r1.minutes_per_epoch == pytest.approx(TRAIN / (4.35 * 4 * 2.81) / 60 * 1.5, rel=1e-3)
    # 3B time: 0.6270 it/s (116 steps in 185 s) x 8 x 4 (grad. accumulation) = 20.06 samples/s -> 398.7 s
    # -> 9.97 min with overhead
    assert est.runs[f"{M3}_rank4"].minutes_per_epoch == pytest.approx(TRAIN / (0.627 * 32) / 60 * 1.5, rel=1e-3)
    assert est.runs[f"{M3}_rank4"].train_minutes == pytest.approx(2 * TRAIN / (0.627 * 32) / 60 * 1.5, rel=1e-3)

    # evaluation: training it/s at batch 8 = 4.35*4*2.81/8; x2.5; 1000/8 steps; + 1 min
    it_s = 4.35 * 4 * 2.81 / 8
    assert e1.eval_minutes.value == pytest.approx(math.ceil(1000 / 8) / (it_s * 2.5) / 60 + 1, rel=1e-3)
    # disk from what torchtune logged saving (2.30 + 2 x 0.04 GiB), not the placeholder epoch_* folders (2.5 kB)
    assert e1.checkpoint_gib_per_epoch.value == pytest.approx(2.38)

    n_evals = sum(len(r.evaluations) for r in runs)
    assert est.eval_gpu_hours == pytest.approx(est.eval_minutes_sequential / 60, rel=1e-3)
    assert est.training_gpu_hours == pytest.approx(est.training_minutes_sequential / 60, rel=1e-3)
    assert est.disk.eval_logs_gib == pytest.approx(n_evals * 0.01)
    par = next(s for s in est.scenarios if s.name == "parallel")
    assert par.training_minutes == pytest.approx(est.runs[f"{M3}_rank4"].train_minutes, rel=1e-3)  # longest: a 3B run
    assert not any(n.startswith("No prior") for n in est.notes)


def test_scaled_from_another_model(tmp_path: Path) -> None:
    p1 = parse_log(LOG_1B)
    d, runs, out, est = plan(tmp_path, [p1], models=[M1, M8])
    e8 = est.per_model[M8]
    scaled = f"scaled from {M1} prior log {LOG_1B}"
    assert e8.batch_size.source == e8.speed_it_s.source == e8.peak_memory_gib.source == scaled
    assert e8.checkpoint_gib_per_epoch.source == scaled
    assert {f.kind for f in (e8.batch_size, e8.speed_it_s, e8.checkpoint_gib_per_epoch)} == {"scaled"}
    assert est.per_model[M1].speed_it_s.kind == "measured"
    assert e8.peak_memory_gib.value == pytest.approx(15.27 * 5.0, rel=1e-3)
    # 76.35 GiB per batch of 4 -> 19.1/sample -> 80/19.1 x 0.7 = 2.9 -> 2
    assert e8.batch_size.value == 2
    assert e8.speed_it_s.value == pytest.approx(4.35 / 5.5, rel=1e-3)
    r1, r8 = est.runs[f"{M1}_rank4"], est.runs[f"{M8}_rank4"]
    assert r8.minutes_per_epoch == pytest.approx(r1.minutes_per_epoch * 5.5, rel=1e-3)
    assert any(n.startswith(f"{M8}: figures scaled") for n in est.notes)


def test_design_batch_size_kept_and_labelled(tmp_path: Path) -> None:
    d, runs, out, est = plan(tmp_path, [parse_log(LOG_1B)], training={"batch_size": {M1: 2, M3: 1}})
    assert est.per_model[M1].batch_size == design_figure(2)
    assert {r.params.batch_size for r in out if r.model == M3} == {1}


def test_unpacked_run_from_packed_prior_gets_a_larger_batch(tmp_path: Path) -> None:
    d, runs, out, est = plan(tmp_path, [parse_log(LOG_1B)], models=[M1], training={"packed": False})
    # 14.67 x 2.81 = 41 -> 32
    assert est.per_model[M1].batch_size.value == 32
    assert est.per_model[M1].packing_density == design_figure(1.0)


def test_small_gpu_without_memory_data(tmp_path: Path) -> None:
    d, runs, out, est = plan(tmp_path, [], gpu={"memory_gb": 16, "count": 2, "available": 4})
    assert {r.params.batch_size for r in out} == {1}
    ft = [r for r in est.runs.values() if r.train_minutes]
    assert est.training_gpu_hours == pytest.approx(sum(r.train_minutes for r in ft) * 2 / 60)
    assert next(s for s in est.scenarios if s.name == "sequential").gpus == 2


def test_oom_prior_is_ignored(tmp_path: Path) -> None:
    p1 = parse_log(LOG_1B).model_copy(update={"oom": True})
    d, runs, out, est = plan(tmp_path, [p1])
    assert est.per_model[M1].speed_it_s.source == DEFAULT


def test_adapter_only_checkpoints(tmp_path: Path) -> None:
    d, runs, out, est = plan(tmp_path, [parse_log(LOG_1B)], training={"save_adapter_weights_only": True})
    ck = est.per_model[M1].checkpoint_gib_per_epoch
    assert ck == default_figure(0.1)  # the prior saved full models: not comparable


def test_eval_limit_and_tiny_model(tmp_path: Path) -> None:
    d, runs, out, est = plan(tmp_path, [], models=["Llama-3-Tiny-Instruct"])
    tiny = est.runs["Llama-3-Tiny-Instruct_rank4"]
    assert tiny.minutes_per_epoch == 1.0  # floor for tiny models
    assert est.per_model["Llama-3-Tiny-Instruct"].eval_minutes.value == 1.0
    d, runs, out, limited = plan(tmp_path, [parse_log(LOG_1B)], evaluation={"limit": 10})
    d, runs, out, full = plan(tmp_path, [parse_log(LOG_1B)])
    assert limited.per_model[M1].eval_minutes.value < full.per_model[M1].eval_minutes.value


def test_missing_train_count_is_an_error(tmp_path: Path) -> None:
    d, runs = design(tmp_path)
    with pytest.raises(ValueError, match="train split"):
        estimate_plan(d, runs, {}, TESTS, [])


def test_scan_result_accepted_same_model_preferred_and_notes(tmp_path: Path) -> None:
    from tasks.training._prior_logs import scan_prior_runs

    log_8b = FIXTURES.parent / "old_attempts" / "Llama-3.1-8B-Instruct_rank8" / "slurm-4790001.out"
    scan = scan_prior_runs([FIXTURES.parent, tmp_path / "gone"])
    d, runs, out, est = plan(tmp_path, scan, models=[M8])  # type: ignore[arg-type]
    e8 = est.per_model[M8]
    # the unfinished 8B log is the same model: its speed beats scaling a finished 1B/3B run
    assert e8.speed_it_s.source == f"prior log {log_8b}"
    assert e8.speed_it_s.value == pytest.approx(2 / 7, abs=1e-4)
    # it has no memory figure: the nearest size with one (3B) is scaled: 21.74 x 5/2.5 at batch 8
    assert e8.peak_memory_gib.source == f"scaled from {M3} prior log {LOG_3B}"
    assert e8.peak_memory_gib.value == pytest.approx(21.74 * 2, rel=1e-3)
    assert e8.batch_size.value == 2  # 80 / 5.435 x 0.7 = 10.3, / 2.81 (packed now) = 3.7
    assert any(str(tmp_path / "gone") in n for n in est.notes)
    assert any("did not finish" in n for n in est.notes)


def _sweepflow_prior(tmp_path: Path, drop_save_times: bool = False) -> Path:
    """The 1B fixture log as a sweepflow run group's fine-tune whose job took 150 s (its runs_status.yaml)."""
    import shutil

    group = tmp_path / "prior_group"
    run_dir = group / "Llama-3.2-1B-Instruct_5L_rank64"
    shutil.copytree(LOG_1B.parent, run_dir)
    log = run_dir / "slurm-4812345.out"
    if drop_save_times:  # a log without the recipe's save timing (other recipes, older torchtune)
        log.write_text("".join(line for line in log.read_text().splitlines(keepends=True)
                               if "Checkpoint saved in" not in line))
    (group / "runs_status.yaml").write_text(
        "run_group: prior_group\nruns:\n  Llama-3.2-1B-Instruct_5L_rank64:\n    finetune:\n      status: completed\n"
        "      job_id: '4812345'\n      attempts:\n      - job_id: '4812345'\n        slurm_state: COMPLETED\n"
        "        elapsed_s: 150.0\n    evaluations: {}\n"
    )
    return log


def test_start_up_and_checkpoint_saves_are_measured_apart(tmp_path: Path) -> None:
    """Job elapsed (150 s) - bars (84 s) = 66 s outside training: 2 saves the log timed (6.41 s, 7.41 s) and
    52.2 s of start-up, which a run pays once per job, not once per epoch.
    """
    prior = parse_log(_sweepflow_prior(tmp_path))
    assert (prior.train_elapsed_s, prior.job_elapsed_s, prior.overhead_s) == (84.0, 150.0, 66.0)
    assert (prior.save_s, prior.epoch_end_s, prior.startup_s) == (6.91, 6.91, 52.2)

    for epochs in (1, 4):
        _, _, _, est = plan(tmp_path, [prior], models=[M1], training={"epochs": epochs})
        r1 = est.runs[f"{M1}_rank4"]
        train_s = TRAIN / (prior.speed_it_s * 4 * prior.packing_density)
        assert r1.minutes_per_epoch == pytest.approx((train_s + 6.91) / 60, rel=1e-3)
        assert r1.train_minutes == pytest.approx(epochs * (train_s + 6.91) / 60 + 52.2 / 60, abs=2e-3)
        startup = est.per_model[M1].startup_minutes
        assert startup is not None and startup.value == pytest.approx(52.2 / 60, abs=1e-3)
        assert startup.source.startswith(f"prior log {prior.log_path}")


def test_time_outside_training_is_spread_over_epochs_when_saves_are_not_timed(tmp_path: Path) -> None:
    """A prior that is a sweepflow run without save timings: its job's elapsed time replaces x1.5, per epoch."""
    prior = parse_log(_sweepflow_prior(tmp_path, drop_save_times=True))
    assert (prior.overhead_s, prior.save_s, prior.startup_s) == (66.0, None, None)

    _, _, _, est = plan(tmp_path, [prior], models=[M1])
    r1 = est.runs[f"{M1}_rank4"]
    train_s = TRAIN / (prior.speed_it_s * 4 * prior.packing_density)
    assert r1.minutes_per_epoch == pytest.approx((train_s + 66.0 / 2) / 60, rel=1e-3)  # 33 s per epoch, not x1.5
    assert any("+ 33 s/epoch outside training (its job's elapsed time)" in n for n in est.notes)
    assert est.per_model[M1].startup_minutes is None

    assert parse_log(LOG_1B).overhead_s is None  # no status file beside it: the x1.5 stays


def test_max_steps_per_epoch_caps_steps_and_training_time(tmp_path: Path) -> None:
    """A run that ends each epoch after N steps (a pilot) is estimated for those N steps only."""
    prior = parse_log(LOG_1B)
    _, _, _, full = plan(tmp_path, [prior], models=[M1], training={"batch_size": 4})
    _, _, _, capped = plan(tmp_path, [prior], models=[M1], training={"batch_size": 4, "max_steps_per_epoch": 10})
    f, c = full.runs[f"{M1}_rank4"], capped.runs[f"{M1}_rank4"]
    assert f.steps_per_epoch > 10 and c.steps_per_epoch == 10
    assert c.minutes_per_epoch < f.minutes_per_epoch / 10


def test_a_pilots_log_is_preferred_and_named_as_pilot_measured(tmp_path: Path) -> None:
    """Of logs of the same model, the pilot's (`<name>-pilot_<date>/<run>/`) wins over older ones and over
    unfinished newer ones, and its source says so; a finished run logged after it (the sweep it planned) wins.
    """
    import shutil

    pilot_group = tmp_path / "out" / "exp-pilot-0a1b2c_2026-12-03"
    shutil.copytree(LOG_1B.parent, pilot_group / "Llama-3.2-1B-Instruct_rank4")
    (pilot_group / "experiment.yaml").write_text("run_group: exp-pilot-0a1b2c_2026-12-03\n")
    pilot_log = parse_log(pilot_group / "Llama-3.2-1B-Instruct_rank4" / LOG_1B.name)
    older = parse_log(LOG_1B).model_copy(update={"modified": (pilot_log.modified or 0) - 100})
    assert pilot_log.pilot and not older.pilot and older.completed
    _, _, _, est = plan(tmp_path, [older, pilot_log], models=[M1])
    assert est.per_model[M1].speed_it_s.source == f"measured by pilot: prior log {pilot_log.log_path}"
    assert est.per_model[M1].checkpoint_gib_per_epoch.source.startswith("measured by pilot:")

    running = older.model_copy(update={"modified": (pilot_log.modified or 0) + 100, "completed": False})
    _, _, _, est = plan(tmp_path, [running, pilot_log], models=[M1])
    assert est.per_model[M1].speed_it_s.source.startswith("measured by pilot:")

    sweep = older.model_copy(update={"modified": (pilot_log.modified or 0) + 100})  # finished after the pilot
    _, _, _, est = plan(tmp_path, [sweep, pilot_log], models=[M1])
    assert est.per_model[M1].speed_it_s.source == f"prior log {sweep.log_path}"



def test_a_pilots_log_scaled_to_another_model_is_kind_scaled_and_said_preliminary(tmp_path: Path) -> None:
    """A pilot's 1B log carried to an 8B model is a scaled figure: typed so, not read off its source text.

    Before figures had a kind, the "figures scaled by model size" note looked for sources starting
    "scaled from ", and a pilot's ("measured by pilot: scaled from ...") never did: the 8B model's
    numbers were approved without the warning that they are preliminary.
    """
    import shutil

    pilot_group = tmp_path / "out" / "exp-pilot-0a1b2c_2026-12-03"
    shutil.copytree(LOG_1B.parent, pilot_group / "Llama-3.2-1B-Instruct_rank4")
    (pilot_group / "experiment.yaml").write_text("run_group: exp-pilot-0a1b2c_2026-12-03\n")
    pilot_log = parse_log(pilot_group / "Llama-3.2-1B-Instruct_rank4" / LOG_1B.name)
    _, _, _, est = plan(tmp_path, [pilot_log], models=[M1, M8])
    e1, e8 = est.per_model[M1], est.per_model[M8]
    assert (e1.speed_it_s.kind, e1.speed_it_s.by_pilot) == ("measured", True)
    for figure in (e8.speed_it_s, e8.batch_size, e8.peak_memory_gib, e8.checkpoint_gib_per_epoch):
        assert figure is not None and (figure.kind, figure.by_pilot) == ("scaled", True), figure
    assert e8.speed_it_s.source.startswith("measured by pilot: scaled from ")
    scaled_notes = [n for n in est.notes if n.startswith(f"{M8}: figures scaled by model size")]
    assert scaled_notes and "measured by pilot" not in scaled_notes[0], est.notes
    assert not any(n.startswith(f"{M1}: figures scaled") for n in est.notes)

def test_periodic_validation_passes_are_counted_per_epoch() -> None:
    from tasks.planning._formulas import periodic_validation_passes

    # global steps 1..712 and 713..1424, a pass at each multiple of 100 but an epoch's last step
    assert periodic_validation_passes(712, 100, 2) == pytest.approx((7 + 7) / 2)
    assert periodic_validation_passes(200, 100, 2) == pytest.approx((1 + 1) / 2)  # 200 and 400 are epoch ends
    assert periodic_validation_passes(712, None, 2) == 0.0


def test_a_sweep_validating_every_n_steps_pays_each_pass(tmp_path: Path) -> None:
    """The prior timed a validation pass (8 s); a 20-step pilot ran none of the sweep's periodic passes, so the
    estimate adds them: every 100 steps of a ~178-step epoch, plus the epoch-end one.
    """
    prior = parse_log(_sweepflow_prior(tmp_path)).model_copy(update={"validation_s": 8.0})
    common = {"batch_size": 4, "validation": True}
    _, _, _, end_only = plan(tmp_path, [prior], models=[M1], training=common)
    _, _, _, every = plan(tmp_path, [prior], models=[M1], training={**common, "validate_every_n_steps": 100})
    e, p = end_only.runs[f"{M1}_rank4"], every.runs[f"{M1}_rank4"]
    assert e.steps_per_epoch == p.steps_per_epoch
    from tasks.planning._formulas import periodic_validation_passes
    passes = periodic_validation_passes(p.steps_per_epoch, 100, 2)
    assert passes >= 1
    assert p.minutes_per_epoch - e.minutes_per_epoch == pytest.approx(passes * 8.0 / 60, abs=2e-3)


def test_a_capped_pilots_packing_density_plans_the_sweeps_whole_epochs(tmp_path: Path) -> None:
    """A pilot ended after 20 of its 178 steps (max_steps_per_epoch): the sweep's steps per epoch come out as
    from the full log of the same run, not 9x fewer (density 2000 / (20 x 4) = 25).
    """
    import shutil

    from tests.training.test_prior_logs import _as_pilot

    pilot_run = tmp_path / "out" / "exp-pilot-0a1b2c_2026-12-03" / "Llama-3.2-1B-Instruct_rank4"
    shutil.copytree(LOG_1B.parent, pilot_run)
    (pilot_run.parent / "experiment.yaml").write_text("run_group: exp-pilot-0a1b2c_2026-12-03\n")
    log = pilot_run / LOG_1B.name
    log.write_text(_as_pilot(epoch_length_line=True), encoding="utf-8")
    pilot = parse_log(log)
    assert pilot.pilot and pilot.steps_per_epoch == 20
    _, _, _, from_full = plan(tmp_path, [parse_log(LOG_1B)], models=[M1], training={"batch_size": 4})
    _, _, _, from_pilot = plan(tmp_path, [pilot], models=[M1], training={"batch_size": 4})
    full, piloted = from_full.runs[f"{M1}_rank4"], from_pilot.runs[f"{M1}_rank4"]
    assert piloted.steps_per_epoch == full.steps_per_epoch
    assert from_pilot.per_model[M1].packing_density.source.startswith("measured by pilot:")
    assert piloted.minutes_per_epoch == pytest.approx(full.minutes_per_epoch, rel=0.25)


def test_a_multi_gpu_run_counts_steps_per_rank_and_scales_throughput(tmp_path: Path) -> None:
    """4 GPUs (the distributed recipe): each rank's bar has a quarter of the steps; from a 1-GPU prior the
    epoch takes a quarter of the time (linear scaling, an upper bound on speed, and the source says so).
    """
    prior = parse_log(LOG_1B)
    _, _, _, one = plan(tmp_path, [prior], models=[M1], training={"batch_size": 4})
    _, _, _, four = plan(tmp_path, [prior], models=[M1], training={"batch_size": 4},
                         gpu={"count": 4, "memory_gb": 80, "available": 4})
    r1, r4 = one.runs[f"{M1}_rank4"], four.runs[f"{M1}_rank4"]
    assert r4.steps_per_epoch == math.ceil(r1.steps_per_epoch / 4)
    assert r4.minutes_per_epoch == pytest.approx(r1.minutes_per_epoch / 4, rel=0.02)
    assert "x4 for 4 GPU(s), it ran on 1 (linear: an upper bound)" in four.per_model[M1].speed_it_s.source
    assert r4.gpu_hours == pytest.approx(r1.gpu_hours, rel=0.05)  # 4 GPUs for a quarter of the time
