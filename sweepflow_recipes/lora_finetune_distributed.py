"""LoRA fine-tuning on several GPUs (FSDP2): a thin subclass of torchtune 0.6.1's stock recipe.

How to run (from the run directory; REPO_ROOT is the sweepflow checkout; N GPUs):
    PYTHONPATH=REPO_ROOT tune run --nnodes 1 --nproc_per_node N \
        sweepflow_recipes/lora_finetune_distributed.py --config finetune.yaml
(`tune run` hands the module `sweepflow_recipes.lora_finetune_distributed` to torchrun.)

Reads: the torchtune config given with --config. Writes: `{output_dir}/epoch_N/` checkpoints,
`{output_dir}/recipe_state/`, and the metric logger's files (rank 0).
It exists so every run names a sweepflow recipe and the `_val` variant has a base to extend.
Two CPU-only changes make a gloo smoke run possible (`--nproc_per_node 1`, `device: cpu`):
gloo instead of NCCL when torch has no NCCL, and no memory-stats calls on CPU.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import torch
from omegaconf import DictConfig
from torchtune import config, training

from sweepflow_recipes._stock import load_stock_recipe, run_recipe

_stock = load_stock_recipe("lora_finetune_distributed")


class _TrainingWithCpuMemoryStats:
    """`torchtune.training` as the stock module sees it, minus the CUDA-only memory calls on CPU
    (the stock recipe makes them unconditionally, so a CPU smoke run with gloo would fail).
    Only our private copy of the stock module uses it; on GPU everything is passed through."""

    def __getattr__(self, name: str) -> Any:
        return getattr(training, name)

    @staticmethod
    def get_memory_stats(device: torch.device) -> dict[str, float]:
        return {} if torch.device(device).type == "cpu" else training.get_memory_stats(device=device)

    @staticmethod
    def cleanup_before_training() -> None:
        if torch.cuda.is_available():
            training.cleanup_before_training()
        else:
            gc.collect()  # torch.cpu has no empty_cache / reset_peak_memory_stats

    @staticmethod
    def log_memory_stats(stats: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if stats:
            training.log_memory_stats(stats, *args, **kwargs)


_stock.training = _TrainingWithCpuMemoryStats()


class LoRAFinetuneRecipeDistributed(_stock.LoRAFinetuneRecipeDistributed):  # type: ignore[misc,name-defined]
    """torchtune's distributed LoRA recipe, unchanged."""


def run_distributed_recipe(recipe_cls: type, cfg: DictConfig, name: str) -> None:
    """What the stock `recipe_main` does, for any distributed recipe class.

    `name` must be one word: it is logged as `Running <name> with resolved config:`,
    which `tasks/prior_logs.py` parses.
    """
    if not training.is_distributed():
        raise RuntimeError(
            "Distributed finetune recipe should be run via a distributed launcher: "
            "tune run --nnodes 1 --nproc_per_node N sweepflow_recipes/<recipe>.py --config finetune.yaml"
        )
    # stock: "cuda:nccl,cpu:gloo"; a CPU-only torch has no NCCL (lets the recipe be smoke-tested on CPU)
    _stock.init_process_group("cuda:nccl,cpu:gloo" if torch.distributed.is_nccl_available() else "gloo")
    if cfg.get("fsdp_cpu_offload", False):
        training.set_torch_num_threads()
    run_recipe(recipe_cls, cfg, name)


@config.parse
def recipe_main(cfg: DictConfig) -> None:
    run_distributed_recipe(LoRAFinetuneRecipeDistributed, cfg, "LoRAFinetuneRecipeDistributed")


if __name__ == "__main__":
    sys.exit(recipe_main())
