"""The seed's estimation formulas and constants, as pure functions of numbers (no plan, no logs).

Reads and writes nothing. `tasks.planning._estimate` applies them to a design's runs and prior
logs; every constant says where in the seed (or REFERENCE.md) it comes from.
"""

from __future__ import annotations

import itertools
import math

from tasks.model._plan import DiskEstimate, Figure, Scenario
from tasks.training._registry import lookup

DEFAULT = "default, preliminary"
DESIGN = "design"
PILOT = "measured by pilot:"  # prefixes the source of a figure a pilot of this plan measured


def default_figure(value: float) -> Figure:
    """The seed's preliminary value, used where nothing was measured."""
    return Figure(value=value, source=DEFAULT, kind="default")


def design_figure(value: float, detail: str = "") -> Figure:
    """A value the design sets (`detail` says more, e.g. what the data's tokens showed)."""
    return Figure(value=value, source=DESIGN + detail, kind="design")


def measured_figure(value: float, source: str, same_model: bool = True, by_pilot: bool = False) -> Figure:
    """A value measured on this model (or, `same_model` false, on another one and scaled by size)."""
    return Figure(value=value, source=f"{PILOT} {source}" if by_pilot else source,
                  kind="measured" if same_model else "scaled", by_pilot=by_pilot)

MEMORY_SAFETY = 0.7  # seed: "Conservative max (70% utilization)"
MAX_BATCH = 64  # no estimate goes above this, however much memory is free
OVERHEAD = 1.5  # cruijff_kit's safety factor on training time (REFERENCE.md §1): validation, checkpoints, start-up
INFERENCE_SPEEDUP = 2.5  # seed: "Inference_speed = training_speed × 2.5 (middle of 2-3x range)"
EVAL_OVERHEAD_MIN = 1.0  # seed: model loading ~30 s + result logging ~10 s, "~1 minute per evaluation"
EVAL_LOAD_MIN = 0.5  # seed: "model loading ~30 s", the part of that minute a checkpoint's job pays once
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


def checkpoint_job_minutes(task_minutes: list[float], load_minutes: float = EVAL_LOAD_MIN) -> float:
    """One evaluated checkpoint's job: the model loaded (and merged) once, then each of its tasks.

    `task_minutes`: each task's minutes as a job of its own, one load included (as the seed's
    per-evaluation figures and earlier evaluation jobs' elapsed times are); the shared job pays
    `load_minutes` once instead of once per task.
    """
    if not task_minutes:
        return 0.0
    return load_minutes + sum(max(minutes - load_minutes, 0.0) for minutes in task_minutes)


def _size_class(params_b: float) -> int:
    return 0 if params_b < 2 else (1 if params_b < 5 else 2)


def default_batch(params_b: float, packed: bool, gpu_gb: float) -> int:
    """The seed's conservative batch size for this model size, packing and GPU memory class."""
    gpu_class = 80 if gpu_gb >= 80 else (40 if gpu_gb >= 40 else 32)
    return DEFAULT_BATCH[(packed, gpu_class)][_size_class(params_b)]


def periodic_validation_passes(steps_per_epoch: int, every: int | None, epochs: int) -> float:
    """Validation passes run inside an epoch's steps (every `every` steps, not at its last), averaged over epochs.

    sweepflow's `_val` recipes validate after each global step that is a multiple of `every`, except
    an epoch's last step, whose pass is the epoch-end one.
    """
    if not every or steps_per_epoch < 1 or epochs < 1:
        return 0.0
    total = sum(((e + 1) * steps_per_epoch - 1) // every - (e * steps_per_epoch) // every for e in range(epochs))
    return total / epochs


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


def disk_estimate(checkpoints_by_model: dict[str, float], eval_logs: int) -> DiskEstimate:
    """Seed: checkpoints + 10 MB per evaluation log (one per checkpoint and task), + 15 % margin."""
    checkpoints = sum(checkpoints_by_model.values())
    logs = eval_logs * EVAL_LOG_GIB
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
                   f"then {n_e} evaluation jobs at once (longest {longest_e:.1f} min)",
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
