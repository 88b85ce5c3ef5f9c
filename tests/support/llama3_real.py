"""Model folders shaped like Llama-3.2-Instruct with the real Llama-3 tokenizer, for tests only.

Reads: `llama_models/llama3/tokenizer.model` from Meta's `llama-models` package (a test
dependency; the same file as a checkpoint's `original/tokenizer.model`) and its special-token
list. Writes, into a folder the test names:
  original/tokenizer.model   the real tiktoken file (what torchtune's llama3_tokenizer reads)
  tokenizer.json             the same vocabulary converted by transformers' TikTokenConverter,
                             with the 256 special tokens at 128000-128255 and a BOS post-processor
                             (as the checkpoints' tokenizer.json has)
  tokenizer_config.json      with the Llama-3.1/3.2-Instruct chat template as Meta documents it
                             (llama_models/llama3_2/text_prompt_format.md): a system block with
                             "Cutting Knowledge Date" and "Today Date" in every prompt
  config.json                LlamaForCausalLM config with the real vocabulary (dims as asked)
Nothing is downloaded. The conversion (about 5 s) runs once per test process.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

VOCAB_SIZE = 128_256
BOS, EOT = "<|begin_of_text|>", "<|eot_id|>"

# Text-only form of the Llama-3.1/3.2-Instruct template: always a system block with the dates.
META_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def tokenizer_model() -> Path:
    """The real Llama-3 tiktoken file shipped by `llama-models`."""
    import llama_models

    return Path(llama_models.__file__).parent / "llama3" / "tokenizer.model"


def _special_tokens() -> dict[str, int]:
    from llama_models.llama3.tokenizer import Tokenizer

    return dict(Tokenizer(tokenizer_model()).special_tokens)


@functools.cache
def hf_tokenizer_json() -> Path:
    """tokenizer.json converted from the tiktoken file (cached for the test process)."""
    from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer
    from tokenizers import AddedToken, processors
    from transformers.convert_slow_tokenizer import TikTokenConverter

    converted = TikTokenConverter(vocab_file=str(tokenizer_model()), pattern=MetaTokenizer.pat_str).converted()
    specials = sorted(_special_tokens().items(), key=lambda kv: kv[1])
    converted.add_special_tokens([AddedToken(token, special=True, normalized=False) for token, _ in specials])
    wrong = {t: i for t, i in specials if converted.token_to_id(t) != i}
    if wrong:
        raise RuntimeError(f"special tokens got other ids than Meta's: {list(wrong)[:3]}")
    bos_id = converted.token_to_id(BOS)
    converted.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]),
    ])
    out = Path(tempfile.mkdtemp(prefix="sweepflow-llama3-tok-")) / "tokenizer.json"
    converted.save(str(out))
    return out


def make_llama3_instruct_folder(folder: Path, weight_files: list[str] = (), dims: tuple[int, int] = (64, 2),
                                config: dict | None = None) -> Path:
    """A Llama-3.2-Instruct-shaped folder with the real tokenizer; `weight_files` get a few zero bytes.

    `dims`: config.json's (hidden_size, num_hidden_layers); a named registry model's own, where
    verification compares them (the weights are never loaded). `config`: more config.json fields
    (a real model's whole shape: `tests.support.fakesite.REAL_CONFIGS`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "original").mkdir(exist_ok=True)
    shutil.copyfile(tokenizer_model(), folder / "original" / "tokenizer.model")
    shutil.copyfile(hf_tokenizer_json(), folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOT,
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "chat_template": META_CHAT_TEMPLATE,
    }, indent=2))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB_SIZE,
        "hidden_size": dims[0], "intermediate_size": 256, "num_hidden_layers": dims[1], "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "float32",
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], **(config or {}),
    }, indent=2))
    for name in weight_files:
        (folder / name).write_bytes(b"\0" * 256)
    return folder
