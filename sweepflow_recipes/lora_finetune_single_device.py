"""LoRA fine-tuning on one device: torchtune 0.6.1's stock recipe with the CPU multi-epoch fix.

How to run (from the run directory; REPO_ROOT is the sweepflow checkout):
    PYTHONPATH=REPO_ROOT tune run sweepflow_recipes/lora_finetune_single_device.py --config finetune.yaml
(`tune run` needs this relative `package/file.py` form; it imports it as a module.)

Reads: the torchtune config given with --config. Writes: `{output_dir}/epoch_N/` checkpoints,
`{output_dir}/recipe_state/`, and the metric logger's files.

The fix: the stock `save_checkpoint` builds the merged checkpoint from
`{k: v.cpu() for k, v in model.state_dict().items()}`. On CPU `.cpu()` returns the live
parameter itself, and `get_merged_lora_ckpt` adds the LoRA delta *in place*, so every epoch
after the first trains on a base model that already contains the previous deltas (epoch_1 of
a 2-epoch CPU run comes out corrupted). Here the state dict is copied first
(`.to("cpu", copy=True)`: one copy, exactly as before on GPU; a clone on CPU).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig
from torchtune import config, training
from torchtune.modules.peft import get_adapter_state_dict, get_lora_module_names, get_merged_lora_ckpt

from sweepflow_recipes._stock import load_stock_recipe, run_recipe

_stock = load_stock_recipe("lora_finetune_single_device")


class LoRAFinetuneRecipeSingleDevice(_stock.LoRAFinetuneRecipeSingleDevice):  # type: ignore[misc,name-defined]
    """torchtune's single-device LoRA recipe whose checkpoint merge never touches live weights."""

    def save_checkpoint(self, epoch: int) -> None:
        # Same as torchtune 0.6.1's method except for the copied state dict (see module docstring).
        ckpt_dict: dict = {}
        intermediate_checkpoint = epoch + 1 < self.total_epochs
        if intermediate_checkpoint:
            ckpt_dict.update(
                {
                    training.OPT_KEY: self._optimizer.state_dict(),
                    training.SEED_KEY: self.seed,
                    training.EPOCHS_KEY: self.epochs_run,
                    training.TOTAL_EPOCHS_KEY: self.total_epochs,
                    training.MAX_STEPS_KEY: self.max_steps_per_epoch,
                    training.DATALOADER_KEY: self._dataloader.state_dict(),
                }
            )

        adapter_state_dict = get_adapter_state_dict(self._model.state_dict())
        ckpt_dict.update({training.ADAPTER_KEY: adapter_state_dict})

        if not self._save_adapter_weights_only:
            state_dict = {k: v.detach().to("cpu", copy=True) for k, v in self._model.state_dict().items()}
            merged_state_dict = get_merged_lora_ckpt(state_dict, rank=self._lora_rank, alpha=self._lora_alpha)
            ckpt_dict.update({training.MODEL_KEY: merged_state_dict})

        adapter_config = {
            "r": self._lora_rank,
            "lora_alpha": self._lora_alpha,
            "target_modules": get_lora_module_names(
                self._lora_attn_modules, self._apply_lora_to_mlp, self._apply_lora_to_output
            ),
            "peft_type": "LORA",
        }
        ckpt_dict.update({training.ADAPTER_CONFIG: adapter_config})

        self._checkpointer.save_checkpoint(
            ckpt_dict,
            epoch=epoch,
            intermediate_checkpoint=intermediate_checkpoint,
            adapter_only=self._save_adapter_weights_only,
        )


@config.parse
def recipe_main(cfg: DictConfig) -> None:
    run_recipe(LoRAFinetuneRecipeSingleDevice, cfg, "LoRAFinetuneRecipeSingleDevice")


if __name__ == "__main__":
    sys.exit(recipe_main())
