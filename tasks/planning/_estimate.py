"""Resource estimates for a plan: batch sizes, training and evaluation time, GPU-hours, disk, scenarios.

Reads: nothing (pure): the design, its expanded runs, split counts, and prior runs parsed by
`tasks.training._prior_logs`. Writes: nothing. `estimate_plan` returns the runs with every "auto" batch
size filled in, and `Estimates` in which every `Figure` names where its number came from:
`prior log <path>`, `scaled from <model> prior log <path>`, `design`, or `default, preliminary`.

Formulas are the seed's ("Resource Estimation" ... "Disk Space Estimation"), with these choices
made explicit: training keeps the prior run's *samples per second* constant when the batch size
changes (more conservative than the seed's constant it/s); time outside training is the prior's own
(start-up once per job, checkpoint save and validation per epoch, from its log's timings and its
job's elapsed time), else `OVERHEAD` x training; a model with no log of its own is scaled from the
nearest size by an exponent fitted on the project's runs of two sizes (`tasks.planning._calibration`),
else by the seed's table. A pilot's figures (`measured by pilot: ...`) are preferred.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tasks.model._design import ExperimentDesign
from tasks.model._plan import Estimates, Figure, ModelEstimate, Run, RunEstimate
from tasks.planning._calibration import fit_speed_exponent
from tasks.planning._checkpoint_disk import checkpoint_figure
from tasks.planning._formulas import (
    DEFAULT_PACKING_DENSITY,
    DISK_MARGIN,
    EVAL_LOAD_MIN,
    EVAL_LOG_GIB,
    EVAL_OVERHEAD_MIN,
    INFERENCE_SPEEDUP,
    MEMORY_SCALE,
    MIN_EPOCH_MINUTES,
    OVERHEAD,
    PILOT,
    SPEED_SCALE,
    _params,
    _r,
    batch_from_memory,
    checkpoint_job_minutes,
    default_batch,
    default_epoch_minutes,
    default_eval_minutes,
    default_figure,
    design_figure,
    disk_estimate,
    eval_job_minutes,
    measured_figure,
    periodic_validation_passes,
    scale,
    scenarios,
)
from tasks.planning._prior_evals import PriorEval, eval_minutes_from_priors
from tasks.training._checkpoint_size import CheckpointSize
from tasks.training._data_tokens import DataTokens
from tasks.training._prior_logs import PriorRun, PriorScan


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
    eval_source: Figure | None = None  # set when earlier evaluation jobs measured the evaluation time
    startup: Figure | None = None  # minutes per job before the first step and after the last save, when measured


def _choose(priors: list[PriorRun], model: str, packed: bool, dataset: Path | None,
            has: Callable[[PriorRun], bool]) -> tuple[PriorRun | None, bool]:
    """The most relevant prior having a figure: same model first, else the nearest size in the registry."""
    usable = [p for p in priors if has(p) and not p.oom and p.model]
    target = _params(model)
    newest_pilot = {p.model: p.modified or 0.0 for p in sorted(usable, key=lambda q: q.modified or 0.0) if p.pilot}

    def key(p: PriorRun) -> tuple:
        same = p.model == model
        prior_p = _params(p.model)
        distance = 0.0 if same else (abs(math.log(prior_p / target)) if prior_p and target else math.inf)
        same_data = bool(dataset and p.dataset and Path(p.dataset).name == dataset.name)
        # a pilot outranks older logs; a finished run logged after it (the sweep it planned) ranks with it
        after_pilot = p.completed and p.model in newest_pilot and (p.modified or 0.0) > newest_pilot[p.model]
        return (distance, p.packed != packed, not same_data, not (p.pilot or after_pilot), not p.completed,
                -(p.modified or 0.0), str(p.log_path))

    ranked = sorted((p for p in usable if p.model == model or (_params(p.model) and target)), key=key)
    if not ranked:
        return None, False
    return ranked[0], ranked[0].model == model


def _prior_figure(value: float, prior: PriorRun, same: bool, detail: str = "") -> Figure:
    """A figure from `prior`'s log: measured on this model (`same`), else scaled from the prior's model.

    `detail` says more about how the value was derived from the log.
    """
    source = f"prior log {prior.log_path}" if same else f"scaled from {prior.model} prior log {prior.log_path}"
    return measured_figure(value, source + detail, same, prior.pilot)


def _density_figure(run: Run, priors: list[PriorRun]) -> Figure:
    """Samples per packed sequence: 1 unpacked, else a prior log's, else the seed's default."""
    if not run.params.packed:
        return design_figure(1.0)
    data = Path(run.params.dataset.path)
    dp, _ = _choose(priors, run.model, True, data, lambda q: bool(q.packed and q.packing_density))
    if dp and dp.packing_density:
        return _prior_figure(dp.packing_density, dp, True)
    return default_figure(DEFAULT_PACKING_DENSITY)


def _tokens_density(run: Run, tokens: DataTokens) -> Figure:
    """Samples per packed sequence of this very data, tokenized and packed as torchtune will (1 unpacked)."""
    what = (f"tokenized: {tokens.samples} samples, {tokens.tokens:,} tokens ({tokens.mean_tokens:.1f} per sample) "
            f"by {tokens.tokenizer}")
    if not run.params.packed:
        return design_figure(1.0, f" (unpacked); {what}")
    return Figure(value=round(tokens.samples_per_pack, 4), kind="computed",
                  source=f"{what}, packed into {tokens.packs} sequences of {tokens.max_seq_len} tokens")


def _eval_minutes(run: Run, design: ExperimentDesign, test_samples: dict[str, int], batch: int,
                  eval_it_s: Figure | None, params_b: float, notes: list[str]) -> list[float]:
    """Minutes of each of the run's evaluation jobs (the seed's default where no speed or count is known)."""
    job_minutes: list[float] = []
    limit = design.evaluation.limit
    for job in run.evaluations:
        n = test_samples.get(job.task)
        if eval_it_s is not None and n is not None:
            job_minutes.append(eval_job_minutes(min(n, limit) if limit else n, batch, eval_it_s.value))
        else:
            job_minutes.append(default_eval_minutes(params_b))
            if eval_it_s is not None:
                notes.append(f"{run.name}: no test sample count for task {job.task}; "
                             "its evaluation time is the seed's default.")
    return job_minutes


def _epoch_minutes(train_s: float, prior: PriorRun, same: bool, speed: Figure,
                   validation_passes: float | None) -> tuple[Figure, Figure | None]:
    """(minutes per epoch, start-up minutes per job): training plus what the prior's job spent outside its bars.

    `validation_passes`: passes per epoch inside its steps (validate_every_n_steps), None without
    validation; each epoch also ends with one. Best: the prior's log timed each checkpoint save (and
    validation pass) and its job's elapsed time is known, so start-up is counted once per job and
    saves once per epoch. Else the job's time outside the bars spread over its epochs; else
    x OVERHEAD (a prior of another model, or no elapsed time). `speed`: the training speed figure
    whose source (and kind) the minutes carry.
    """
    source = speed.source
    periodic_s = (validation_passes or 0.0) * (prior.validation_s or 0.0) if same else 0.0
    periodic = f" + {periodic_s:.0f} s/epoch of {validation_passes:g} validation passes" if periodic_s else ""
    if same and prior.startup_s is not None and prior.save_s is not None:
        per_epoch, what = prior.save_s, "checkpoint save"
        if validation_passes is not None and prior.validation_s is not None:
            per_epoch, what = per_epoch + prior.validation_s, "checkpoint save and validation"
        minutes = speed.model_copy(update={"value": _r((train_s + per_epoch + periodic_s) / 60.0),
                                           "source": f"{source}; + {per_epoch:.0f} s/epoch {what}{periodic}"})
        startup = speed.model_copy(update={
            "value": _r(prior.startup_s / 60.0),
            "source": f"{source}: its job's elapsed time less training and checkpoint saves"})
        return minutes, startup
    if same and prior.overhead_s is not None and prior.epochs_completed:
        per_epoch = prior.overhead_s / prior.epochs_completed
        return speed.model_copy(update={
            "value": _r((train_s + per_epoch + periodic_s) / 60.0),
            "source": f"{source}; + {per_epoch:.0f} s/epoch outside training (its job's elapsed time)" + periodic,
        }), None
    return speed.but(_r(train_s / 60.0 * OVERHEAD)), None


def _slowdown(priors: list[PriorRun], model: str, sp: PriorRun, same: bool, packed: bool,
              data: Path) -> tuple[float, str | None]:
    """How much slower `model` trains than `sp`'s model: 1 (same), fitted on the project's runs, else the seed's."""
    if same:
        return 1.0, None
    fit = fit_speed_exponent(priors, packed, data)
    fitted = fit.slowdown(model, sp.model or model) if fit else None
    if fit and fitted:
        return fitted, fit.describe()
    return scale(SPEED_SCALE, model, sp.model or model), None


class _Timing(NamedTuple):
    prior: PriorRun | None  # None: no prior log had a speed (the caller takes the seed's defaults)
    minutes_per_epoch: Figure
    startup: Figure | None
    speed: Figure
    eval_it_s: Figure | None  # samples per second per batch slot: what inference is scaled from


def _timing(run: Run, priors: list[PriorRun], density: Figure, trained: int, bs: int, steps: int, ranks: int,
            notes: list[str], own_tokens: bool = False) -> _Timing:
    """Speed, minutes per epoch and start-up of a run from the most relevant prior log with a speed.

    `trained`: examples per epoch over all `ranks` (GPUs of a distributed run); `steps`: per rank.
    The prior's bars give examples per second per GPU (a rank's steps of its own batches); throughput
    is taken to grow linearly with GPUs where the prior ran on another count (an upper bound).
    """
    p, model, data = run.params, run.model, Path(run.params.dataset.path)
    sp, s_same = _choose(priors, model, p.packed, data, lambda q: bool(q.speed_it_s and q.batch_size))
    if not (sp and sp.speed_it_s and sp.batch_size):
        none = default_figure(0.0)
        return _Timing(None, none, None, none, None)
    slowdown, fitted = _slowdown(priors, model, sp, s_same, p.packed, data)
    prior_density = sp.packing_density or (density.value if sp.packed else 1.0)
    prior_ranks = sp.ranks or ranks  # a distributed log that does not say: taken as this plan's
    per_gpu = sp.speed_it_s * sp.batch_size * (sp.gradient_accumulation_steps or 1) * prior_density / slowdown
    eval_per_gpu = per_gpu  # inference runs sample by sample: scaled from the prior's own samples per second
    detail = f", by the {fitted}" if fitted else ""
    if own_tokens and p.packed and sp.packed and sp.max_seq_len:
        # the prior's throughput is packs of its max_seq_len per second: converted to this data's packs
        tokens_s = sp.speed_it_s * sp.batch_size * (sp.gradient_accumulation_steps or 1) * sp.max_seq_len / slowdown
        per_gpu = tokens_s / p.max_seq_len * density.value
        detail += (f", as {tokens_s:,.0f} tokens/s per GPU (its packs of {sp.max_seq_len} tokens) over this data's "
                   f"{density.value:.3g} samples per {p.max_seq_len}-token pack")
    elif own_tokens and p.packed:
        notes.append(f"{run.model}: the prior log {sp.log_path} trained unpacked, so its samples per second are "
                     "carried over as they are (not converted by tokens); treat training time as preliminary.")
    samples_per_s = per_gpu * ranks
    if ranks != prior_ranks:
        detail += f", x{ranks / prior_ranks:g} for {ranks} GPU(s), it ran on {prior_ranks} (linear: an upper bound)"
    passes = periodic_validation_passes(steps, p.validate_every_n_steps, p.epochs) if p.validation else None
    speed = _prior_figure(_r(sp.speed_it_s / slowdown), sp, s_same, detail)
    minutes, startup = _epoch_minutes(trained / samples_per_s, sp, s_same, speed, passes)
    if p.validation and s_same and sp.save_s is not None and sp.validation_s is None:
        notes.append(f"{model}: {sp.log_path} ran without validation, so no validation pass is timed; "
                     "the estimate leaves validation time out.")
    if minutes.source != speed.source:
        notes.append(f"{model}: minutes per epoch from {minutes.source}.")
    if not s_same and minutes.value < MIN_EPOCH_MINUTES:  # scaling down by params has no floor of its own
        minutes = speed.but(MIN_EPOCH_MINUTES)
    if not sp.completed:
        notes.append(f"{model}: training speed comes from {sp.log_path}, a run that did not finish; "
                     "treat it as preliminary.")
    return _Timing(sp, minutes, startup, speed, speed.but(eval_per_gpu / bs))


def _calc_run(run: Run, design: ExperimentDesign, samples: int, test_samples: dict[str, int],
              priors: list[PriorRun], notes: list[str], tokens: DataTokens | None = None) -> _Calc:
    p, model = run.params, run.model
    params_b = _params(model) or 1.24
    gpu = design.gpu
    data = Path(p.dataset.path)

    density = _density_figure(run, priors) if tokens is None else _tokens_density(run, tokens)

    mp, m_same = _choose(priors, model, p.packed, data, lambda q: bool(q.peak_memory_gib and q.batch_size))
    peak: Figure | None = None
    if mp and mp.peak_memory_gib and mp.batch_size:
        ratio = 1.0 if m_same else scale(MEMORY_SCALE, model, mp.model or model)
        peak = _prior_figure(_r(mp.peak_memory_gib * ratio), mp, m_same)
    if p.batch_size is not None:
        batch = design_figure(p.batch_size)
    elif mp and peak and mp.batch_size:
        divisor = 1.0
        if p.packed and not mp.packed:
            divisor = density.value
        elif not p.packed and mp.packed:
            divisor = 1.0 / (mp.packing_density or DEFAULT_PACKING_DENSITY)
        value, _ = batch_from_memory(gpu.memory_gb, peak.value, mp.batch_size, divisor)
        batch = peak.but(value)
        if not mp.memory_during_training:
            notes.append(f"{model}: {mp.log_path} shows GPU memory after model init only (log_peak_memory_stats off), "
                         f"so memory per sample is under-stated and batch size {value} may be optimistic.")
    else:
        batch = default_figure(default_batch(params_b, p.packed, gpu.memory_gb))
    bs, ga, ranks = int(batch.value), p.gradient_accumulation_steps, gpu.count  # >1: the distributed recipe
    steps = math.ceil(samples / density.value / (bs * ga * ranks)) if samples else 0  # per rank, as torchtune's bar
    trained = samples  # examples one epoch trains on: fewer when max_steps_per_epoch ends it early
    if p.max_steps_per_epoch and steps > p.max_steps_per_epoch:
        steps = p.max_steps_per_epoch
        trained = int(steps * bs * ga * ranks * density.value)

    sp, minutes, startup, speed, eval_it_s = _timing(run, priors, density, trained, bs, steps, ranks, notes,
                                                     tokens is not None)
    if sp is None:
        minutes = default_figure(_r(default_epoch_minutes(params_b)))
        speed = default_figure(_r(steps / (minutes.value * 60.0)) if steps else 0.0)

    job_minutes = _eval_minutes(run, design, test_samples, bs, eval_it_s, params_b, notes)
    return _Calc(batch, density, steps, minutes, eval_it_s, job_minutes, peak, speed, sp, startup=startup)


def _with_measured_evals(run: Run, calc: _Calc, prior_evals: list[PriorEval], test_samples: dict[str, int]) -> _Calc:
    """Each evaluation job's minutes from earlier evaluation jobs of the same model and task, where there are any."""
    minutes, source = list(calc.job_minutes), None
    for i, job in enumerate(run.evaluations):
        measured = eval_minutes_from_priors(prior_evals, run.model, job.task, test_samples.get(job.task),
                                            base=job.epoch is None)
        if measured:
            minutes[i], source = measured.value, source or measured
    return calc._replace(job_minutes=minutes, eval_source=source) if source else calc


def _checkpoint_figure(run: Run, computed: CheckpointSize | None, priors: list[PriorRun], notes: list[str]) -> Figure:
    """GiB per epoch of the run's checkpoints (`tasks.planning._checkpoint_disk`), from the most relevant prior."""
    adapter_only = run.params.save_adapter_weights_only

    def fits(q: PriorRun) -> bool:
        measured = q.checkpoint_gib_per_epoch is not None or q.checkpoint_du_gib_per_epoch is not None
        return measured and bool(q.save_adapter_weights_only) == adapter_only

    cp, same = _choose(priors, run.model, True, None, fits)
    return checkpoint_figure(run.model, run.params.lora_rank, adapter_only, computed, cp, same, notes)


def _usable_priors(priors: PriorScan | list[PriorRun]) -> tuple[list[PriorRun], list[str]]:
    """The prior runs, and notes on folders that do not exist and logs that could not be used."""
    notes: list[str] = []
    if isinstance(priors, PriorScan):
        notes += [f"Prior-run folder {p} does not exist; nothing was read from it." for p in priors.missing]
        priors = priors.runs
    for prior in priors:
        if prior.model is None or not (prior.speed_it_s or prior.peak_memory_gib or prior.checkpoint_gib_per_epoch):
            notes.append(f"Prior log {prior.log_path} was not usable: "
                         f"{'; '.join(prior.problems) or 'nothing recognised'}.")
    return priors, notes


def checkpoint_minutes(run: Run, c: _Calc) -> list[float]:
    """Minutes of each of the run's evaluation jobs (one per evaluated checkpoint, all its tasks, one load)."""
    by_key = {job.key: minutes for job, minutes in zip(run.evaluations, c.job_minutes, strict=True)}
    return [checkpoint_job_minutes([by_key[e.key] for e in job.evaluations]) for job in run.checkpoint_jobs]


def _run_estimate(run: Run, c: _Calc, checkpoint: Figure, design: ExperimentDesign) -> RunEstimate:
    """One run's time, GPU-hours and disk (a control run: its evaluations only)."""
    is_ft = not run.is_control
    startup = c.startup.value if c.startup else 0.0
    train = c.minutes_per_epoch.value * run.params.epochs + startup if is_ft else 0.0
    ckpt = checkpoint.value * run.params.epochs if is_ft else 0.0
    eval_total = sum(checkpoint_minutes(run, c))
    return RunEstimate(
        run=run.name, model=run.model, batch_size=int(c.batch.value), steps_per_epoch=c.steps if is_ft else 0,
        minutes_per_epoch=c.minutes_per_epoch.value if is_ft else 0.0, train_minutes=_r(train),
        eval_jobs=len(run.checkpoint_jobs), eval_minutes=_r(eval_total),
        gpu_hours=_r((train * design.gpu.count + eval_total) / 60.0),
        disk_gib=_r(ckpt + len(run.evaluations) * EVAL_LOG_GIB))


def _model_estimate(model: str, runs: list[Run], calcs: dict[str, _Calc], checkpoint: Figure) -> ModelEstimate:
    """A model's figures, from its first fine-tuned run (they are per model, not per run)."""
    mine = [r for r in runs if r.model == model]
    first = next((r for r in mine if not r.is_control), mine[0])
    c = calcs[first.name]
    job_max = max((m for r in mine for m in calcs[r.name].job_minutes), default=0.0)
    eval_source = c.eval_source or c.eval_it_s or default_figure(0.0)
    sp = c.speed_prior
    return ModelEstimate(
        model=model, batch_size=c.batch, packing_density=c.density, peak_memory_gib=c.peak, speed_it_s=c.speed,
        prior_samples=sp.samples if sp else None, prior_batch_size=sp.batch_size if sp else None,
        checkpoint_gib_per_epoch=checkpoint, eval_minutes=eval_source.but(_r(job_max)),
        startup_minutes=c.startup)


def estimate_plan(design: ExperimentDesign, runs: list[Run], train_samples: dict[Path, int],
                  test_samples: dict[str, int], priors: PriorScan | list[PriorRun],
                  prior_evals: list[PriorEval] | None = None,
                  checkpoints: dict[str, CheckpointSize | None] | None = None,
                  data_tokens: dict[str, DataTokens] | None = None) -> tuple[list[Run], Estimates]:
    """Fill "auto" batch sizes and estimate time, GPU-hours and disk for every run (controls: evaluation only).

    `train_samples`: dataset path -> train split size; `test_samples`: task -> test samples;
    `priors`: a `scan_prior_runs` result (its missing folders become notes) or its runs;
    `checkpoints`: run name -> one epoch's save computed from the model's dims and files (none: priors/defaults);
    `data_tokens`: run name -> its training split tokenized and packed (none: a prior's packing density).
    """
    priors, notes = _usable_priors(priors)
    calcs: dict[str, _Calc] = {}
    for run in runs:
        path = Path(run.params.dataset.path)
        if path not in train_samples:
            raise ValueError(f"no train split count for {path} (run {run.name})")
        own = (data_tokens or {}).get(run.name)
        calc = _calc_run(run, design, own.samples if own else train_samples[path], test_samples, priors, notes, own)
        calcs[run.name] = _with_measured_evals(run, calc, prior_evals or [], test_samples)

    out_runs = [
        r if r.params.batch_size is not None
        else r.model_copy(update={"params": r.params.model_copy(update={"batch_size": int(calcs[r.name].batch.value)})})
        for r in runs
    ]
    per_run = {r.name: _checkpoint_figure(r, (checkpoints or {}).get(r.name), priors, notes) for r in runs}
    first: dict[str, str] = {}  # per model: its first fine-tuned run (what the per-model table shows)
    for r in sorted(runs, key=lambda r: r.is_control):
        first.setdefault(r.model, r.name)
    checkpoint = {m: per_run[first[m]] for m in dict.fromkeys(r.model for r in runs)}

    run_estimates = {run.name: _run_estimate(run, calcs[run.name], per_run[run.name], design) for run in runs}
    per_model_disk: dict[str, float] = {m: 0.0 for m in checkpoint}
    for run in runs:
        per_model_disk[run.model] += 0.0 if run.is_control else per_run[run.name].value * run.params.epochs
    train_list = [run_estimates[r.name].train_minutes for r in runs if not r.is_control]
    eval_list = [m for r in runs for m in checkpoint_minutes(r, calcs[r.name])]
    per_model = {model: _model_estimate(model, runs, calcs, checkpoint[model]) for model in checkpoint}
    for estimate in per_model.values():
        notes += _model_notes(estimate, design)

    disk = disk_estimate(per_model_disk, sum(len(r.evaluations) for r in runs))
    if not any(
        f.kind != "default"
        for m in per_model.values()
        for f in (m.batch_size, m.speed_it_s, m.checkpoint_gib_per_epoch)
    ):
        notes.insert(0, "No usable prior run log was found: every time, memory and disk figure is the seed's default "
                        "and preliminary; run one epoch of one job first and re-plan with its log.")
    notes.append(f"Training time keeps the prior run's samples per second (its bars' steps over their elapsed "
                 f"time) and adds what that job spent outside training where its job's elapsed time is recorded "
                 f"(same model), else ×{OVERHEAD} for validation, checkpointing and start-up; "
                 f"evaluation assumes inference {INFERENCE_SPEEDUP}× training speed "
                 f"plus {EVAL_OVERHEAD_MIN:.0f} min per task, of which the {EVAL_LOAD_MIN * 60:.0f} s model load "
                 f"is paid once per evaluated checkpoint (one job runs all its tasks); "
                 f"disk adds a {DISK_MARGIN:.0%} margin.")
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
    defaults = [name for name, f in figures.items() if f.kind == "default"]
    scaled = sorted({f.source.removeprefix(f"{PILOT} ").removeprefix("scaled from ")
                     for f in figures.values() if f.kind == "scaled"})
    if defaults:
        notes.append(f"{m.model}: {', '.join(defaults)} use the seed's defaults (no usable prior log) "
                     "and are preliminary.")
    if m.batch_size.kind == "default":
        notes.append(f"{m.model}: batch size {int(m.batch_size.value)} is the seed's conservative value for a "
                     f"{design.gpu.memory_gb:g} GB GPU; watch the first job's memory and scale up if it allows.")
    for source in scaled:
        notes.append(f"{m.model}: figures scaled by model size from {source}; "
                     f"preliminary until a {m.model} run is logged.")
    return notes
