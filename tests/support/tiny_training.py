"""Runs and real CPU training of the tiny model, for the torchtune tests (config, merge, resume).

`make_run` builds a fine-tune `Run` by hand; `tiny_setup` makes the tiny model
(examples/make_tiny_model.py) and a small dataset; `tiny_run` is a run of it; `tune_run` trains it
with `tune run` in a subprocess (PYTHONPATH = the repository, offline).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tasks.model._design import DatasetSpec
from tasks.model._plan import Run, RunParams
from tasks.training._config import REPO_ROOT


def make_run(model: str, *, validation: bool, rank: int = 8, prompt: str = "Capitalize the word.",
             tmp: Path = Path("/data")) -> Run:
    """A fine-tune run of `model` (rank `rank`, 2 epochs, bf16) whose dataset and model folder are under `tmp`."""
    params = RunParams(
        lora_rank=rank, lora_alpha=2 * rank, lora_dropout=0.05, lora_attn_modules=["q_proj", "v_proj", "output_proj"],
        apply_lora_to_mlp=False, learning_rate=3e-4, weight_decay=0.01, num_warmup_steps=100, epochs=2,
        batch_size=4, gradient_accumulation_steps=2, max_seq_len=512, packed=True, validation=validation,
        validate_every_n_steps=50 if validation else None, seed=42, dtype="bf16",
        save_adapter_weights_only=False, system_prompt=prompt,
        dataset=DatasetSpec(path=tmp / "words_5L.json"),
    )
    return Run(name=f"{model}_rank{rank}", kind="finetune", model=model, model_dir=tmp / "models" / model, params=params)


def write_config(path: Path, text: str) -> Path:
    """Write `text` (a rendered config) to `path`, UTF-8; return the path."""
    path.write_text(text, encoding="utf-8")
    return path


def tiny_setup(tmp_path: Path) -> tuple[Path, Path]:
    """The tiny model (examples/make_tiny_model.py) under tmp_path/models, and a 24-word dataset."""
    from examples.make_tiny_model import make_tiny_model

    model_dir = make_tiny_model(tmp_path / "models")
    words = ["apple", "river", "stone", "cloud", "green", "light", "music", "paper", "table", "water", "house", "night"]
    records = [{"input": w, "output": w.upper()} for w in words]
    data = tmp_path / "words.json"
    data.write_text(json.dumps({"train": records * 2, "validation": records[:4], "test": records[:4]}), encoding="utf-8")
    return model_dir, data


def tiny_run(tmp_path: Path, model_dir: Path, data: Path, *, validation: bool, **params: object) -> Run:
    """A rank-4 run of the tiny model on `data`, fp32, batch 2, no warm-up; `params` override the rest."""
    base = make_run("Llama-3-Tiny-Instruct", validation=validation, rank=4, tmp=tmp_path)
    fields = {"dataset": DatasetSpec(path=data), "dtype": "fp32", "batch_size": 2, "gradient_accumulation_steps": 1,
              "num_warmup_steps": 0, **params}
    return base.model_copy(update={"model_dir": model_dir, "params": base.params.model_copy(update=fields)})


def tune_run(recipe: str, run_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`tune run RECIPE --config finetune.yaml` in run_dir, offline, on CPU threads; it must succeed."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TIKTOKEN_CACHE_DIR": "", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    tune = Path(sys.executable).with_name("tune")
    proc = subprocess.run([str(tune), "run", recipe, "--config", "finetune.yaml"],
                          cwd=run_dir, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
