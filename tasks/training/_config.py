"""torchtune specifics of a fine-tune: which recipe, the `finetune.yaml` config, its validation.

Reads: `templates/torchtune/finetune.yaml.j2`, the model registry, a `Run` (and optionally its `Plan`);
`validate_config` reads a rendered config file (and imports the `_component_`s it names).
Writes: nothing (callers write the rendered text).

Everything torchtune-specific outside the recipes lives here and in `tasks/training/_registry.py`,
so another trainer can replace torchtune by replacing these two modules and `sweepflow_recipes/`.
Values are rendered through `yaml_scalar` (JSON-style flow YAML, floats always with a dot,
OmegaConf `${` escaped), never by raw string interpolation.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core._repo import REPO_ROOT
from tasks.core._templating import render_template
from tasks.model._layout import PLAN_FILE
from tasks.model._plan import Plan, Run
from tasks.training._registry import ModelSpec, lookup

RECIPES_PACKAGE = "sweepflow_recipes"
TEMPLATE = "torchtune/finetune.yaml.j2"
CONFIG_FILE = "finetune.yaml"
LOG_DIR = "logs"
TINY_MODEL_PARAMS_B = 0.01  # models below this size train on CPU unless a device is given


def recipe_for(gpus: int, validation: bool, device: str = "cuda") -> str:
    """The `tune run` argument of the recipe (the seed's logic), relative to the repo root.

    1 GPU (or CPU) -> single-device recipe, more -> distributed; validation -> the `_val`
    variant. E.g. `sweepflow_recipes/lora_finetune_distributed_val.py`. `tune run` turns this
    relative path into the module `sweepflow_recipes.lora_finetune_distributed_val`, found
    through PYTHONPATH=<repo root>; it must stay relative (no `./`, not absolute).
    """
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    kind = "single_device" if gpus == 1 or device == "cpu" else "distributed"
    return f"{RECIPES_PACKAGE}/lora_finetune_{kind}{'_val' if validation else ''}.py"


def tune_run_command(recipe: str, gpus: int, config: str = CONFIG_FILE, repo_root: Path = REPO_ROOT) -> str:
    """The shell command that runs `recipe` on `config` from the run directory."""
    launcher = f"--nnodes 1 --nproc_per_node {gpus} " if "distributed" in recipe else ""
    env = f"PYTHONPATH={shlex.quote(str(repo_root))}" + "${PYTHONPATH:+:$PYTHONPATH}"
    return f"{env} tune run {launcher}{shlex.quote(recipe)} --config {shlex.quote(config)}"


@dataclass(frozen=True)
class FinetuneContext:
    """Where a config came from (its header) and how it is launched."""

    run_group: str = ""
    design_hash: str = ""
    created: str = ""
    plan_file: str = ""
    gpus: int = 1
    log_every_n_steps: int = 1
    repo_root: Path = REPO_ROOT

    @classmethod
    def from_plan(cls, plan: Plan, **overrides: Any) -> FinetuneContext:
        """The context of a plan's configs; `overrides` replace any of its fields."""
        values: dict[str, Any] = {
            "run_group": plan.run_group,
            "design_hash": plan.design_hash,
            "created": plan.created,
            "plan_file": str(plan.group_dir / PLAN_FILE),
            "gpus": plan.design.gpu.count,
        }
        values.update(overrides)
        return cls(**values)


# ------------------------------------------------------------------ YAML-safe scalars

_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_INTERPOLATION = re.compile(r"(\\*)\$\{")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x00": "\\0"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ESCAPES.get(char, f"\\u{ord(char):04x}")


def _quote(text: str) -> str:
    """A double-quoted YAML scalar that PyYAML and OmegaConf read back as `text` (see below)."""
    # OmegaConf resolves `${...}`: escape it (`\${`, doubling backslashes right before it).
    text = _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", text)
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _UNSAFE_CHARS.sub(_escape_char, body) + '"'


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"cannot put {value} in a torchtune config")
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"  # YAML 1.1 (PyYAML) needs a dot: 1e-05 would be a string
    return text


def yaml_scalar(value: Any) -> str:
    """One YAML flow value for `value` (None, bool, int, float, str, Path, list, dict)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, (str, Path)):
        text = str(value)
        if text == "???":
            raise ValueError("'???' is OmegaConf's missing-value marker and cannot be a config value")
        return _quote(text)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_quote(str(k))}: {yaml_scalar(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot render {type(value).__name__} {value!r} in a torchtune config")


def _comment(value: Any) -> str:
    """Text for a `#` comment: one line."""
    return re.sub(r"[\r\n\u2028\u2029\x85]+", " ", str(value))


# ------------------------------------------------------------------ rendering


def _spec(run: Run) -> ModelSpec:
    spec = lookup(run.model)
    if spec is None:
        raise ValueError(f"run {run.name}: model {run.model!r} is not in the model registry")
    for arg in spec.tokenizer_files:
        if not arg.isidentifier():
            raise ValueError(f"model registry: tokenizer argument {arg!r} of {run.model} is not a valid name")
    return spec


def default_device(run: Run) -> str:
    """Cpu for the tiny demo model, cuda for everything else."""
    spec = lookup(run.model)
    return "cpu" if spec is not None and spec.params_b < TINY_MODEL_PARAMS_B else "cuda"


def render_finetune_config(
    run: Run,
    run_dir: Path,
    device: str | None = None,
    plan_context: Plan | FinetuneContext | None = None,
    resume: dict[str, Any] | None = None,
) -> str:
    """The complete torchtune `finetune.yaml` of a fine-tuned run.

    `resume`: {epoch, recipe_checkpoint, adapter_checkpoint} to continue after a saved epoch
    (a TIMEOUT retry); paths relative to the run folder.

    `device`: "cuda" or "cpu" (None: cpu for the tiny model, else cuda). `plan_context`: the
    Plan (or a FinetuneContext) for the header and the GPU count; without it, 1 GPU.
    Checkpoints land in `{run_dir}/epoch_N/`, logs in `{run_dir}/logs/`.
    """
    if run.is_control:
        raise ValueError(f"run {run.name} is a control (base model, evaluation only): it has no fine-tune config")
    params = run.params
    if params.batch_size is None:
        raise ValueError(f"run {run.name}: batch_size is still 'auto'; the plan must estimate it before setup")
    if params.lora_alpha != 2 * params.lora_rank:
        raise ValueError(f"run {run.name}: lora_alpha {params.lora_alpha} is not 2 x lora_rank {params.lora_rank}")
    ctx = plan_context if isinstance(plan_context, FinetuneContext) else (
        FinetuneContext.from_plan(plan_context) if plan_context is not None else FinetuneContext()
    )
    device = device or default_device(run)
    if device not in ("cuda", "cpu"):
        raise ValueError(f"device must be 'cuda' or 'cpu', got {device!r}")
    spec = _spec(run)
    run_dir = Path(run_dir)
    model_dir = Path(run.model_dir)
    recipe = recipe_for(ctx.gpus, params.validation, device)
    gpus = 1 if "single_device" in recipe else ctx.gpus
    where = "CPU" if device == "cpu" else ("1 GPU" if gpus == 1 else f"{gpus} GPUs")
    return render_template(
        TEMPLATE,
        y=yaml_scalar,
        c=_comment,
        run=run,
        p=params,
        spec=spec,
        ctx=ctx,
        recipe=recipe,
        recipe_note=f"{where}, validation {'on' if params.validation else 'off'}",
        command=tune_run_command(recipe, gpus, CONFIG_FILE, ctx.repo_root),
        run_dir_sh=shlex.quote(str(run_dir)),
        repo_root_sh=shlex.quote(str(ctx.repo_root)),
        run_dir=str(run_dir),
        model_dir=str(model_dir),
        log_dir=str(run_dir / LOG_DIR),
        data_file=str(params.dataset.path),
        tokenizer_files={arg: str(model_dir / rel) for arg, rel in spec.tokenizer_files.items()},
        # An empty prompt means "no system message", as in evaluation (an empty one would be added)
        system_prompt=params.system_prompt or None,
        device=device,
        on_gpu=device == "cuda",
        resume=resume,
    )


# ------------------------------------------------------------------ validation


def _validate_in_process(path: Path) -> tuple[bool, str]:
    from omegaconf import OmegaConf
    from torchtune import config as tt_config

    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.append(root)  # as `tune run` / PYTHONPATH would: project `_component_`s import
    try:
        cfg = OmegaConf.load(path)
        tt_config.validate(cfg)
    except Exception as error:  # ConfigError, InstantiationError (bad import path), YAML errors
        return False, f"{type(error).__name__}: {error}"
    return True, "Config is well-formed!"


def validate_config(path: str | Path, in_process: bool = True) -> tuple[bool, str]:
    """`tune validate <path>`: every top-level `_component_` imports and accepts its arguments.

    In-process (default) runs exactly what the CLI runs (`OmegaConf.load` + `torchtune.config.validate`)
    without a 5 s interpreter start; `in_process=False` runs the real `tune` CLI with
    PYTHONPATH=<repo root>. Returns (ok, message).
    """
    path = Path(path)
    if not path.is_file():
        return False, f"{path}: no such file"
    if in_process:
        return _validate_in_process(path)
    tune = Path(sys.executable).with_name("tune")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [str(tune) if tune.exists() else "tune", "validate", str(path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    out = (proc.stdout + proc.stderr).strip()
    ok = proc.returncode == 0 and "Config is well-formed!" in proc.stdout
    lines = [line for line in out.splitlines() if "cpp extensions" not in line and "pytorch/ao/issues" not in line]
    return ok, "\n".join(lines[-20:])
