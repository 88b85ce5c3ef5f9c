"""Resource estimates for a plan: batch sizes, training and evaluation time, GPU-hours, disk, scenarios.

Reads: nothing (pure): the design, its expanded runs, split counts, and prior runs parsed by
`tasks.training.prior_logs`. Writes: nothing. `estimate_plan` returns the runs with every "auto" batch
size filled in, and `Estimates` in which every `Figure` names where its number came from:
`prior log <path>`, `scaled from <model> prior log <path>`, `design`, or `default, preliminary`.

Formulas are the seed's ("Resource Estimation" ... "Disk Space Estimation"), with two choices
made explicit: training keeps the prior run's *samples per second* constant when the batch size
changes (more conservative than the seed's constant it/s), and every training time is multiplied
by `OVERHEAD` for validation, checkpointing and start-up.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tasks.model.design import ExperimentDesign
from tasks.model.plan import DiskEstimate, Estimates, Figure, ModelEstimate, Run, RunEstimate, Scenario
from tasks.training.prior_logs import PriorRun, PriorScan
from tasks.training.registry import lookup

DEFAULT = "default, preliminary"
DESIGN = "design"

MEMORY_SAFETY = 0.7  # seed: "Conservative max (70% utilization)"
MAX_BATCH = 64  # no estimate goes above this, however much memory is free
OVERHEAD = 1.5  # cruijff_kit's safety factor on training time (REFERENCE.md §1): validation, checkpoints, start-up
INFERENCE_SPEEDUP = 2.5  # seed: "Inference_speed = training_speed × 2.5 (middle of 2-3x range)"
EVAL_OVERHEAD_MIN = 1.0  # seed: model loading ~30 s + result logging ~10 s, "~1 minute per evaluation"
EVAL_LOG_GIB = 0.01  # seed: inspect logs ~10 MB per evaluation ("20 evals × 0.01 GiB")
DISK_MARGIN = 0.15  # seed: "Safety margin (15%)"
DEFAULT_PACKING_DENSITY = 2.8  # seed's worked example (examples per packed sequence) when no log shows one
ADAPTER_ONLY_GIB = 0.1  # adapter-only saves: LoRA weights only, "<100 MB for rank 64" (seed)
MIN_EPOCH_MINUTES = 1.0  # floor for tiny models' default epoch time

# (params in billions, factor) anchors; interpolated linearly by params, proportional outside the range.
MEMORY_SCALE = ((1.24, 1.0), (3.21, 2.5), (7.0, 4.5), (8.03, 5.0))  # seed: "3B ~2-3x memory of 1B, 7B ~4-5x"
SPEED_SCALE = ((1.24, 1.0), (3.21, 2.0), (7.0, 4.5), (8.03, 5.5))  # seed: "3B ~2x slower, 7B 4-5x, 8B 5-6x"
CHECKPOINT_GIB = ((1.24, 2.4), (3.21, 6.2), (8.03, 16.0), (70.6, 142.0))  # seed's checkpoint sizes with LoRA

# Seed, "If no GPU memory data available": conservative ends of its ranges.
# (packed, GPU class GB) -> (1B, 3B, 7B+) batch sizes
DEFAULT_BATCH = {
    (True, 80): (4, 2, 2), (True, 40): (2, 2, 1), (True, 32): (1, 1, 1),
    (False, 80): (16, 8, 4), (False, 40): (8, 4, 2), (False, 32): (2, 1, 1),
}
DEFAULT_EPOCH_MINUTES = (45.0, 90.0, 240.0)  # seed: 1B "30-60 min", 3B "1-2 hours", 7B+ "3-5 hours" per epoch
# seed: 1B 2-3, 3B 4-5, 7B 8-10, 70B 20-30
DEFAULT_EVAL_MINUTES = ((2.0, 2.5), (5.0, 4.5), (20.0, 9.0), (math.inf, 25.0))


class _Calc(NamedTuple):
    batch: Figure
    density: Figure
    steps: int
    minutes_per_epoch: Figure
    eval_it_s: Figure | None  # training it/s at the run's batch size, unpacked (what inference is scaled from)
    job_minutes: list[float]
    peak: Figure | None
    speed: Figure
    speed_prior: PriorRun | None


def _interp(anchors: tuple[tuple[float, float], ...], params_b: float) -> float:
    (p0, v0), (pn, vn) = anchors[0], anchors[-1]
    if params_b <= p0:
        return v0 * params_b / p0
    if params_b >= pn:
        return vn * params_b / pn
    for (pa, va), (pb, vb) in itertools.pairwise(anchors):
        if pa <= params_b <= pb:
            return va + (vb - va) * (params_b - pa) / (pb - pa)
    return vn


def _params(model: str | None) -> float | None:
    spec = lookup(model) if model else None
    return spec.params_b if spec else None


def scale(anchors: tuple[tuple[float, float], ...], to_model: str, from_model: str) -> float:
    """How much more memory / time / disk `to_model` needs than `from_model` (1.0 if unknown)."""
    to_p, from_p = _params(to_model), _params(from_model)
    return _interp(anchors, to_p) / _interp(anchors, from_p) if to_p and from_p else 1.0


def power_of_two_floor(value: float, cap: int = MAX_BATCH) -> int:
    """The largest power of two not above `value`: at least 1, at most `cap`."""
    if value < 1:
        return 1
    return min(cap, 2 ** math.floor(math.log2(value) + 1e-9))


def batch_from_memory(
    gpu_gib: float, peak_gib: float, prior_batch: int, density_divisor: float = 1.0
) -> tuple[int, float]:
    """Seed: headroom = GPU ÷ memory per sample; × 0.7; ÷ packing density; floor to a power of two."""
    per_sample = peak_gib / max(prior_batch, 1)
    raw = gpu_gib / per_sample * MEMORY_SAFETY / density_divisor
    return power_of_two_floor(raw), raw


def eval_job_minutes(test_samples: int, batch_size: int, train_it_s: float) -> float:
    """Seed: steps = test ÷ batch; inference speed = training speed × 2.5; + 1 minute overhead."""
    steps = math.ceil(test_samples / max(batch_size, 1))
    return steps / (train_it_s * INFERENCE_SPEEDUP) / 60.0 + EVAL_OVERHEAD_MIN


def _size_class(params_b: float) -> int:
    return 0 if params_b < 2 else (1 if params_b < 5 else 2)


def default_batch(params_b: float, packed: bool, gpu_gb: float) -> int:
    """The seed's conservative batch size for this model size, packing and GPU memory class."""
    gpu_class = 80 if gpu_gb >= 80 else (40 if gpu_gb >= 40 else 32)
    return DEFAULT_BATCH[(packed, gpu_class)][_size_class(params_b)]


def default_epoch_minutes(params_b: float) -> float:
    """Seed defaults per epoch (overhead included); tiny models scale down by params, 70B up by params."""
    if params_b < 1.0:
        return max(MIN_EPOCH_MINUTES, DEFAULT_EPOCH_MINUTES[0] * params_b / 1.24)
    base = DEFAULT_EPOCH_MINUTES[_size_class(params_b)]
    return base * max(1.0, params_b / 8.03) if params_b >= 5 else base


def default_eval_minutes(params_b: float) -> float:
    """Seed defaults per evaluation job by model size; tiny models scale down by params."""
    if params_b < 1.0:
        return max(EVAL_OVERHEAD_MIN, DEFAULT_EVAL_MINUTES[0][1] * params_b / 1.24)
    return next(minutes for limit, minutes in DEFAULT_EVAL_MINUTES if params_b < limit)


def _r(value: float) -> float:
    return float(f"{value:.4g}")


def _choose(priors: list[PriorRun], model: str, packed: bool, dataset: Path | None,
            has: Callable[[PriorRun], bool]) -> tuple[PriorRun | None, bool]:
    """The most relevant prior having a figure: same model first, else the nearest size in the registry."""
    usable = [p for p in priors if has(p) and not p.oom and p.model]
    target = _params(model)

    def key(p: PriorRun) -> tuple:
        same = p.model == model
        prior_p = _params(p.model)
        distance = 0.0 if same else (abs(math.log(prior_p / target)) if prior_p and target else math.inf)
        same_data = bool(dataset and p.dataset and Path(p.dataset).name == dataset.name)
        return (distance, p.packed != packed, not same_data, not p.completed, -(p.modified or 0.0), str(p.log_path))

    ranked = sorted((p for p in usable if p.model == model or (_params(p.model) and target)), key=key)
    if not ranked:
        return None, False
    return ranked[0], ranked[0].model == model


def _source(prior: PriorRun, same: bool) -> str:
    return f"prior log {prior.log_path}" if same else f"scaled from {prior.model} prior log {prior.log_path}"


def _calc_run(run: Run, design: ExperimentDesign, samples: int, test_samples: dict[str, int],
              priors: list[PriorRun], notes: list[str]) -> _Calc:
    p, model = run.params, run.model
    params_b = _params(model) or 1.24
    gpu = design.gpu
    data = Path(p.dataset.path)

    if not p.packed:
        density = Figure(value=1.0, source=DESIGN)
    else:
        dp, _ = _choose(priors, model, True, data, lambda q: bool(q.packed and q.packing_density))
        density = Figure(value=dp.packing_density, source=f"prior log {dp.log_path}") if dp and dp.packing_density \
            else Figure(value=DEFAULT_PACKING_DENSITY, source=DEFAULT)

    mp, m_same = _choose(priors, model, p.packed, data, lambda q: bool(q.peak_memory_gib and q.batch_size))
    peak: Figure | None = None
    if mp and mp.peak_memory_gib and mp.batch_size:
        ratio = 1.0 if m_same else scale(MEMORY_SCALE, model, mp.model or model)
        peak = Figure(value=_r(mp.peak_memory_gib * ratio), source=_source(mp, m_same))
    if p.batch_size is not None:
        batch = Figure(value=p.batch_size, source=DESIGN)
    elif mp and peak and mp.batch_size:
        divisor = 1.0
        if p.packed and not mp.packed:
            divisor = density.value
        elif not p.packed and mp.packed:
            divisor = 1.0 / (mp.packing_density or DEFAULT_PACKING_DENSITY)
        value, _ = batch_from_memory(gpu.memory_gb, peak.value, mp.batch_size, divisor)
        batch = Figure(value=value, source=peak.source)
        if not mp.memory_during_training:
            notes.append(f"{model}: {mp.log_path} shows GPU memory after model init only (log_peak_memory_stats off), "
                         f"so memory per sample is under-stated and batch size {value} may be optimistic.")
    else:
        batch = Figure(value=default_batch(params_b, p.packed, gpu.memory_gb), source=DEFAULT)
    bs, ga = int(batch.value), p.gradient_accumulation_steps
    steps = math.ceil(samples / density.value / (bs * ga)) if samples else 0

    sp, s_same = _choose(priors, model, p.packed, data, lambda q: bool(q.speed_it_s and q.batch_size))
    eval_it_s: Figure | None = None
    if sp and sp.speed_it_s and sp.batch_size:
        slowdown = 1.0 if s_same else scale(SPEED_SCALE, model, sp.model or model)
        prior_density = sp.packing_density or (density.value if sp.packed else 1.0)
        samples_per_s = sp.speed_it_s * sp.batch_size * (sp.gradient_accumulation_steps or 1) * prior_density / slowdown
        source = _source(sp, s_same)
        speed = Figure(value=_r(sp.speed_it_s / slowdown), source=source)
        minutes = Figure(value=_r(samples / samples_per_s / 60.0 * OVERHEAD), source=source)
        if not s_same and minutes.value < MIN_EPOCH_MINUTES:  # scaling down by params has no floor of its own
            minutes = Figure(value=MIN_EPOCH_MINUTES, source=source)
        eval_it_s = Figure(value=samples_per_s / bs, source=source)
        if not sp.completed:
            notes.append(f"{model}: training speed comes from {sp.log_path}, a run that did not finish; "
                         "treat it as preliminary.")
    else:
        minutes = Figure(value=_r(default_epoch_minutes(params_b)), source=DEFAULT)
        speed = Figure(value=_r(steps / (minutes.value * 60.0)) if steps else 0.0, source=DEFAULT)

    job_minutes: list[float] = []
    limit = design.evaluation.limit
    for job in run.evaluations:
        n = test_samples.get(job.task)
        if eval_it_s is not None and n is not None:
            job_minutes.append(eval_job_minutes(min(n, limit) if limit else n, bs, eval_it_s.value))
        else:
            job_minutes.append(default_eval_minutes(params_b))
            if eval_it_s is not None:
                notes.append(f"{run.name}: no test sample count for task {job.task}; "
                             "its evaluation time is the seed's default.")
    return _Calc(batch, density, steps, minutes, eval_it_s, job_minutes, peak, speed, sp)


def _checkpoint_figure(model: str, adapter_only: bool, priors: list[PriorRun]) -> Figure:
    def fits(q: PriorRun) -> bool:
        return bool(q.checkpoint_gib_per_epoch) and bool(q.save_adapter_weights_only) == adapter_only

    cp, same = _choose(priors, model, True, None, fits)
    if cp and cp.checkpoint_gib_per_epoch:
        ratio = 1.0 if same else scale(CHECKPOINT_GIB, model, cp.model or model)
        return Figure(value=cp.checkpoint_gib_per_epoch * ratio, source=_source(cp, same))
    if adapter_only:
        return Figure(value=ADAPTER_ONLY_GIB, source=DEFAULT)
    return Figure(value=_r(_interp(CHECKPOINT_GIB, _params(model) or 1.24)), source=DEFAULT)


def disk_estimate(checkpoints_by_model: dict[str, float], eval_jobs: int) -> DiskEstimate:
    """Seed: checkpoints + 10 MB per evaluation log, + 15 % margin."""
    checkpoints = sum(checkpoints_by_model.values())
    logs = eval_jobs * EVAL_LOG_GIB
    margin = (checkpoints + logs) * DISK_MARGIN
    return DiskEstimate(checkpoints_gib=checkpoints, eval_logs_gib=logs, margin_gib=margin,
                        total_gib=checkpoints + logs + margin, per_model_gib=dict(checkpoints_by_model))


def scenarios(
    train_minutes: list[float], eval_job_minutes_: list[float], gpus_per_job: int, available: int
) -> list[Scenario]:
    """Parallel (everything at once), sequential (one job at a time), mixed (`available` GPUs, in batches)."""
    longest_t = max(train_minutes, default=0.0)
    longest_e = max(eval_job_minutes_, default=0.0)
    n_t, n_e = len(train_minutes), len(eval_job_minutes_)
    slots = max(1, available // gpus_per_job)
    t_batches, e_batches = math.ceil(n_t / slots), math.ceil(n_e / max(available, 1))
    short = " (fewer GPUs available than one job needs)" if available < gpus_per_job else ""

    def batches(n: int) -> str:
        return f"{n} batch" if n == 1 else f"{n} batches"

    return [
        Scenario(
            name="parallel", gpus=max(n_t * gpus_per_job, n_e, 1),
            training_minutes=longest_t, eval_minutes=longest_e,
            detail=f"{n_t} fine-tunes at once (longest {longest_t:.1f} min), "
                   f"then {n_e} evaluations at once (longest {longest_e:.1f} min)",
        ),
        Scenario(
            name="sequential", gpus=gpus_per_job,
            training_minutes=sum(train_minutes), eval_minutes=sum(eval_job_minutes_),
            detail="one job at a time",
        ),
        Scenario(
            name="mixed", gpus=available,
            training_minutes=t_batches * longest_t, eval_minutes=e_batches * longest_e,
            detail=f"training: {batches(t_batches)} × {longest_t:.1f} min; "
                   f"evaluations: {batches(e_batches)} × {longest_e:.1f} min{short}",
        ),
    ]


def estimate_plan(design: ExperimentDesign, runs: list[Run], train_samples: dict[Path, int],
                  test_samples: dict[str, int], priors: PriorScan | list[PriorRun]) -> tuple[list[Run], Estimates]:
    """Fill "auto" batch sizes and estimate time, GPU-hours and disk for every run (controls: evaluation only).

    `train_samples`: dataset path -> train split size; `test_samples`: task -> test samples;
    `priors`: a `scan_prior_runs` result (its missing folders become notes) or its runs.
    """
    notes: list[str] = []
    if isinstance(priors, PriorScan):
        notes += [f"Prior-run folder {p} does not exist; nothing was read from it." for p in priors.missing]
        priors = priors.runs
    for prior in priors:
        if prior.model is None or not (prior.speed_it_s or prior.peak_memory_gib or prior.checkpoint_gib_per_epoch):
            notes.append(f"Prior log {prior.log_path} was not usable: "
                         f"{'; '.join(prior.problems) or 'nothing recognised'}.")
    calcs: dict[str, _Calc] = {}
    for run in runs:
        path = Path(run.params.dataset.path)
        if path not in train_samples:
            raise ValueError(f"no train split count for {path} (run {run.name})")
        calcs[run.name] = _calc_run(run, design, train_samples[path], test_samples, priors, notes)

    out_runs = [
        r if r.params.batch_size is not None
        else r.model_copy(update={"params": r.params.model_copy(update={"batch_size": int(calcs[r.name].batch.value)})})
        for r in runs
    ]
    checkpoint = {
        m: _checkpoint_figure(m, any(r.params.save_adapter_weights_only for r in runs if r.model == m), priors)
        for m in dict.fromkeys(r.model for r in runs)
    }

    run_estimates: dict[str, RunEstimate] = {}
    per_model_disk: dict[str, float] = {m: 0.0 for m in checkpoint}
    train_list: list[float] = []
    eval_list: list[float] = []
    for run in runs:
        c = calcs[run.name]
        is_ft = not run.is_control
        train = c.minutes_per_epoch.value * run.params.epochs if is_ft else 0.0
        ckpt = checkpoint[run.model].value * run.params.epochs if is_ft else 0.0
        per_model_disk[run.model] += ckpt
        eval_total = sum(c.job_minutes)
        if is_ft:
            train_list.append(train)
        eval_list += c.job_minutes
        run_estimates[run.name] = RunEstimate(
            run=run.name, model=run.model, batch_size=int(c.batch.value), steps_per_epoch=c.steps if is_ft else 0,
            minutes_per_epoch=c.minutes_per_epoch.value if is_ft else 0.0, train_minutes=_r(train),
            eval_jobs=len(run.evaluations), eval_minutes=_r(eval_total),
            gpu_hours=_r((train * design.gpu.count + eval_total) / 60.0),
            disk_gib=_r(ckpt + len(run.evaluations) * EVAL_LOG_GIB))

    per_model: dict[str, ModelEstimate] = {}
    for model in checkpoint:
        mine = [r for r in runs if r.model == model]
        rep = next((r for r in mine if not r.is_control), mine[0])
        c = calcs[rep.name]
        job_max = max((m for r in mine for m in calcs[r.name].job_minutes), default=0.0)
        eval_source = c.eval_it_s.source if c.eval_it_s else DEFAULT
        sp = c.speed_prior
        per_model[model] = ModelEstimate(
            model=model, batch_size=c.batch, packing_density=c.density, peak_memory_gib=c.peak, speed_it_s=c.speed,
            prior_samples=sp.samples if sp else None, prior_batch_size=sp.batch_size if sp else None,
            checkpoint_gib_per_epoch=checkpoint[model], eval_minutes=Figure(value=_r(job_max), source=eval_source))
        notes += _model_notes(per_model[model], design)

    disk = disk_estimate(per_model_disk, len(eval_list))
    if not any(
        f.source != DEFAULT
        for m in per_model.values()
        for f in (m.batch_size, m.speed_it_s, m.checkpoint_gib_per_epoch)
    ):
        notes.insert(0, "No usable prior run log was found: every time, memory and disk figure is the seed's default "
                        "and preliminary; run one epoch of one job first and re-plan with its log.")
    notes.append(f"Training time keeps the prior run's samples per second and adds ×{OVERHEAD} for validation, "
                 f"checkpointing and start-up; evaluation assumes inference {INFERENCE_SPEEDUP}× training speed "
                 f"plus {EVAL_OVERHEAD_MIN:.0f} min per job; disk adds a {DISK_MARGIN:.0%} margin.")
    estimates = Estimates(
        per_model=per_model, runs=run_estimates,
        training_gpu_hours=_r(sum(train_list) * design.gpu.count / 60.0), eval_gpu_hours=_r(sum(eval_list) / 60.0),
        training_minutes_sequential=_r(sum(train_list)), eval_minutes_sequential=_r(sum(eval_list)),
        disk=disk, scenarios=scenarios(train_list, eval_list, design.gpu.count, design.gpu.available),
        notes=list(dict.fromkeys(notes)))  # the same note can arise once per run
    return out_runs, estimates


def _model_notes(m: ModelEstimate, design: ExperimentDesign) -> list[str]:
    notes: list[str] = []
    figures = {"batch size": m.batch_size, "packing density": m.packing_density, "training speed": m.speed_it_s,
               "checkpoint size": m.checkpoint_gib_per_epoch, "evaluation time": m.eval_minutes}
    defaults = [name for name, f in figures.items() if f.source == DEFAULT]
    scaled = sorted({
        f.source.removeprefix("scaled from ") for f in figures.values() if f.source.startswith("scaled from ")
    })
    if defaults:
        notes.append(f"{m.model}: {', '.join(defaults)} use the seed's defaults (no usable prior log) "
                     "and are preliminary.")
    if m.batch_size.source == DEFAULT:
        notes.append(f"{m.model}: batch size {int(m.batch_size.value)} is the seed's conservative value for a "
                     f"{design.gpu.memory_gb:g} GB GPU; watch the first job's memory and scale up if it allows.")
    for source in scaled:
        notes.append(f"{m.model}: figures scaled by model size from {source}; "
                     f"preliminary until a {m.model} run is logged.")
    return notes
