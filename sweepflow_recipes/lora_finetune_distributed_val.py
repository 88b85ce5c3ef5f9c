"""LoRA fine-tuning on several GPUs with validation loss every N steps and at each epoch end.

How to run (from the run directory; REPO_ROOT is the sweepflow checkout; N GPUs):
    PYTHONPATH=REPO_ROOT tune run --nnodes 1 --nproc_per_node N \
        sweepflow_recipes/lora_finetune_distributed_val.py --config finetune.yaml

Reads: the torchtune config (needs `dataset_val`; optional `validate_every_n_steps`,
`validation_max_batches`). Writes: what `lora_finetune_distributed` writes, plus (rank 0)
`Validation loss: X (epoch E, step S)` lines on stdout, `val_loss` in the metric logger and
`{output_dir}/validation_loss.jsonl`. Each rank evaluates its shard of the validation split;
loss sums and token counts are all-reduced (see `sweepflow_recipes/_validation.py`).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig
from torchtune import config

from sweepflow_recipes._validation import ValidationMixin
from sweepflow_recipes.lora_finetune_distributed import LoRAFinetuneRecipeDistributed, run_distributed_recipe


class LoRAFinetuneRecipeDistributedVal(ValidationMixin, LoRAFinetuneRecipeDistributed):
    """Distributed LoRA recipe + validation loss."""


@config.parse
def recipe_main(cfg: DictConfig) -> None:
    run_distributed_recipe(LoRAFinetuneRecipeDistributedVal, cfg, "LoRAFinetuneRecipeDistributedVal")


if __name__ == "__main__":
    sys.exit(recipe_main())
