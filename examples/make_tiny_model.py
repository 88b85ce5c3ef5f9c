"""Make the tiny Llama-3-architecture model `Llama-3-Tiny-Instruct` locally (no download).

Reads: nothing. Writes: `OUT_DIR/Llama-3-Tiny-Instruct/` holding
  config.json, generation_config.json, model.safetensors  (random init, fixed seed, fp32)
  tokenizer.model        tiktoken format (`base64(byte) rank`, 256 lines) for torchtune
  tokenizer.json         byte-level BPE for transformers; its added_tokens are the 10
                         special tokens (ids 256-265) torchtune's Llama3Tokenizer needs
  tokenizer_config.json  with a Llama-3 chat template that renders exactly what torchtune's
                         Llama3Tokenizer trains on
The folder loads in torchtune (`FullModelHFCheckpointer(model_type=LLAMA3)` with
`tasks.training.tiny_llama.lora_tiny_llama3` / `tiny_tokenizer`) and in transformers / inspect's `hf/`
provider. Running it again is a no-op when the folder already holds identical files; a
folder with different content is an error unless `overwrite=True` (`--overwrite`).

    python -m examples.make_tiny_model OUT_DIR [--seed 0] [--overwrite]
"""

from __future__ import annotations

import argparse
import base64
import filecmp
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

for _var, _val in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1")):
    os.environ.setdefault(_var, _val)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python examples/make_tiny_model.py` as well as `-m`
    sys.path.insert(0, str(REPO))

from tasks.training import tiny_llama as T  # noqa: E402

MODEL_NAME = "Llama-3-Tiny-Instruct"
DEFAULT_SEED = 0
# Every weight is N(0, 0.02) (transformers' default) except the output head. LoRA leaves the
# head and the final RMSNorm frozen, so with a 0.02 head the largest reachable logit is about
# 64 * 0.02 = 1.3 and training stalls at loss ~4.6 (measured); a 0.25 head lets attention-only
# LoRA reach loss ~0.02 and 95-100 % exact match on unseen words.
LM_HEAD_STD = 0.25

# Renders the same token stream as torchtune's Llama3Tokenizer.tokenize_messages:
# <bos> then, per message, <|start_header_id|>role<|end_header_id|>\n\n content.strip() <|eot_id|>
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] | trim + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what ByteLevel pre-tokenizers use)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiktoken_text() -> str:
    return "".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(T.NUM_BYTES))


def hf_tokenizer_json() -> str:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {ch: b for b, ch in bytes_to_unicode().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    specials = sorted(T.SPECIAL_TOKENS.items(), key=lambda kv: kv[1])
    tok.add_special_tokens([AddedToken(content, special=True, normalized=False) for content, _ in specials])
    got = {content: tok.token_to_id(content) for content, _ in specials}
    if got != T.SPECIAL_TOKENS:
        raise RuntimeError(f"special token ids came out as {got}, expected {T.SPECIAL_TOKENS}")
    return json.dumps(json.loads(tok.to_str()), indent=2, ensure_ascii=False) + "\n"


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "pad_token": "<|finetune_right_pad_id|>",
        "model_max_length": T.MAX_SEQ_LEN,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "chat_template": CHAT_TEMPLATE,
    }


def _write_model(folder: Path, seed: int) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=T.VOCAB_SIZE,
        hidden_size=T.EMBED_DIM,
        intermediate_size=T.INTERMEDIATE_DIM,
        num_hidden_layers=T.NUM_LAYERS,
        num_attention_heads=T.NUM_HEADS,
        num_key_value_heads=T.NUM_KV_HEADS,
        head_dim=T.HEAD_DIM,
        max_position_embeddings=T.MAX_SEQ_LEN,
        rms_norm_eps=T.NORM_EPS,
        rope_theta=float(T.ROPE_BASE),
        tie_word_embeddings=T.TIE_WORD_EMBEDDINGS,
        bos_token_id=T.BOS_ID,
        eos_token_id=list(T.STOP_IDS),
        pad_token_id=T.PAD_ID,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        initializer_range=0.02,
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32).eval()
        with torch.no_grad():  # see LM_HEAD_STD
            model.lm_head.weight.normal_(mean=0.0, std=LM_HEAD_STD)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = GenerationConfig(
        bos_token_id=T.BOS_ID, eos_token_id=list(T.STOP_IDS), pad_token_id=T.PAD_ID, do_sample=False
    )
    model.save_pretrained(folder, max_shard_size="10GB")
    if not (folder / "model.safetensors").is_file():
        raise RuntimeError(f"save_pretrained did not write {folder / 'model.safetensors'}")


def build(folder: Path, seed: int = DEFAULT_SEED) -> None:
    """Write every file of the tiny model into `folder` (which must exist)."""
    _write_model(folder, seed)
    (folder / "tokenizer.model").write_text(tiktoken_text(), encoding="ascii")
    (folder / "tokenizer.json").write_text(hf_tokenizer_json(), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n", encoding="utf-8")


def _same_tree(a: Path, b: Path) -> bool:
    names_a = sorted(p.name for p in a.iterdir())
    names_b = sorted(p.name for p in b.iterdir())
    return names_a == names_b and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names_a)


def make_tiny_model(out_dir: str | Path, seed: int = DEFAULT_SEED, overwrite: bool = False) -> Path:
    """Create `out_dir/Llama-3-Tiny-Instruct/` and return its path.

    Skips the work when the folder already holds exactly these files; raises
    FileExistsError when it holds something else, unless `overwrite`.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    target = out_dir / MODEL_NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}.", dir=out_dir))
    try:
        build(tmp, seed)
        if target.exists():
            if target.is_dir() and _same_tree(tmp, target):
                return target
            if not overwrite:
                raise FileExistsError(
                    f"{target} exists with different content; remove it or pass overwrite=True (--overwrite)"
                )
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        tmp.chmod(0o755)  # mkdtemp makes 0700; models_dir is often shared
        for item in tmp.iterdir():
            item.chmod(0o644)
        tmp.rename(target)
        return target
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder that receives Llama-3-Tiny-Instruct/ (a models_dir)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--overwrite", action="store_true", help="replace a folder with different content")
    args = parser.parse_args(argv)
    try:
        path = make_tiny_model(args.out_dir, seed=args.seed, overwrite=args.overwrite)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
