"""Supported base models: what torchtune needs to fine-tune each one, and its size class.

Reads: nothing (the table below). Writes: nothing.
A design naming a model that is not here is rejected at plan time, not at job time.
Everything torchtune-specific about a model lives in this table, so another trainer can
replace torchtune by replacing this module and `tasks/training/_config.py`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# What the job environment of a fine-tune must hold exactly: sweepflow_recipes/ subclasses
# torchtune 0.6.1's recipes, and torchtune 0.6.1 imports torchao 0.15.0's API.
RECIPE_REQUIREMENTS = ("torchtune==0.6.1", "torchao==0.15.0")


class ModelSpec(BaseModel):
    """One supported base model: its size, torchtune builders, tokenizer and checkpoint files."""

    model_config = ConfigDict(frozen=True)

    name: str
    family: str
    params_b: float  # billions of parameters: drives default estimates and scaling
    lora_builder: str  # torchtune `_component_` of the LoRA model builder
    tokenizer: str  # torchtune `_component_` of the tokenizer builder
    tokenizer_files: dict[str, str]  # builder argument -> file relative to the model folder
    checkpoint_files: list[str]  # relative to the model folder
    model_type: str  # torchtune checkpointer model_type
    hidden_size: int  # config.json hidden_size: checked against the folder; caps lora_rank
    num_layers: int  # config.json num_hidden_layers
    instruct: bool = True


def _shards(total: int) -> list[str]:
    return [f"model-{i:05d}-of-{total:05d}.safetensors" for i in range(1, total + 1)]


_LLAMA_TOKENIZER = "torchtune.models.llama3.llama3_tokenizer"
_LLAMA_TOKENIZER_FILES = {"path": "original/tokenizer.model"}
_QWEN_TOKENIZER = "torchtune.models.qwen2_5.qwen2_5_tokenizer"
_QWEN_TOKENIZER_FILES = {"path": "vocab.json", "merges_file": "merges.txt"}


def _llama(name: str, params_b: float, builder: str, shards: int, model_type: str, dims: tuple[int, int]) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="llama3",
        params_b=params_b,
        lora_builder=builder,
        tokenizer=_LLAMA_TOKENIZER,
        tokenizer_files=_LLAMA_TOKENIZER_FILES,
        checkpoint_files=["model.safetensors"] if shards == 1 else _shards(shards),
        model_type=model_type,
        hidden_size=dims[0],
        num_layers=dims[1],
        instruct=name.endswith("-Instruct"),
    )


def _qwen(name: str, params_b: float, builder: str, shards: int, dims: tuple[int, int]) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="qwen2_5",
        params_b=params_b,
        lora_builder=builder,
        tokenizer=_QWEN_TOKENIZER,
        tokenizer_files=_QWEN_TOKENIZER_FILES,
        checkpoint_files=["model.safetensors"] if shards == 1 else _shards(shards),
        model_type="QWEN2",
        hidden_size=dims[0],
        num_layers=dims[1],
        instruct=name.endswith("-Instruct"),
    )


_MODELS: list[ModelSpec] = [
    _llama("Llama-3.2-1B-Instruct", 1.24, "torchtune.models.llama3_2.lora_llama3_2_1b", 1, "LLAMA3_2", (2048, 16)),
    _llama("Llama-3.2-1B", 1.24, "torchtune.models.llama3_2.lora_llama3_2_1b", 1, "LLAMA3_2", (2048, 16)),
    _llama("Llama-3.2-3B-Instruct", 3.21, "torchtune.models.llama3_2.lora_llama3_2_3b", 2, "LLAMA3_2", (3072, 28)),
    _llama("Llama-3.2-3B", 3.21, "torchtune.models.llama3_2.lora_llama3_2_3b", 2, "LLAMA3_2", (3072, 28)),
    _llama("Llama-3.1-8B-Instruct", 8.03, "torchtune.models.llama3_1.lora_llama3_1_8b", 4, "LLAMA3", (4096, 32)),
    _llama("Llama-3.1-8B", 8.03, "torchtune.models.llama3_1.lora_llama3_1_8b", 4, "LLAMA3", (4096, 32)),
    _llama("Llama-3.1-70B-Instruct", 70.6, "torchtune.models.llama3_1.lora_llama3_1_70b", 30, "LLAMA3", (8192, 80)),
    _llama("Llama-3.1-70B", 70.6, "torchtune.models.llama3_1.lora_llama3_1_70b", 30, "LLAMA3", (8192, 80)),
    _qwen("Qwen2.5-0.5B-Instruct", 0.49, "torchtune.models.qwen2_5.lora_qwen2_5_0_5b", 1, (896, 24)),
    _qwen("Qwen2.5-1.5B-Instruct", 1.54, "torchtune.models.qwen2_5.lora_qwen2_5_1_5b_instruct", 1, (1536, 28)),
    _qwen("Qwen2.5-3B-Instruct", 3.09, "torchtune.models.qwen2_5.lora_qwen2_5_3b", 2, (2048, 36)),
    _qwen("Qwen2.5-7B-Instruct", 7.62, "torchtune.models.qwen2_5.lora_qwen2_5_7b_instruct", 4, (3584, 28)),
    # A tiny Llama-3-architecture model made locally by `examples/make_tiny_model.py`
    # (no download): the bundled example fine-tunes it on CPU in under a minute.
    ModelSpec(
        name="Llama-3-Tiny-Instruct",
        family="llama3",
        params_b=0.00016,
        lora_builder="tasks.training.tiny_llama.lora_tiny_llama3",
        tokenizer="tasks.training.tiny_llama.tiny_tokenizer",
        tokenizer_files={"path": "tokenizer.model", "special_tokens_path": "tokenizer.json"},
        checkpoint_files=["model.safetensors"],
        model_type="LLAMA3",
        hidden_size=64,
        num_layers=2,
    ),
]

REGISTRY: dict[str, ModelSpec] = {m.name: m for m in _MODELS}


def lookup(name: str) -> ModelSpec | None:
    """The registry entry of a model name, or None when sweepflow does not support it."""
    return REGISTRY.get(name)


def known_models() -> list[str]:
    """The supported model names, sorted."""
    return sorted(REGISTRY)
