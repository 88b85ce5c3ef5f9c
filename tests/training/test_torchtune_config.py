"""The torchtune side of setup-experiment: recipe choice, finetune.yaml rendering, `tune validate`.

Reads: the model registry, templates/torchtune/finetune.yaml.j2, torchtune. Writes: only under tmp_path.
The slow test trains the tiny model (examples/make_tiny_model.py) for 2 short epochs on CPU.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tasks.training._config import (
    REPO_ROOT,
    FinetuneContext,
    recipe_for,
    render_finetune_config,
    validate_config,
    yaml_scalar,
)
from tasks.training._registry import REGISTRY
from tasks.training._prior_logs import parse_log_text
from tests.support.tiny_training import make_run, tiny_run, tiny_setup, tune_run, write_config

HOSTILE_PROMPT = (
    'You are "helpful": answer in ONE word.\n  - no lists; # not a comment\n'
    "key: value, {braces} [brackets] & *star !tag %percent @at `tick` 'single' \\back\\slash\\n\t"
    "tab, unicode é ✓ 😀, trailing spaces   \n{{ jinja }} {% raw %} \x85nel \u2028ls"
)


@pytest.mark.parametrize(
    ("gpus", "validation", "device", "expected"),
    [
        (1, False, "cuda", "sweepflow_recipes/lora_finetune_single_device.py"),
        (1, True, "cuda", "sweepflow_recipes/lora_finetune_single_device_val.py"),
        (4, False, "cuda", "sweepflow_recipes/lora_finetune_distributed.py"),
        (2, True, "cuda", "sweepflow_recipes/lora_finetune_distributed_val.py"),
        (4, True, "cpu", "sweepflow_recipes/lora_finetune_single_device_val.py"),
    ],
)
def test_recipe_for(gpus: int, validation: bool, device: str, expected: str) -> None:
    assert recipe_for(gpus, validation, device) == expected
    assert (REPO_ROOT / expected).is_file()


def test_recipe_for_rejects_zero_gpus() -> None:
    with pytest.raises(ValueError):
        recipe_for(0, False)


def test_every_registry_model_both_recipes_with_and_without_validation_passes_tune_validate(tmp_path: Path) -> None:
    """All registry models x {1, 4 GPUs} x {validation on, off}: rendered, parsed, `tune validate`d."""
    failures = []
    count = 0
    for model in REGISTRY:
        for gpus in (1, 4):
            for validation in (False, True):
                run = make_run(model, validation=validation, tmp=tmp_path)
                run_dir = tmp_path / "group" / f"{run.name}_{gpus}_{validation}"
                run_dir.mkdir(parents=True)
                text = render_finetune_config(run, run_dir, device="cuda", plan_context=FinetuneContext(gpus=gpus))
                path = run_dir / "finetune.yaml"
                path.write_text(text, encoding="utf-8")
                cfg = yaml.safe_load(text)
                recipe = recipe_for(gpus, validation)
                assert f"tune run {'--nnodes 1 --nproc_per_node 4 ' if gpus > 1 else ''}{recipe} --config finetune.yaml" in text
                assert ("dataset_val" in cfg) is validation
                assert cfg["model"]["_component_"] == REGISTRY[model].lora_builder
                assert cfg["checkpointer"]["model_type"] == REGISTRY[model].model_type
                ok, message = validate_config(path)
                count += 1
                if not ok:
                    failures.append(f"{model} gpus={gpus} validation={validation}: {message}")
    assert not failures, "\n".join(failures)
    assert count == len(REGISTRY) * 4


def test_values_come_from_the_run(tmp_path: Path) -> None:
    run = make_run("Llama-3.2-1B-Instruct", validation=True, rank=16, tmp=tmp_path)
    run_dir = tmp_path / "group" / run.name
    cfg = yaml.safe_load(render_finetune_config(run, run_dir))
    assert cfg["model"]["lora_rank"] == 16 and cfg["model"]["lora_alpha"] == 32
    assert cfg["model"]["lora_dropout"] == 0.05
    assert cfg["model"]["lora_attn_modules"] == ["q_proj", "v_proj", "output_proj"]
    assert cfg["output_dir"] == str(run_dir) == cfg["checkpointer"]["output_dir"]
    model_dir = tmp_path / "models" / "Llama-3.2-1B-Instruct"
    assert cfg["checkpointer"]["checkpoint_dir"] == str(model_dir)
    assert cfg["checkpointer"]["checkpoint_files"] == ["model.safetensors"]
    assert cfg["checkpointer"]["recipe_checkpoint"] is None and cfg["resume_from_checkpoint"] is False
    assert cfg["tokenizer"]["path"] == str(model_dir / "original/tokenizer.model")
    assert cfg["tokenizer"]["max_seq_len"] == 512
    assert (cfg["batch_size"], cfg["epochs"], cfg["gradient_accumulation_steps"], cfg["seed"]) == (4, 2, 2, 42)
    assert cfg["optimizer"]["lr"] == 3e-4 and cfg["optimizer"]["weight_decay"] == 0.01
    assert cfg["lr_scheduler"]["num_warmup_steps"] == 100
    assert cfg["metric_logger"]["log_dir"] == str(run_dir / "logs")
    assert cfg["device"] == "cuda" and cfg["dtype"] == "bf16" and cfg["save_adapter_weights_only"] is False
    for block, field, packed in (("dataset", "train", True), ("dataset_val", "validation", False)):
        data = cfg[block]
        assert data["_component_"] == "torchtune.datasets.instruct_dataset"
        assert (data["source"], data["data_files"], data["field"], data["split"]) == ("json", str(tmp_path / "words_5L.json"), field, "train")
        assert data["column_map"] == {"input": "input", "output": "output"}
        assert data["new_system_prompt"] == "Capitalize the word." and data["train_on_input"] is False
        assert data["packed"] is packed
    assert cfg["validate_every_n_steps"] == 50


def test_tiny_model_defaults_to_cpu_and_adapter_only_option(tmp_path: Path) -> None:
    run = make_run("Llama-3-Tiny-Instruct", validation=False, tmp=tmp_path)
    run = run.model_copy(update={"params": run.params.model_copy(update={"save_adapter_weights_only": True, "system_prompt": ""})})
    cfg = yaml.safe_load(render_finetune_config(run, tmp_path / "r", plan_context=FinetuneContext(gpus=4)))
    assert cfg["device"] == "cpu" and cfg["optimizer"]["fused"] is False and cfg["enable_activation_checkpointing"] is False
    assert cfg["save_adapter_weights_only"] is True
    assert cfg["dataset"]["new_system_prompt"] is None  # empty prompt: no system message, as in evaluation


def test_hostile_system_prompt_round_trips_exactly(tmp_path: Path) -> None:
    run = make_run("Qwen2.5-0.5B-Instruct", validation=True, prompt=HOSTILE_PROMPT, tmp=tmp_path)
    text = render_finetune_config(run, tmp_path / "run: #1 'x'")
    cfg = yaml.safe_load(text)
    assert cfg["dataset"]["new_system_prompt"] == HOSTILE_PROMPT
    assert cfg["dataset_val"]["new_system_prompt"] == HOSTILE_PROMPT
    assert cfg["output_dir"] == str(tmp_path / "run: #1 'x'")
    resolved = OmegaConf.to_container(OmegaConf.create(text), resolve=True)
    assert resolved["dataset"]["new_system_prompt"] == HOSTILE_PROMPT


def test_omegaconf_interpolation_in_prompt_is_escaped(tmp_path: Path) -> None:
    for prompt in ("Use ${oc.env:HOME} literally", "a \\${x} b \\\\${y}", "${", "$ {x} and }"):
        text = render_finetune_config(make_run("Llama-3.2-3B", validation=False, prompt=prompt, tmp=tmp_path), tmp_path / "r")
        cfg = OmegaConf.load(write_config(tmp_path / "f.yaml", text))
        assert OmegaConf.to_container(cfg, resolve=True)["dataset"]["new_system_prompt"] == prompt


def test_yaml_scalar_floats_and_rejections() -> None:
    assert yaml.safe_load(yaml_scalar(1e-5)) == 1e-5 and yaml_scalar(1e-5) == "1.0e-05"
    assert yaml.safe_load(yaml_scalar(3e-4)) == 3e-4
    assert yaml.safe_load(yaml_scalar([1, "a: b", None, True])) == [1, "a: b", None, True]
    with pytest.raises(ValueError):
        yaml_scalar(float("nan"))
    with pytest.raises(ValueError):
        yaml_scalar("???")


def test_refuses_controls_auto_batch_and_bad_alpha(tmp_path: Path) -> None:
    run = make_run("Llama-3.1-8B", validation=False, tmp=tmp_path)
    with pytest.raises(ValueError, match="control"):
        render_finetune_config(run.model_copy(update={"kind": "control"}), tmp_path)
    with pytest.raises(ValueError, match="auto"):
        render_finetune_config(run.model_copy(update={"params": run.params.model_copy(update={"batch_size": None})}), tmp_path)
    with pytest.raises(ValueError, match="2 x"):
        render_finetune_config(run.model_copy(update={"params": run.params.model_copy(update={"lora_alpha": 7})}), tmp_path)


def test_broken_config_fails_validation(tmp_path: Path) -> None:
    text = render_finetune_config(make_run("Llama-3.1-70B", validation=True, tmp=tmp_path), tmp_path)
    bad = write_config(tmp_path / "bad.yaml", text.replace("lora_rank:", "lora_rnak:"))
    ok, message = validate_config(bad)
    assert not ok and "lora_rnak" in message
    ok, message = validate_config(write_config(tmp_path / "bad2.yaml", text.replace("lora_llama3_1_70b", "lora_llama3_1_71b")))
    assert not ok


def test_real_tune_validate_cli_agrees(tmp_path: Path) -> None:
    """One real `tune validate` subprocess (PYTHONPATH = repo root) on a project-component config."""
    run = make_run("Llama-3-Tiny-Instruct", validation=True, tmp=tmp_path)
    path = write_config(tmp_path / "finetune.yaml", render_finetune_config(run, tmp_path, plan_context=FinetuneContext(gpus=2)))
    ok, message = validate_config(path, in_process=False)
    assert ok, message


# ------------------------------------------------------------------ real training (slow)


def _merge_error(run_dir: Path, model_dir: Path, epoch: int, scale: float) -> float:
    """max |merged - (base + scale * B @ A)| over LoRA weights of epoch_N (0 when the merge is right)."""
    from safetensors.torch import load_file

    base = load_file(str(model_dir / "model.safetensors"))
    merged: dict = {}
    for shard in sorted((run_dir / f"epoch_{epoch}").glob("model-*.safetensors")):
        merged.update(load_file(str(shard)))
    adapter = load_file(str(run_dir / f"epoch_{epoch}" / "adapter_model.safetensors"))
    a_keys = sorted(k for k in adapter if k.endswith("lora_A.weight"))
    assert a_keys and merged, (list(adapter), list(merged))
    error = 0.0
    for a_key in a_keys:
        weight_key = a_key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        delta = scale * adapter[a_key.replace("lora_A", "lora_B")] @ adapter[a_key]
        assert delta.abs().max() > 0
        error = max(error, float((merged[weight_key] - base[weight_key] - delta).abs().max()))
    return error


@pytest.mark.slow
def test_fixed_single_device_recipe_two_epochs_on_cpu_keeps_base_weights(tmp_path: Path) -> None:
    """2 epochs x 3 steps of the tiny model with `tune run`: epoch_1 = base + its own LoRA delta.

    torchtune 0.6.1's stock recipe adds the epoch_0 merge into the live base weights on CPU, so
    its epoch_1 also contains epoch_0's delta (shown here too, so the check is not vacuous).
    """
    model_dir, data = tiny_setup(tmp_path)
    run = tiny_run(tmp_path, model_dir, data, validation=True, packed=True, max_seq_len=128, learning_rate=0.05,
                   validate_every_n_steps=2)
    scale = run.params.lora_alpha / run.params.lora_rank
    text = render_finetune_config(run, tmp_path / "ours").replace("max_steps_per_epoch: null", "max_steps_per_epoch: 3")
    assert "device: \"cpu\"" in text
    ours, stock = tmp_path / "ours", tmp_path / "stock"
    for run_dir in (ours, stock):
        run_dir.mkdir()
        write_config(run_dir / "finetune.yaml", text.replace(str(ours), str(run_dir)))

    proc = tune_run(recipe_for(1, True, "cpu"), ours, tmp_path)
    lines = re.findall(r"Validation loss: \S+ \((epoch \d+, step \d+\))", proc.stdout)
    assert lines == ["epoch 0, step 2)", "epoch 0, step 3)", "epoch 1, step 4)", "epoch 1, step 6)"]
    timed = parse_log_text(proc.stdout + proc.stderr, ours / "slurm-1.out")  # what the planner reads of it
    assert timed.validation_s is not None and timed.validation_s > 0
    assert timed.epoch_end_s is not None and timed.save_s is not None and 0 <= timed.save_s <= timed.epoch_end_s
    records = [json.loads(line) for line in (ours / "validation_loss.jsonl").read_text().splitlines()]
    assert [r["epoch_end"] for r in records] == [False, True, False, True]
    assert all(r["val_loss"] > 0 and r["tokens"] > 0 for r in records)
    assert "val_loss_epoch_end" in next((ours / "logs").glob("log_*.txt")).read_text()
    for epoch in (0, 1):
        assert _merge_error(ours, model_dir, epoch, scale) < 1e-5

    tune_run("lora_finetune_single_device", stock, tmp_path)  # torchtune's own recipe
    assert _merge_error(stock, model_dir, 0, scale) < 1e-5
    assert _merge_error(stock, model_dir, 1, scale) > 1e-3  # the corruption the subclass fixes


@pytest.mark.slow
def test_distributed_val_recipe_runs_on_cpu_with_gloo(tmp_path: Path) -> None:
    """`tune run --nproc_per_node 1` of the distributed _val recipe (FSDP2 + gloo): checkpoints + validation."""
    model_dir, data = tiny_setup(tmp_path)
    run = tiny_run(tmp_path, model_dir, data, validation=True, packed=True, max_seq_len=128, validate_every_n_steps=2,
                   epochs=2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    text = render_finetune_config(run, run_dir, device="cpu")
    write_config(run_dir / "finetune.yaml", text.replace("max_steps_per_epoch: null", "max_steps_per_epoch: 3"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TIKTOKEN_CACHE_DIR": "", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    tune = Path(sys.executable).with_name("tune")
    recipe = recipe_for(2, True)  # the distributed _val recipe
    proc = subprocess.run([str(tune), "run", "--nnodes", "1", "--nproc_per_node", "1", recipe, "--config", "finetune.yaml"],
                          cwd=run_dir, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "validation_loss.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"], r["epoch_end"]) for r in records] == [(0, 2, False), (0, 3, True), (1, 4, False), (1, 6, True)]
    assert "Validation loss: " in proc.stdout
    for epoch in (0, 1):
        assert list((run_dir / f"epoch_{epoch}").glob("model-*.safetensors"))
        assert (run_dir / f"epoch_{epoch}" / "adapter_model.safetensors").is_file()
    # what the planner reads from this real distributed log (the bar on stderr, validation lines on stdout)
    from tasks.training._prior_logs import parse_log_text

    prior = parse_log_text(proc.stderr + "\n" + proc.stdout, run_dir / "slurm-1.out")
    assert (prior.recipe, prior.world_size) == ("LoRAFinetuneRecipeDistributedVal", 1)
    assert (prior.max_steps_per_epoch, prior.steps_per_epoch) == (3, 3)
    assert prior.full_steps_per_epoch is not None and prior.full_steps_per_epoch > 3  # the whole epoch, logged
    assert prior.packing_density is not None and prior.packing_density >= 1.0
    assert prior.save_s is not None and prior.validation_s is not None
    assert prior.periodic_validation_s > 0  # the step-2 and step-4 passes ran inside the bars
