"""Merge a LoRA adapter that torchtune saved alone into its base model, for evaluation.

With `save_adapter_weights_only: true` each `epoch_N/` holds only the adapter (about 100x less
disk), which inspect-ai's hf/ provider cannot load. The evaluation job script runs
`python -m tasks.evaluation.merge_adapter EPOCH_DIR BASE_MODEL_DIR OUT_DIR` into node-local scratch,
evaluates OUT_DIR and deletes it, so the disk saving is kept.

Reads: `EPOCH_DIR/adapter_config.json` and `adapter_model.safetensors` (the PEFT-format copy
torchtune writes beside its own `.pt`: Hugging Face weight names, q/k already in HF layout),
the base model's `*.safetensors` (one file or shards), and the non-weight files (config,
tokenizer, shard index) of the base model and of `EPOCH_DIR` (the epoch's copies win).
Writes: OUT_DIR with the merged weights under the base model's shard names, and those files.

Each adapted weight becomes W + (lora_alpha / r) * B @ A, computed in float32 and stored in
W's dtype: the merge torchtune itself does when it saves merged checkpoints.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tasks.core._errors import SweepflowError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
_LORA_A, _LORA_B = ".lora_A.weight", ".lora_B.weight"
# weights and training state: never copied as "other files"
_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".bin", ".pth")


def is_adapter_only(epoch_dir: Path) -> bool:
    """An epoch folder with a LoRA adapter and no merged model weights."""
    return (epoch_dir / ADAPTER_WEIGHTS).is_file() and not any(
        p.name != ADAPTER_WEIGHTS for p in epoch_dir.glob("*.safetensors")
    )


def read_adapter(epoch_dir: Path) -> tuple[float, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """(scale, {base weight name: (A, B)}) from the PEFT-format adapter in `epoch_dir`."""
    config_path, weights_path = epoch_dir / ADAPTER_CONFIG, epoch_dir / ADAPTER_WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise SweepflowError(f"{path}: missing; torchtune writes it with save_adapter_weights_only: true")
    try:
        config = json.loads(config_path.read_text())
        rank, alpha = int(config["r"]), float(config["lora_alpha"])
    except (ValueError, KeyError, TypeError) as error:
        raise SweepflowError(f"{config_path}: not a LoRA adapter config (needs r and lora_alpha): {error}") from None
    if config.get("use_dora"):
        raise SweepflowError(f"{config_path}: DoRA adapters cannot be merged by sweepflow; save merged weights instead")
    weights = load_file(str(weights_path))
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for key, lora_a in weights.items():
        if not key.endswith(_LORA_A):
            continue
        module = key.removeprefix(PEFT_PREFIX).removesuffix(_LORA_A)
        lora_b = weights.get(key.removesuffix(_LORA_A) + _LORA_B)
        if lora_b is None:
            raise SweepflowError(f"{weights_path}: {key} has no matching lora_B weight")
        pairs[f"{module}.weight"] = (lora_a, lora_b)
    if not pairs:
        raise SweepflowError(f"{weights_path}: no LoRA weights (keys ending in {_LORA_A})")
    return alpha / rank, pairs


def merge_adapter(epoch_dir: Path, base_dir: Path, out_dir: Path) -> list[str]:
    """Write the merged model into `out_dir`; returns the names of the weights changed."""
    epoch_dir, base_dir, out_dir = Path(epoch_dir), Path(base_dir), Path(out_dir)
    scale, pairs = read_adapter(epoch_dir)
    shards = sorted(base_dir.glob("*.safetensors"))
    if not shards:
        raise SweepflowError(f"{base_dir}: no *.safetensors weights of the base model")
    out_dir.mkdir(parents=True, exist_ok=True)
    merged: list[str] = []
    for shard in shards:  # one shard in memory at a time
        tensors = load_file(str(shard))
        for name in [n for n in tensors if n in pairs]:
            lora_a, lora_b = pairs[name]
            weight = tensors[name]
            if weight.shape != (lora_b.shape[0], lora_a.shape[1]):
                raise SweepflowError(
                    f"{epoch_dir / ADAPTER_WEIGHTS}: {name} is {tuple(lora_b.shape[0:1]) + tuple(lora_a.shape[1:])} "
                    f"in the adapter but {tuple(weight.shape)} in {shard}: the adapter belongs to another model"
                )
            tensors[name] = (weight.float() + scale * (lora_b.float() @ lora_a.float())).to(weight.dtype)
            merged.append(name)
        save_file(tensors, str(out_dir / shard.name), metadata={"format": "pt"})
    missing = sorted(set(pairs) - set(merged))
    if missing:
        raise SweepflowError(f"{base_dir}: the adapter changes weights the base model lacks: {', '.join(missing[:5])}")
    for source in (base_dir, epoch_dir):  # the epoch's copies of config/tokenizer files win
        for path in sorted(source.iterdir()):
            if path.is_file() and path.suffix not in _WEIGHT_SUFFIXES and path.name != ADAPTER_CONFIG:
                shutil.copy2(path, out_dir / path.name)
    return merged


def main(argv: list[str] | None = None) -> int:
    """`python -m tasks.evaluation.merge_adapter EPOCH_DIR BASE_MODEL_DIR OUT_DIR`: write the merged model."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m tasks.evaluation.merge_adapter EPOCH_DIR BASE_MODEL_DIR OUT_DIR", file=sys.stderr)
        return 2
    try:
        merged = merge_adapter(Path(args[0]), Path(args[1]), Path(args[2]))
    except (SweepflowError, OSError) as error:
        print(f"sweepflow: cannot merge the adapter: {error}", file=sys.stderr)
        return 2
    print(f"sweepflow: merged {len(merged)} LoRA weights of {args[0]} into {args[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
