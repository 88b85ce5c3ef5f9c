"""LoRA fine-tuning on one device with validation loss every N steps and at each epoch end.

How to run (from the run directory; REPO_ROOT is the sweepflow checkout):
    PYTHONPATH=REPO_ROOT tune run sweepflow_recipes/lora_finetune_single_device_val.py --config finetune.yaml

Reads: the torchtune config (needs `dataset_val`; optional `validate_every_n_steps`,
`validation_max_batches`). Writes: what `lora_finetune_single_device` writes, plus
`Validation loss: X (epoch E, step S)` lines on stdout, `val_loss` in the metric logger and
`{output_dir}/validation_loss.jsonl` (see `sweepflow_recipes/_validation.py`).
Includes the CPU multi-epoch checkpoint fix of `lora_finetune_single_device`.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig
from torchtune import config

from sweepflow_recipes._validation import ValidationMixin
from sweepflow_recipes.lora_finetune_single_device import LoRAFinetuneRecipeSingleDevice, run_recipe


class LoRAFinetuneRecipeSingleDeviceVal(ValidationMixin, LoRAFinetuneRecipeSingleDevice):
    """Single-device LoRA recipe + validation loss."""


@config.parse
def recipe_main(cfg: DictConfig) -> None:
    run_recipe(LoRAFinetuneRecipeSingleDeviceVal, cfg, "LoRAFinetuneRecipeSingleDeviceVal")


if __name__ == "__main__":
    sys.exit(recipe_main())
