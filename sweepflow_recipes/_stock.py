"""Load torchtune's stock recipe modules from the installed torchtune distribution, and run one.

Reads: `<site-packages>/recipes/<name>.py` (installed by torchtune 0.6.1). Writes: nothing.
torchtune's `recipes/__init__.py` raises on import on purpose, so `import recipes.x` fails;
the files are loaded by path under a private module name instead.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
import torchtune
from omegaconf import DictConfig
from torchtune import config, utils

STOCK_RECIPES_DIR = Path(torchtune.__file__).resolve().parent.parent / "recipes"


def load_stock_recipe(name: str) -> ModuleType:
    """The stock torchtune recipe module `name` (e.g. "lora_finetune_single_device")."""
    module_name = f"_torchtune_stock_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = STOCK_RECIPES_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"torchtune stock recipe {name!r} not found at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def run_recipe(recipe_cls: type, cfg: DictConfig, name: str) -> None:
    """What the stock `recipe_main` does once the process is set up, for any recipe class.

    `name` must be one word: it is logged as `Running <name> with resolved config:`,
    which `tasks/training/prior_logs.py` parses, as it does the epoch length logged after setup.
    """
    config.log_config(recipe_name=name, cfg=cfg)
    recipe = recipe_cls(cfg=cfg)
    recipe.setup(cfg=cfg)
    log_epoch_length(recipe)
    recipe.train()
    recipe.cleanup()


def log_epoch_length(recipe: object) -> None:
    """Log a full epoch's optimizer steps, before `max_steps_per_epoch` caps the training bar.

    The bar's total is the capped count, so a short run (a pilot) would not show how long the
    epoch really is, nor, for packed data, how many packed sequences the dataset made.
    """
    dataloader = getattr(recipe, "_dataloader", None)
    if dataloader is None or not getattr(recipe, "_is_rank_zero", True):
        return
    batches = len(dataloader)
    accumulation = int(getattr(recipe, "_gradient_accumulation_steps", 1) or 1)
    world = torch.distributed.get_world_size() if torch.distributed.is_available() and \
        torch.distributed.is_initialized() else 1
    utils.get_logger("INFO").info(
        f"Epoch length: {batches // accumulation} optimizer steps ({batches} batches per rank, world size {world}), "
        f"max_steps_per_epoch: {getattr(recipe, 'max_steps_per_epoch', None)}"
    )
