"""Load torchtune's stock recipe modules from the installed torchtune distribution, and run one.

Reads: `<site-packages>/recipes/<name>.py` (installed by torchtune 0.6.1). Writes: nothing.
torchtune's `recipes/__init__.py` raises on import on purpose, so `import recipes.x` fails;
the files are loaded by path under a private module name instead.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import torch
import torchtune
from omegaconf import DictConfig, ListConfig
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


INSTANTIATED_TEXT = ("dataset", "dataset_val")  # sections whose text (a system prompt) is free-form
_INTERPOLATION = re.compile(r"(\\*)\$\{")


def _escaped(text: str) -> str:
    """`text` as an OmegaConf string that resolves to `text` (`${` escaped, backslashes before it doubled)."""
    return _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", text)


def keep_literal_text(node: DictConfig | ListConfig) -> None:
    """Make every literal `${` in `node`'s strings survive `config.instantiate`.

    The config file escapes a literal `${` (a system prompt may hold one) for ONE resolution, which
    reading the value does. `torchtune.config.instantiate` resolves twice (`OmegaConf.resolve`,
    then `to_object`), so the prompt would be read as an interpolation and fail. A string whose
    value (resolved once) still holds `${` is such a literal: it is escaped once more, so the
    instantiated object gets the text verbatim. Real interpolations resolve to text without `${`
    and are left alone.
    """
    keys = range(len(node)) if isinstance(node, ListConfig) else list(node.keys())
    for key in keys:
        child = node._get_node(key)  # type: ignore[union-attr]
        if isinstance(child, (DictConfig, ListConfig)):
            keep_literal_text(child)
            continue
        value = node[key]
        if isinstance(value, str) and "${" in value:
            node[key] = _escaped(_escaped(value))


def run_recipe(recipe_cls: type, cfg: DictConfig, name: str) -> None:
    """What the stock `recipe_main` does once the process is set up, for any recipe class.

    `name` must be one word: it is logged as `Running <name> with resolved config:`,
    which `tasks/training/_prior_logs.py` parses, as it does the epoch length logged after setup.
    """
    config.log_config(recipe_name=name, cfg=cfg)
    for section in INSTANTIATED_TEXT:
        if section in cfg:
            keep_literal_text(cfg[section])
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
