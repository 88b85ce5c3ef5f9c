"""The tiny local example: dataset generator, tiny model files, tokenizers, eval task, design.

Fast (about 15 s, CPU only, nothing downloaded): the model is made once per module into a
temporary folder. Training is not run here; tests/fixtures/real_cpu_log/ holds a real log.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# `examples` is not an installed package: pytest's pythonpath (pyproject.toml) puts the repository root first
from examples import make_tiny_model as mtm
from examples.capitalization import make_dataset as md
from tasks.training import tiny_llama as T
from tests.support.paths import REPO_DIR as REPO

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TIKTOKEN_CACHE_DIR": "",  # tiktoken would otherwise cache local files by path
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in OFFLINE.items():
            mp.setenv(key, value)
        return mtm.make_tiny_model(tmp_path_factory.mktemp("models"))


# --- dataset -------------------------------------------------------------------------


def test_dataset_is_deterministic_and_seed_dependent() -> None:
    assert md.make_dataset(5, 200) == md.make_dataset(5, 200)
    assert md.make_dataset(5, 200, seed=1) != md.make_dataset(5, 200)
    assert md.to_json(md.make_dataset(6, 100)) == md.to_json(md.make_dataset(6, 100))


@pytest.mark.parametrize("word_len,num_words", [(5, 2000), (8, 1000), (3, 15)])
def test_dataset_splits_and_rows(word_len: int, num_words: int) -> None:
    data = md.make_dataset(word_len, num_words)
    assert list(data) == ["train", "validation", "test"]
    sizes = {k: len(v) for k, v in data.items()}
    assert sizes["train"] == num_words * 80 // 100
    assert sizes["validation"] == num_words // 10
    assert sum(sizes.values()) == num_words and sizes["test"] >= 1
    words = [row["input"] for rows in data.values() for row in rows]
    assert len(set(words)) == num_words, "words repeat, so test words could leak from training"
    for rows in data.values():
        for row in rows:
            assert set(row) == {"input", "output"}
            assert len(row["input"]) == word_len and row["input"].isalpha() and row["input"].islower()
            assert row["output"] == row["input"][0].upper() + row["input"][1:]


def test_dataset_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError, match="distinct"):
        md.make_dataset(1, 27)
    with pytest.raises(ValueError, match="at least 10"):
        md.make_dataset(5, 9)


def test_write_dataset_default_name_one_json_object_and_idempotent(tmp_path: Path) -> None:
    path = md.write_dataset(tmp_path, word_len=5, num_words=100)
    assert path == tmp_path / "words_5L_80P_100.json"
    loaded = json.loads(path.read_text())
    assert loaded == md.make_dataset(5, 100)
    before = path.stat().st_mtime_ns
    assert md.write_dataset(tmp_path, word_len=5, num_words=100) == path
    assert path.stat().st_mtime_ns == before
    explicit = md.write_dataset(tmp_path / "sub" / "x.json", word_len=4, num_words=50)
    assert explicit.name == "x.json" and len(json.loads(explicit.read_text())["test"]) == 5
    assert md.main([str(tmp_path / "cli"), "--word-len", "6", "--num-words", "40"]) == 0
    assert (tmp_path / "cli" / "words_6L_80P_40.json").is_file()


def test_dataset_loads_the_way_the_torchtune_config_reads_it(tmp_path: Path) -> None:
    """source: json + data_files + field: train + split: train (what instruct_dataset passes on)."""
    from datasets import load_dataset

    path = md.write_dataset(tmp_path, word_len=5, num_words=50)
    for split, n in (("train", 40), ("validation", 5), ("test", 5)):
        ds = load_dataset("json", data_files=str(path), field=split, split="train", cache_dir=str(tmp_path / "cache"))
        assert len(ds) == n and ds.column_names == ["input", "output"]
        assert ds[0] == md.make_dataset(5, 50)[split][0]


# --- tiny model ------------------------------------------------------------------------


def test_model_folder_files(model_dir: Path) -> None:
    assert model_dir.name == "Llama-3-Tiny-Instruct"
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"} <= names
    config = json.loads((model_dir / "config.json").read_text())
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (T.VOCAB_SIZE, T.EMBED_DIM, T.NUM_LAYERS)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (T.NUM_HEADS, T.NUM_KV_HEADS)
    lines = (model_dir / "tokenizer.model").read_text().splitlines()
    assert len(lines) == 256 and lines[65] == "QQ== 65"
    added = json.loads((model_dir / "tokenizer.json").read_text())["added_tokens"]
    assert {t["content"]: t["id"] for t in added} == T.SPECIAL_TOKENS
    assert sorted(T.SPECIAL_TOKENS.values()) == list(range(256, 266))


def test_make_tiny_model_is_idempotent_and_refuses_other_content(model_dir: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    assert mtm.make_tiny_model(model_dir.parent) == model_dir
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")], "temporary folder left behind"
    with pytest.raises(FileExistsError):
        mtm.make_tiny_model(model_dir.parent, seed=1)
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def test_loads_in_transformers_and_tokenizer_round_trips(model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    for text in ["mynbi", "Hello, World!", "héllo ✓ 日本", "  a\n\nb  "]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == list(text.encode("utf-8"))
        assert tok.decode(ids) == text
    assert tok.convert_tokens_to_ids("<|eot_id|>") == T.EOT_ID and tok.bos_token_id == T.BOS_ID

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    assert 150_000 < sum(p.numel() for p in model.parameters()) < 170_000
    chat = tok.apply_chat_template([{"role": "user", "content": "mynbi"}], add_generation_prompt=True, tokenize=False)
    enc = tok(chat, return_tensors="pt")
    assert enc["input_ids"][0].tolist().count(T.BOS_ID) == 1, "inspect's hf provider tokenizes the rendered chat: one BOS"
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape[1] <= enc["input_ids"].shape[1] + 4


def test_torchtune_tokenizer_builder_matches_transformers(model_dir: Path) -> None:
    from torchtune.data import Message
    from transformers import AutoTokenizer

    tt = T.tiny_tokenizer(str(model_dir / "tokenizer.model"), special_tokens_path=str(model_dir / "tokenizer.json"), max_seq_len=2048)
    builtin = T.tiny_tokenizer(str(model_dir / "tokenizer.model"))
    assert tt.special_tokens == builtin.special_tokens == T.SPECIAL_TOKENS
    assert tt.vocab_size == T.VOCAB_SIZE
    assert tt.encode("Qpmzj", add_bos=False, add_eos=False) == list(b"Qpmzj")
    assert tt.decode(tt.encode("héllo")) == "héllo"

    # The chat template renders exactly the prompt torchtune trains on.
    hf = AutoTokenizer.from_pretrained(model_dir)
    for system in ("", "Capitalize the word."):
        messages = ([Message(role="system", content=system, masked=True)] if system else []) + [
            Message(role="user", content="mynbi", masked=True),
            Message(role="assistant", content="Mynbi"),
        ]
        tokens, mask = tt.tokenize_messages(messages)
        chat = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "mynbi"}]
        prompt = hf(hf.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))["input_ids"]
        assert tokens[: len(prompt)] == prompt
        assert tokens[len(prompt) :] == list(b"Mynbi") + [T.EOT_ID, T.EOS_ID]
        # loss on the assistant turn (its header included), none on system/user or BOS
        header = 1 + len(b"assistant") + 3
        assert not any(mask[len(prompt) - header : len(prompt) + 6]) and all(mask[: len(prompt) - header])


def test_torchtune_checkpointer_and_lora_builder_match_transformers(model_dir: Path, tmp_path: Path) -> None:
    import torch
    from torchtune.training import FullModelHFCheckpointer
    from transformers import AutoModelForCausalLM

    ckpt = FullModelHFCheckpointer(
        checkpoint_dir=str(model_dir), checkpoint_files=["model.safetensors"], model_type="LLAMA3", output_dir=str(tmp_path)
    )
    state = ckpt.load_checkpoint()["model"]
    model = T.lora_tiny_llama3(["q_proj", "v_proj", "output_proj"], lora_rank=4, lora_alpha=8)
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all("lora_" in k for k in result.missing_keys)
    model.eval()
    ids = torch.tensor([[T.BOS_ID, *b"mynbi", T.EOT_ID]])
    hf = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        diff = (model(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-4  # LoRA B starts at zero, so the LoRA model is the base model
    with pytest.raises(ValueError, match="untied"):
        T.lora_tiny_llama3(["q_proj"], tie_word_embeddings=True)


# --- evaluation task -----------------------------------------------------------------


def _load_eval_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cap_eval", REPO / "examples" / "capitalization" / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_task_reads_test_split_and_system_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inspect_ai.model import ChatMessageSystem

    cap = _load_eval_module()
    path = md.write_dataset(tmp_path, word_len=5, num_words=100)
    task = cap.capitalization(dataset=str(path))
    assert len(task.dataset) == 10
    first = task.dataset[0]
    assert first.target == md.make_dataset(5, 100)["test"][0]["output"]
    assert not any(isinstance(m, ChatMessageSystem) for m in first.input)
    task = cap.capitalization(dataset=str(path), system_prompt="Capitalize the word.", split="validation")
    assert isinstance(task.dataset[0].input[0], ChatMessageSystem) and len(task.dataset) == 10
    monkeypatch.setenv(cap.ENV_VAR, str(path))
    assert cap.dataset_path() == path.resolve()
    with pytest.raises(FileNotFoundError, match="-T dataset"):
        cap.capitalization(dataset=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="no 'dev' split"):
        cap.capitalization(dataset=str(path), split="dev")


def test_eval_exact_match_is_case_sensitive_and_strips_whitespace(tmp_path: Path) -> None:
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    cap = _load_eval_module()
    path = md.write_dataset(tmp_path, word_len=5, num_words=100)
    test = md.make_dataset(5, 100)["test"]

    def answer(messages, tools, tool_choice, config):
        word = messages[-1].text
        # right answer with stray whitespace for a-m, the wrong case (all caps) for n-z
        content = f"  {word.capitalize()}\n" if word[0] <= "m" else word.upper()
        output = ModelOutput.from_content(model="mockllm/model", content=content)
        # with usage given, mockllm does not count tokens with tiktoken (which would download o200k_base)
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return output

    model = get_model("mockllm/model", custom_outputs=answer)
    [log] = inspect_eval(cap.capitalization(dataset=str(path)), model=model, log_dir=str(tmp_path / "logs"), display="none", limit=8)
    assert log.status == "success"
    expected = sum(row["input"][0] <= "m" for row in test[:8]) / 8
    assert 0 < expected < 1
    assert log.results.scores[0].metrics["accuracy"].value == pytest.approx(expected)


# --- demo design ---------------------------------------------------------------------


def test_demo_design_loads_and_points_into_demo() -> None:
    from tasks.model._design_file import load_design
    from tasks.planning._expand import expand_design

    design = load_design(REPO / "examples" / "tiny_demo" / "design.yaml")
    assert design.models == ["Llama-3-Tiny-Instruct"]
    assert design.paths.models_dir == REPO / "demo" / "models"
    assert design.paths.output_dir == REPO / "demo" / "experiments"
    assert design.dataset.path == REPO / "demo" / "data" / "words_5L_80P_5000.json"
    assert design.evaluation.tasks[0].script == REPO / "examples" / "capitalization" / "eval.py"
    runs = expand_design(design)
    assert sorted(r.name for r in runs) == [
        "Llama-3-Tiny-Instruct_base",
        "Llama-3-Tiny-Instruct_rank16_rep1",
        "Llama-3-Tiny-Instruct_rank16_rep2",
        "Llama-3-Tiny-Instruct_rank4_rep1",
        "Llama-3-Tiny-Instruct_rank4_rep2",
    ]
    assert sorted(r.params.seed for r in runs if not r.is_control) == [42, 42, 1042, 1042]


def test_make_example_fills_a_root(tmp_path: Path, model_dir: Path) -> None:
    from examples.tiny_demo.make_example import make_example

    paths = make_example(tmp_path)
    assert paths["model"] == tmp_path / "models" / "Llama-3-Tiny-Instruct"
    assert paths["dataset"] == tmp_path / "data" / "words_5L_80P_5000.json"
    assert (paths["model"] / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()
    assert len(json.loads(paths["dataset"].read_text())["test"]) == 500
