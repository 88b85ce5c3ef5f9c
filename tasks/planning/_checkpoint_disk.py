"""Disk per epoch of a run's checkpoints: a prior's measurement only where it agrees with what training writes.

Reads: nothing (pure): the checkpoint size computed from the model's dims and files
(`tasks.training._checkpoint_size`), and the prior run `tasks.planning._estimate` chose for it.
Writes: nothing. Rules, in order:
  1. torchtune's own "checkpoint of size ... saved" lines in a prior log of the same model and save kind,
  2. else the size of that log's `epoch_*` folders,
  each only when consistent with the computed size (a merged save: not below it less 10 %; an
  adapter-only save of the same rank: within a factor of two); a measurement set aside is said in
  a note (pruned or placeholder folders say 0 GiB: taken at their word, a sweep would be approved
  against a disk it overflows);
  3. else the computed size (named with what it was computed from);
  without config.json dims: the prior's figure (scaled from another model by the seed's table), else the
  seed's default. A merged figure is never below the weights on disk.
"""

from __future__ import annotations

from typing import NamedTuple

from tasks.model._plan import Figure
from tasks.planning._formulas import (
    ADAPTER_ONLY_GIB,
    CHECKPOINT_GIB,
    _interp,
    _params,
    _r,
    default_figure,
    measured_figure,
    scale,
)
from tasks.training._checkpoint_size import CheckpointSize
from tasks.training._prior_logs import PriorRun

MERGED_TOLERANCE = 0.9  # a merged save measured below 90 % of the model it merges into is not one
ADAPTER_RATIO = 2.0  # an adapter-only save of the same rank measured within x2 of the computed size


class _Measured(NamedTuple):
    gib: float
    source: str


def _measurements(prior: PriorRun) -> list[_Measured]:
    found: list[_Measured] = []
    if prior.checkpoint_gib_per_epoch is not None and prior.checkpoint_source == "log lines":
        found.append(_Measured(prior.checkpoint_gib_per_epoch,
                               f"prior log {prior.log_path}: torchtune's 'checkpoint of size' lines"))
    if prior.checkpoint_du_gib_per_epoch is not None:
        found.append(_Measured(prior.checkpoint_du_gib_per_epoch,
                               f"size of the epoch_* folders beside {prior.log_path}"))
    return found


def _consistent(measured: float, computed: CheckpointSize, adapter_only: bool, same_rank: bool) -> bool:
    if adapter_only:
        return same_rank and computed.gib / ADAPTER_RATIO <= measured <= computed.gib * ADAPTER_RATIO
    return measured >= computed.gib * MERGED_TOLERANCE


def checkpoint_figure(model: str, rank: int, adapter_only: bool, computed: CheckpointSize | None,
                      prior: PriorRun | None, same_model: bool, notes: list[str]) -> Figure:
    """GiB per epoch of one run's checkpoints and where the number comes from (see the module's rules)."""
    if computed is None:
        return _without_dims(model, adapter_only, prior, same_model)
    what = "adapter-only" if adapter_only else "merged"
    if prior is not None and same_model:
        for measured in _measurements(prior):
            if _consistent(measured.gib, computed, adapter_only, prior.lora_rank == rank):
                value = measured.gib if adapter_only else max(measured.gib, computed.weights_on_disk_gib)
                return measured_figure(_r(value), measured.source, by_pilot=prior.pilot)
            said = f"measured by pilot: {measured.source}" if prior.pilot else measured.source
            notes.append(
                f"{model}: {said} says {measured.gib:.2f} GiB per epoch, not consistent with the "
                f"{computed.gib:.2f} GiB a {what} save of rank {rank} writes ({computed.basis}): set aside "
                "(pruned or placeholder checkpoint files, or another rank); the disk estimate uses the computed size.")
    return Figure(value=_r(computed.gib), source=f"computed: {computed.basis}", kind="computed")


def _without_dims(model: str, adapter_only: bool, prior: PriorRun | None, same: bool) -> Figure:
    """No config.json dims: the prior's figure (scaled by the seed's table from another model), else the seed's."""
    if prior is not None and prior.checkpoint_gib_per_epoch:
        ratio = 1.0 if same else scale(CHECKPOINT_GIB, model, prior.model or model)
        source = f"prior log {prior.log_path}" if same else f"scaled from {prior.model} prior log {prior.log_path}"
        return measured_figure(_r(prior.checkpoint_gib_per_epoch * ratio), source, same, prior.pilot)
    if adapter_only:
        return default_figure(ADAPTER_ONLY_GIB)
    return default_figure(_r(_interp(CHECKPOINT_GIB, _params(model) or 1.24)))
