"""What one epoch's torchtune checkpoint of a LoRA run weighs, from the model's own dims and files.

Reads: a model folder's config.json (dims) and the sizes of its files (nothing is loaded).
Writes: nothing. What torchtune's HF checkpointer writes into `epoch_<N>/` per save:
  - merged (save_adapter_weights_only false): the whole model in the training dtype (its
    parameters x bytes per value: embeddings, every layer, the output head unless tied), then
  - always: the adapter twice (`adapter_model.pt` and the PEFT `adapter_model.safetensors`,
    rank x (in + out) per adapted projection and layer), and
  - a copy of every other file of the model folder (config, tokenizer files).
A merged save is never below the weights on disk (the base model it merges into); the estimate
(`tasks.planning._estimate`) takes a prior log's figure only when it is consistent with this one.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

GIB = 1024**3
DTYPE_BYTES = {"bf16": 2, "fp32": 4}
ADAPTER_COPIES = 2  # adapter_model.pt + adapter_model.safetensors
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class ModelDims(BaseModel):
    """The dims of a Llama-style config.json that size its parameters and its LoRA adapters."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tied_embeddings: bool

    def parameters(self) -> int:
        """Parameters of the model (embeddings, attention, MLP, norms, and the output head unless tied)."""
        h, q, kv = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        layer = h * q + 2 * h * kv + q * h + 3 * h * self.intermediate_size + 2 * h
        head = 0 if self.tied_embeddings else self.vocab_size * h
        return self.vocab_size * h + self.num_layers * layer + h + head

    def adapter_parameters(self, rank: int, modules: list[str], mlp: bool) -> int:
        """LoRA parameters: rank x (in + out) for each adapted projection of every layer."""
        h, q, kv, inter = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim, \
            self.intermediate_size
        shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "output_proj": (q, h)}
        per_layer = sum(rank * sum(shapes[m]) for m in modules if m in shapes)
        if mlp:
            per_layer += 3 * rank * (h + inter)
        return self.num_layers * per_layer


def read_dims(folder: Path) -> ModelDims | None:
    """The dims of `folder/config.json`, or None when it is missing or lacks them."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return ModelDims(
            vocab_size=int(config["vocab_size"]), hidden_size=hidden,
            intermediate_size=int(config["intermediate_size"]), num_layers=int(config["num_hidden_layers"]),
            num_heads=heads, num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class CheckpointSize(BaseModel):
    """One epoch's checkpoint in GiB, and what it was computed from (said in the plan)."""

    gib: float
    weights_on_disk_gib: float  # the base model's weight files (a merged save is never below them)
    basis: str


def _file_sizes(folder: Path, weight_files: list[str]) -> tuple[int, int]:
    """(bytes of the named weight files, bytes of the other files torchtune copies into each epoch)."""
    weights = other = 0
    for path in folder.rglob("*") if folder.is_dir() else []:
        try:
            if not path.is_file():
                continue
            size = path.stat().st_size
        except OSError:
            continue
        relative = path.relative_to(folder).as_posix()
        if relative in weight_files:
            weights += size
        elif path.suffix not in WEIGHT_SUFFIXES and not relative.startswith("original/"):
            other += size
    return weights, other


def checkpoint_size(folder: Path, weight_files: list[str], rank: int, modules: list[str], mlp: bool,
                    adapter_only: bool, dtype: str) -> CheckpointSize | None:
    """One epoch's save of a LoRA run of the model in `folder`; None without config.json dims."""
    dims = read_dims(folder)
    if dims is None:
        return None
    per_value = DTYPE_BYTES.get(dtype, 2)
    weights, other = _file_sizes(folder, weight_files)
    adapter = dims.adapter_parameters(rank, modules, mlp) * per_value * ADAPTER_COPIES
    adapter_text = f"LoRA adapter x{ADAPTER_COPIES} (rank {rank}, {'+'.join(modules)}{', MLP' if mlp else ''})"
    if adapter_only:
        total, basis = adapter + other, f"{adapter_text} from config.json dims"
    else:
        merged = dims.parameters() * per_value
        basis = (f"merged model: {dims.parameters() / 1e9:.2f}B parameters from config.json dims x {per_value} bytes "
                 f"({dtype})")
        if weights > merged:
            merged, basis = weights, f"merged model: the weight files on disk ({weights / GIB:.2f} GiB)"
        total, basis = merged + adapter + other, f"{basis} + {adapter_text}"
    if other:
        basis += f" + {other / GIB * 1024:.0f} MiB of config and tokenizer files"
    return CheckpointSize(gib=total / GIB, weights_on_disk_gib=weights / GIB, basis=basis)
