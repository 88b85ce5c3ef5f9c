"""A tiny Llama-3-architecture model for examples and tests that run on CPU without downloads.

Reads: nothing at import; `tiny_tokenizer` reads the tiktoken-format `tokenizer.model` (and
optionally `tokenizer.json` for the special tokens) written by `examples/make_tiny_model.py`.
Writes: nothing.

torchtune's YAML `_component_` imports any module on PYTHONPATH, so a finetune config names
`tasks.training.tiny_llama.lora_tiny_llama3` and `tasks.training.tiny_llama.tiny_tokenizer` where a real model
names `torchtune.models.llama3_2.lora_llama3_2_1b` and `torchtune.models.llama3.llama3_tokenizer`.
The builders take the same arguments as those, so only `_component_` changes.

The model: 2 layers, 4 query heads, 2 KV heads, width 64, MLP 256, untied output, byte-level
vocabulary of 256 byte tokens plus the 10 special tokens torchtune's Llama3Tokenizer needs
(ids 256-265): about 160k parameters. `examples/make_tiny_model.py` writes the matching
HuggingFace folder (config.json, model.safetensors, tokenizer files) from these constants.
"""

from __future__ import annotations

from typing import Any

# --- architecture (shared with examples/make_tiny_model.py; change both together) ---
NUM_BYTES = 256
SPECIAL_TOKENS: dict[str, int] = {
    "<|begin_of_text|>": 256,
    "<|end_of_text|>": 257,
    "<|start_header_id|>": 258,
    "<|end_header_id|>": 259,
    "<|eot_id|>": 260,
    "<|eom_id|>": 261,
    "<|python_tag|>": 262,
    "<|finetune_right_pad_id|>": 263,
    "<|step_id|>": 264,
    "<|image|>": 265,
}
VOCAB_SIZE = NUM_BYTES + len(SPECIAL_TOKENS)  # 266
NUM_LAYERS = 2
NUM_HEADS = 4
NUM_KV_HEADS = 2
EMBED_DIM = 64
HEAD_DIM = EMBED_DIM // NUM_HEADS  # 16
INTERMEDIATE_DIM = 256
MAX_SEQ_LEN = 2048
NORM_EPS = 1e-5
ROPE_BASE = 500_000
TIE_WORD_EMBEDDINGS = False

BOS_ID = SPECIAL_TOKENS["<|begin_of_text|>"]
EOS_ID = SPECIAL_TOKENS["<|end_of_text|>"]
EOT_ID = SPECIAL_TOKENS["<|eot_id|>"]
EOM_ID = SPECIAL_TOKENS["<|eom_id|>"]
PAD_ID = SPECIAL_TOKENS["<|finetune_right_pad_id|>"]
STOP_IDS = [EOS_ID, EOT_ID, EOM_ID]  # generation stops on any of these (as Llama-3-Instruct)


def _no_tie(tie_word_embeddings: bool) -> None:
    if tie_word_embeddings:
        raise ValueError("the tiny Llama-3 model has an untied output projection; tie_word_embeddings must be false")


def _architecture() -> dict[str, Any]:
    """Builder arguments shared by the tiny model with and without LoRA."""
    return {
        "vocab_size": VOCAB_SIZE,
        "num_layers": NUM_LAYERS,
        "num_heads": NUM_HEADS,
        "num_kv_heads": NUM_KV_HEADS,
        "embed_dim": EMBED_DIM,
        "max_seq_len": MAX_SEQ_LEN,
        "intermediate_dim": INTERMEDIATE_DIM,
        "attn_dropout": 0.0,
        "norm_eps": NORM_EPS,
        "rope_base": ROPE_BASE,
    }


def tiny_llama3(tie_word_embeddings: bool = False) -> Any:
    """The tiny model without LoRA (a torchtune TransformerDecoder)."""
    from torchtune.models.llama3._component_builders import llama3

    _no_tie(tie_word_embeddings)
    return llama3(
        **_architecture(),
    )


def lora_tiny_llama3(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
    tie_word_embeddings: bool = False,
) -> Any:
    """The tiny model with LoRA; same arguments as torchtune's `lora_llama3_2_1b`."""
    from torchtune.models.llama3._component_builders import lora_llama3

    _no_tie(tie_word_embeddings)
    return lora_llama3(
        lora_attn_modules=list(lora_attn_modules),
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        **_architecture(),
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
    )


def tiny_tokenizer(
    path: str,
    special_tokens_path: str | None = None,
    max_seq_len: int | None = None,
    prompt_template: Any = None,
) -> Any:
    """A torchtune `Llama3Tokenizer` over the tiny byte-level vocabulary.

    `path` is the tiktoken-format `tokenizer.model` (one `base64(byte) rank` line per byte).
    `special_tokens_path` is an HF `tokenizer.json` whose `added_tokens` give the special
    tokens; without it the built-in `SPECIAL_TOKENS` (ids 256-265) are used. The canonical
    Llama-3 special tokens (ids 128000+) would not fit this vocabulary, which is why this
    builder exists instead of `torchtune.models.llama3.llama3_tokenizer`.
    """
    from torchtune.models.llama3._tokenizer import Llama3Tokenizer
    from torchtune.modules.transforms.tokenizers import parse_hf_tokenizer_json

    special = parse_hf_tokenizer_json(special_tokens_path) if special_tokens_path else dict(SPECIAL_TOKENS)
    template = None
    if prompt_template is not None:
        from torchtune.data._prompt_templates import _get_prompt_template

        template = _get_prompt_template(prompt_template)
    return Llama3Tokenizer(path=path, special_tokens=special, max_seq_len=max_seq_len, prompt_template=template)
