r"""Validation loss for torchtune LoRA recipes: every N optimizer steps and at each epoch end.

Reads (config keys, besides the stock recipe's own):
  dataset_val              the validation split, built like `dataset` (required)
  validate_every_n_steps   N, or null for "only at each epoch end"
  validation_max_batches   optional cap on batches per validation pass (null = whole split)
Writes:
  stdout (rank 0)  `Validation loss: 1.2345 (epoch 0, step 120) in 3.21 s` on a line of its own
                   (`nan` when the split has no tokens; the seconds the pass took, 0.00 when an
                   epoch end reuses the pass of the same step); the last such line of an epoch
                   is that epoch's end-of-epoch value. Parse with
                   `Validation loss: (\S+) \(epoch (\d+), step (\d+)\) in ([\d.]+) s`
  metric logger    `val_loss` at the global step (`val_loss_epoch_end` too at an epoch end)
  {output_dir}/validation_loss.jsonl  one JSON object per pass:
                   {"epoch", "step", "val_loss", "tokens", "epoch_end", "seconds"}

The stock training loops have no hook between steps, so the mixin wraps the LR scheduler:
both stock loops call `self._lr_scheduler.step()` exactly once per optimizer step, right
before `self.global_step += 1`. The epoch-end pass runs in `save_checkpoint`, which both
loops call once per epoch after `self.epochs_run += 1`.
"""

from __future__ import annotations

import json
import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch.utils.data import DataLoader, DistributedSampler
from torchtune import config, utils
from torchtune.config._utils import _get_component_from_path
from torchtune.data import padded_collate_packed

log = utils.get_logger("INFO")

VALIDATION_FILE = "validation_loss.jsonl"


class _ValidateAfterStep:
    """Proxy for the LR scheduler: after each `step()`, validate when the step is a multiple of N."""

    def __init__(self, scheduler: Any, recipe: "ValidationMixin") -> None:
        self._scheduler = scheduler
        self._recipe = recipe

    def step(self, *args: Any, **kwargs: Any) -> None:
        self._scheduler.step(*args, **kwargs)
        recipe = self._recipe
        every = recipe._val_every_n_steps
        step = recipe.global_step + 1  # the stock loop increments global_step right after this call
        # the epoch's last step is validated by the epoch-end pass (save_checkpoint) instead
        last_of_epoch = step == (recipe.epochs_run + 1) * getattr(recipe, "_steps_per_epoch", -1)
        if every and step % every == 0 and not last_of_epoch:
            recipe.run_validation(epoch=recipe.epochs_run, step=step, epoch_end=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scheduler, name)


class ValidationMixin:
    """Mix in before a torchtune LoRA recipe class: `class R(ValidationMixin, StockRecipe)`."""

    # set by the stock recipes
    _model: torch.nn.Module
    _tokenizer: Any
    _loss_fn: Any
    _device: torch.device
    _output_dir: str
    _metric_logger: Any
    _lr_scheduler: Any
    ignore_labels_cache: torch.Tensor
    global_step: int
    epochs_run: int

    def setup(self, cfg: DictConfig) -> None:
        super().setup(cfg)  # type: ignore[misc]
        self._setup_validation(cfg)

    def _setup_validation(self, cfg: DictConfig) -> None:
        cfg_val = cfg.get("dataset_val", None)
        if cfg_val is None:
            raise ValueError("this recipe computes validation loss: the config needs a `dataset_val` block")
        every = cfg.get("validate_every_n_steps", None)
        self._val_every_n_steps = int(every) if every else None
        max_batches = cfg.get("validation_max_batches", None)
        self._val_max_batches = int(max_batches) if max_batches else None
        self._val_world_size, self._val_rank = utils.get_world_size_and_rank()
        self._last_validation: tuple[int, float, int] | None = None  # (step, loss, tokens)

        dataset = config.instantiate(cfg_val, self._tokenizer)
        if cfg_val.get("packed", False):
            collate = padded_collate_packed
        else:
            collate_fn = _get_component_from_path(cfg.get("collate_fn", "torchtune.data.padded_collate_sft"))
            collate = partial(collate_fn, padding_idx=self._tokenizer.pad_id, ignore_idx=self._loss_fn.ignore_index)
        # every rank sees the same number of batches (the sampler pads), which FSDP needs
        sampler = DistributedSampler(
            dataset, num_replicas=self._val_world_size, rank=self._val_rank, shuffle=False, drop_last=False
        )
        self._val_dataloader = DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate, drop_last=False
        )
        self._lr_scheduler = _ValidateAfterStep(self._lr_scheduler, self)
        if self._val_rank == 0:
            log.info(
                f"Validation: {len(dataset)} samples, every {self._val_every_n_steps or '-'} steps and at each epoch end"
            )

    @torch.no_grad()
    def validation_loss(self) -> tuple[float, int]:
        """Token-weighted mean cross-entropy over the validation split, and the token count."""
        was_training = self._model.training
        self._model.eval()
        ignore_index = self._loss_fn.ignore_index
        loss_sum = torch.zeros((), dtype=torch.float32, device=self._device)
        tokens = torch.zeros((), dtype=torch.float32, device=self._device)
        try:
            for index, batch in enumerate(self._val_dataloader):
                if self._val_max_batches is not None and index >= self._val_max_batches:
                    break
                utils.batch_to_device(batch, self._device)
                labels = batch.pop("labels")
                # shift exactly as the training step does
                labels = torch.hstack((labels[..., 1:], self.ignore_labels_cache[: labels.shape[0]]))
                logits = self._model(**batch)
                if not isinstance(logits, list):
                    labels = labels.reshape(-1)
                    logits = logits.reshape(-1, logits.size(-1))
                count = (labels != ignore_index).sum()
                if count > 0:
                    loss_sum += self._loss_fn(logits, labels).float() * count
                    tokens += count
                del logits
        finally:
            self._model.train(was_training)
        if self._val_world_size > 1 and dist.is_available() and dist.is_initialized():
            dist.all_reduce(loss_sum)
            dist.all_reduce(tokens)
        n_tokens = int(tokens.item())
        return (loss_sum.item() / n_tokens if n_tokens else math.nan), n_tokens

    def run_validation(self, epoch: int, step: int, epoch_end: bool) -> float:
        """Compute (or, at an epoch end right after a periodic pass, reuse) and report the loss."""
        started = time.perf_counter()
        if self._last_validation is not None and self._last_validation[0] == step:
            _, loss, n_tokens = self._last_validation
        else:
            loss, n_tokens = self.validation_loss()
            self._last_validation = (step, loss, n_tokens)
        seconds = time.perf_counter() - started
        if self._val_rank == 0:
            # leading newline: tqdm's bar (stderr, no newline) shares the line in a merged SLURM log
            print(f"\nValidation loss: {loss:.4f} (epoch {epoch}, step {step}) in {seconds:.2f} s", flush=True)
            metrics = {"val_loss": loss}
            if epoch_end:
                metrics["val_loss_epoch_end"] = loss
            self._metric_logger.log_dict(metrics, step=step)
            value = None if math.isnan(loss) else loss
            record = {"epoch": epoch, "step": step, "val_loss": value, "tokens": n_tokens, "epoch_end": epoch_end,
                      "seconds": round(seconds, 3)}
            path = Path(self._output_dir) / VALIDATION_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        return loss

    def save_checkpoint(self, epoch: int) -> None:
        self.run_validation(epoch=epoch, step=self.global_step, epoch_end=True)
        super().save_checkpoint(epoch=epoch)  # type: ignore[misc]
