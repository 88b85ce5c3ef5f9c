"""Adapter-only checkpoints made evaluable: tasks/evaluation/merge_adapter.py and the evaluation script.

The generated evaluation scripts that call it are run in tests/setup/test_full_cluster_scripts.py
(stub programs). The slow test trains the tiny model twice with real `tune run` (adapter only, then merged
weights, same seed) and checks that sweepflow's merge of the adapter-only epoch equals the
merged checkpoint torchtune wrote itself, and that transformers loads the merged folder.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tasks.core._errors import SweepflowError
from tasks.evaluation.merge_adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, is_adapter_only, merge_adapter
from tests.support.paths import REPO_DIR

REPO_ROOT = REPO_DIR
P = "base_model.model.model.layers.0.self_attn."


def _base(folder: Path, **tensors: torch.Tensor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors or {"model.layers.0.self_attn.q_proj.weight": torch.zeros(4, 3)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"base": true}')
    (folder / "tokenizer.json").write_text("{}")
    return folder


def _adapter(folder: Path, r: int = 2, alpha: float = 4.0, **config: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_file({f"{P}q_proj.lora_A.weight": torch.randn(r, 3), f"{P}q_proj.lora_B.weight": torch.randn(4, r)},
              str(folder / ADAPTER_WEIGHTS))
    (folder / ADAPTER_CONFIG).write_text(json.dumps({"r": r, "lora_alpha": alpha, **config}))
    (folder / "config.json").write_text('{"epoch": true}')
    return folder


def test_merge_adds_scaled_b_times_a_and_keeps_the_other_files(tmp_path: Path) -> None:
    base = _base(tmp_path / "base", **{"model.layers.0.self_attn.q_proj.weight": torch.ones(4, 3, dtype=torch.bfloat16),
                                       "model.norm.weight": torch.ones(3)})
    epoch = _adapter(tmp_path / "epoch_0")
    assert is_adapter_only(epoch) and not is_adapter_only(base)
    out = tmp_path / "merged"
    assert merge_adapter(epoch, base, out) == ["model.layers.0.self_attn.q_proj.weight"]
    adapter = load_file(str(epoch / ADAPTER_WEIGHTS))
    expected = torch.ones(4, 3) + 2.0 * adapter[f"{P}q_proj.lora_B.weight"] @ adapter[f"{P}q_proj.lora_A.weight"]
    merged = load_file(str(out / "model.safetensors"))
    assert merged["model.layers.0.self_attn.q_proj.weight"].dtype == torch.bfloat16  # the base weight's dtype
    assert torch.allclose(merged["model.layers.0.self_attn.q_proj.weight"].float(), expected, atol=0.05)
    assert torch.equal(merged["model.norm.weight"], torch.ones(3))
    assert json.loads((out / "config.json").read_text()) == {"epoch": True}  # the epoch's copy wins
    assert (out / "tokenizer.json").exists() and not (out / ADAPTER_CONFIG).exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda e, b: (e / ADAPTER_CONFIG).unlink(), "adapter_config.json: missing"),
    (lambda e, b: (e / ADAPTER_CONFIG).write_text('{"r": 2}'), "needs r and lora_alpha"),
    (lambda e, b: (e / ADAPTER_CONFIG).write_text('{"r": 2, "lora_alpha": 4, "use_dora": true}'), "DoRA"),
    (lambda e, b: save_file({"model.layers.0.self_attn.q_proj.weight": torch.zeros(5, 3)}, str(b / "model.safetensors")),
     "the adapter belongs to another model"),
    (lambda e, b: save_file({"model.norm.weight": torch.zeros(3)}, str(b / "model.safetensors")),
     "the base model lacks: model.layers.0.self_attn.q_proj.weight"),
    (lambda e, b: (b / "model.safetensors").unlink(), "no *.safetensors weights"),
])
def test_bad_inputs_name_the_file_and_the_problem(tmp_path: Path, change, message: str) -> None:
    base, epoch = _base(tmp_path / "base"), _adapter(tmp_path / "epoch_0")
    change(epoch, base)
    with pytest.raises(SweepflowError, match=re.escape(message)):
        merge_adapter(epoch, base, tmp_path / "merged")


def test_cli_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tasks.evaluation.merge_adapter", str(tmp_path / "nope"), str(tmp_path), str(tmp_path / "o")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("sweepflow: cannot merge the adapter:") and "nope/adapter_config.json" in proc.stderr


@pytest.mark.slow
def test_merged_adapter_only_epoch_equals_torchtunes_own_merge(tmp_path: Path) -> None:
    from tasks.training._config import recipe_for, render_finetune_config
    from tests.support.tiny_training import tiny_run, tiny_setup, tune_run, write_config

    model_dir, data = tiny_setup(tmp_path)
    run_dirs = {}
    for adapter_only in (True, False):
        run = tiny_run(tmp_path, model_dir, data, validation=False, packed=False, max_seq_len=64, learning_rate=0.05,
                       epochs=1, save_adapter_weights_only=adapter_only)
        run_dir = run_dirs[adapter_only] = tmp_path / ("adapter_only" if adapter_only else "full")
        run_dir.mkdir()
        text = render_finetune_config(run, run_dir, device="cpu")
        write_config(run_dir / "finetune.yaml", text.replace("max_steps_per_epoch: null", "max_steps_per_epoch: 3"))
        tune_run(recipe_for(1, False, "cpu"), run_dir, tmp_path)

    epoch = run_dirs[True] / "epoch_0"
    assert is_adapter_only(epoch) and not is_adapter_only(run_dirs[False] / "epoch_0")
    out = tmp_path / "merged"
    changed = merge_adapter(epoch, model_dir, out)
    ours = load_file(str(out / "model.safetensors"))
    theirs: dict[str, torch.Tensor] = {}
    for shard in (run_dirs[False] / "epoch_0").glob("model-*.safetensors"):
        theirs.update(load_file(str(shard)))
    base_weights = load_file(str(model_dir / "model.safetensors"))
    assert changed and all(not torch.equal(ours[n], base_weights[n]) for n in changed)  # training moved them
    assert set(ours) == set(theirs)
    assert max(float((ours[n] - theirs[n]).abs().max()) for n in ours) < 1e-5

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("apple", return_tensors="pt").input_ids
    assert model(ids).logits.shape[-1] == model.config.vocab_size
