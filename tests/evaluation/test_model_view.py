"""Exactly one copy of the fine-tune at evaluation, with `peft` installed.

An epoch folder is built as torchtune writes one: merged weights (model.safetensors, config)
*and* the PEFT adapter (adapter_config.json, adapter_model.safetensors) of the same LoRA.
In an evaluation environment of transformers + peft (no torchao, as an inspect-only env has),
loading the folder itself, as evaluation used to, applies the adapter on top of the merged
weights: the logits move with no error. In torchtune's environment (torchao 0.15.0) peft >= 0.19
refuses torchao instead, so loading the folder raises. Through `weights_only_view` both load
exactly the merged checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import sys

import pytest
import torch

from tasks.core._errors import SweepflowError
from tasks.evaluation.model_view import ADAPTER_FILES, main, weights_only_view

INPUT = torch.tensor([[1, 5, 9, 2, 7, 3]])


def _tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(INPUT).logits


def _clear_peft_caches() -> None:
    from peft import import_utils

    import_utils.is_torchao_available.cache_clear()


@pytest.fixture
def no_torchao(monkeypatch: pytest.MonkeyPatch):
    """An evaluation environment without torchao (find_spec("torchao") is None)."""
    monkeypatch.setitem(sys.modules, "torchao", None)
    _clear_peft_caches()
    yield monkeypatch
    monkeypatch.undo()
    _clear_peft_caches()


@pytest.fixture
def epoch_dir(tmp_path: Path, no_torchao: pytest.MonkeyPatch) -> tuple[Path, torch.Tensor]:
    """(epoch folder with merged weights + adapter, the merged model's logits)."""
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(_tiny_llama(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # a trained adapter (B starts at zero)
    folder = tmp_path / "epoch_0"
    lora.save_pretrained(folder)  # adapter_config.json, adapter_model.safetensors
    merged = lora.merge_and_unload()
    merged.save_pretrained(folder)  # config.json, model.safetensors
    assert {"adapter_config.json", "adapter_model.safetensors", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    return folder, _logits(merged)


def test_peft_is_importable_so_the_double_adapter_is_real() -> None:
    import peft  # noqa: F401  (the lock installs it, as most LoRA environments do)


def test_folder_itself_applies_lora_twice(epoch_dir: tuple[Path, torch.Tensor]) -> None:
    from transformers import AutoModelForCausalLM

    folder, merged_logits = epoch_dir
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert getattr(loaded, "_hf_peft_config_loaded", False)  # transformers attached the adapter
    assert not torch.allclose(_logits(loaded), merged_logits, atol=1e-4)  # the old path's silent error


def test_view_evaluates_the_merged_checkpoint_exactly(epoch_dir: tuple[Path, torch.Tensor], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    folder, merged_logits = epoch_dir
    view = tmp_path / "view"
    linked = weights_only_view(folder, view)
    assert not ADAPTER_FILES & set(linked) and "model.safetensors" in linked
    assert all((view / name).is_symlink() for name in linked)  # nothing copied
    loaded = AutoModelForCausalLM.from_pretrained(view).eval()
    assert not getattr(loaded, "_hf_peft_config_loaded", False)
    assert torch.allclose(_logits(loaded), merged_logits, atol=1e-6)


def test_in_torchtune_env_the_folder_fails_and_the_view_loads(
    epoch_dir: tuple[Path, torch.Tensor], no_torchao: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    no_torchao.undo()  # torchao 0.15.0 importable again, as in the torchtune environment
    _clear_peft_caches()
    folder, merged_logits = epoch_dir
    with pytest.raises(ImportError, match="incompatible version of torchao"):
        AutoModelForCausalLM.from_pretrained(folder)
    weights_only_view(folder, tmp_path / "view")
    assert torch.allclose(_logits(AutoModelForCausalLM.from_pretrained(tmp_path / "view").eval()), merged_logits, atol=1e-6)


def test_adapter_only_folder_and_missing_folder_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    adapter_only = tmp_path / "epoch_0"
    adapter_only.mkdir()
    (adapter_only / "adapter_model.safetensors").write_bytes(b"\0")
    with pytest.raises(SweepflowError, match="no model weights besides the adapter"):
        weights_only_view(adapter_only, tmp_path / "v1")
    assert main([str(tmp_path / "missing"), str(tmp_path / "v2")]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err
    assert not (tmp_path / "v2").exists()
