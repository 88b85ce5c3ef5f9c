"""The experiment design: the YAML file a researcher writes, as a typed pydantic model.

Reads: a design YAML file (or an already-parsed mapping).
Writes: nothing. `load_design` returns an `ExperimentDesign` whose relative paths are
resolved against the design file's folder, or raises `DesignError` listing every problem
with the field it concerns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from tasks.errors import DesignError, Problem

SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
SAFE_LABEL = re.compile(r"^[A-Za-z0-9.-]+$")


def _safe_name(value: str, what: str) -> str:
    if not SAFE_NAME.match(value):
        raise ValueError(
            f"{what} {value!r} may contain only letters, digits, '.', '_' and '-' "
            "(it becomes a directory and SLURM job name)"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """One JSON file holding `train`, `validation` and `test` arrays of {input, output}."""

    path: Path = Field(description="Dataset JSON file; relative paths resolve against the design file's folder")
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    input_field: str = "input"
    output_field: str = "output"


class TrainingSpec(_Strict):
    """Training settings shared by every run unless a factor varies them."""

    epochs: PositiveInt = 1
    batch_size: Union[Literal["auto"], PositiveInt, dict[str, PositiveInt]] = Field(
        "auto", description="'auto' (estimated from prior runs and GPU memory), an int, or {model name: int}"
    )
    gradient_accumulation_steps: PositiveInt = 1
    packed: bool = True
    validation: bool = False
    validate_every_n_steps: PositiveInt | None = Field(
        None, description="Validation loss every N steps (and always at each epoch end) when validation is on"
    )
    system_prompt: str = ""
    lora_rank: PositiveInt = Field(8, description="Used when lora_rank is not a factor")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_attn_modules: list[Literal["q_proj", "k_proj", "v_proj", "output_proj"]] = ["q_proj", "v_proj", "output_proj"]
    apply_lora_to_mlp: bool = False
    learning_rate: PositiveFloat = 3e-4
    weight_decay: float = Field(0.01, ge=0.0)
    num_warmup_steps: NonNegativeInt = 100
    max_seq_len: PositiveInt = 2048
    seed: int = 42
    dtype: Literal["bf16", "fp32"] = "bf16"
    save_adapter_weights_only: bool = Field(
        False, description="Save only LoRA adapters per epoch (about 100x less disk); evaluation then needs merging"
    )

    @field_validator("learning_rate", "weight_decay", "lora_dropout", mode="before")
    @classmethod
    def _yaml_float(cls, value: Any) -> Any:
        # PyYAML reads `3e-4` (no dot) as a string; accept it as the number researchers mean.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value


class EvalTask(_Strict):
    name: str = Field(description="Task identifier; used in directory and status names")
    script: Path = Field(description="inspect-ai task file")
    dataset: Path | None = Field(None, description="Evaluation data when it is not the training file's test split")
    description: str = ""
    task_function: str | None = Field(None, description="@task function inside the script (default: the only one)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _safe_name(value, "task name")


EvalEpochs = Union[Literal["last", "all", "best"], Annotated[list[NonNegativeInt], Field(min_length=1)]]


class EvaluationSpec(_Strict):
    epochs: EvalEpochs = Field("last", description="last | all | best (needs validation) | a list of epoch indices")
    tasks: list[EvalTask] = Field(min_length=1)
    matrix: dict[str, list[str]] | None = Field(
        None, description="Run name -> tasks for the runs that do not get every task"
    )
    max_tokens: PositiveInt = 32
    limit: PositiveInt | None = Field(None, description="Evaluate only the first N samples")

    @model_validator(mode="after")
    def _unique_tasks(self) -> "EvaluationSpec":
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task names must be unique; repeated: {', '.join(dupes)}")
        return self


class PathsSpec(_Strict):
    models_dir: Path = Field(description="Folder holding one sub-folder per base model, named as on HuggingFace")
    output_dir: Path = Field(description="Where run group folders are created")
    prior_runs: list[Path] = Field(default_factory=list, description="Folders searched for prior torchtune SLURM logs")
    scratch_dir: Path | None = None


class GpuSpec(_Strict):
    count: PositiveInt = Field(1, description="GPUs per fine-tuning job (1 -> single-device recipe)")
    memory_gb: PositiveFloat = Field(80, description="Memory of one GPU, for batch-size estimates")
    type: str | None = Field(None, description="e.g. A100, H100 (documentation only)")
    available: PositiveInt = Field(4, description="GPUs you can get at once (the 'mixed' wall-clock scenario)")


FactorLevels = Union[Annotated[list[Any], Field(min_length=1)], Annotated[dict[str, Any], Field(min_length=1)]]

# Factors a design may vary, besides `dataset`. Each is a TrainingSpec field.
FACTOR_FIELDS = (
    "lora_rank",
    "learning_rate",
    "epochs",
    "batch_size",
    "gradient_accumulation_steps",
    "lora_dropout",
    "weight_decay",
    "max_seq_len",
    "seed",
    "packed",
    "system_prompt",
    "num_warmup_steps",
)


class ExperimentDesign(_Strict):
    """What a researcher wants to run. See examples/ and README.md for a complete file."""

    name: str = Field(description="Run group name; the plan appends the date (_YYYY-MM-DD)")
    question: str = Field(description="The research question this experiment answers")
    task: str = Field(description="Short task label, e.g. capitalization_8L")
    models: list[str] = Field(min_length=1, description="HuggingFace model names without the organization")
    factors: dict[str, FactorLevels] = Field(
        default_factory=dict,
        description="Factor -> levels (a list, or {label: value}); every model x level combination is a run",
    )
    controls: bool = Field(True, description="Add one evaluation-only base-model run per model")
    dataset: DatasetSpec
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec
    paths: Union[PathsSpec, str] = Field(description="Paths, or the name of a saved sweepflow-paths block")
    cluster: Union[str, dict[str, Any], None] = Field(
        None, description="Name of a saved slurm-cluster block, or its fields inline"
    )
    gpu: GpuSpec = GpuSpec()
    creator: str | None = None
    notes: str = ""

    @field_validator("name", "task")
    @classmethod
    def _names(cls, value: str) -> str:
        return _safe_name(value, "name")

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        for model in value:
            if "/" in model:
                raise ValueError(f"model {model!r}: give the HuggingFace name without the organization ('{model.split('/')[-1]}')")
            _safe_name(model, "model")
        dupes = sorted({m for m in value if value.count(m) > 1})
        if dupes:
            raise ValueError(f"models are listed twice: {', '.join(dupes)}")
        return value

    @field_validator("factors")
    @classmethod
    def _factor_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        allowed = ("dataset", *FACTOR_FIELDS)
        for name in value:
            if name == "model" or name == "models":
                raise ValueError("models are listed under `models:`, not as a factor")
            if name not in allowed:
                raise ValueError(f"unknown factor {name!r}; factors can be: {', '.join(allowed)}")
        return value

    @model_validator(mode="after")
    def _consistency(self) -> "ExperimentDesign":
        needs_validation = self.evaluation.epochs == "best"
        if needs_validation and not self.training.validation and "validation" not in self.factors:
            raise ValueError("evaluation.epochs: 'best' picks the epoch by validation loss, so training.validation must be true")
        if isinstance(self.training.batch_size, dict):
            unknown = sorted(set(self.training.batch_size) - set(self.models))
            missing = sorted(set(self.models) - set(self.training.batch_size))
            if unknown:
                raise ValueError(f"training.batch_size names models not in `models`: {', '.join(unknown)}")
            if missing:
                raise ValueError(f"training.batch_size has no entry for: {', '.join(missing)}")
        return self


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item) in {"list[...]", "dict[str,...]"} or str(item).startswith(("function-", "literal[", "int", "dict[", "list[", "str")):
            # pydantic names union branches in locations; they mean nothing to a researcher
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "design"


def problems_from_validation(error: ValidationError, source: str) -> list[Problem]:
    """Turn pydantic's errors into one researcher-readable problem per field."""
    seen: dict[str, Problem] = {}
    for err in error.errors():
        field = _loc(tuple(err["loc"]))
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (check its spelling)"
        elif err["type"] == "missing":
            message = "required field is missing"
        # unions report one error per branch; keep the first per field
        seen.setdefault(field, Problem(field=field, message=message, path=source))
    return list(seen.values())


def _resolve(path: Path, base: Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def resolve_paths(design: ExperimentDesign, base: Path) -> ExperimentDesign:
    """Relative paths in the design resolve against the design file's folder."""
    dataset = design.dataset.model_copy(update={"path": _resolve(design.dataset.path, base)})
    tasks = [
        t.model_copy(update={"script": _resolve(t.script, base), "dataset": _resolve(t.dataset, base) if t.dataset else None})
        for t in design.evaluation.tasks
    ]
    evaluation = design.evaluation.model_copy(update={"tasks": tasks})
    factors = dict(design.factors)
    if "dataset" in factors:
        levels = factors["dataset"]
        if isinstance(levels, dict):
            factors["dataset"] = {k: str(_resolve(Path(str(v)), base)) for k, v in levels.items()}
        else:
            factors["dataset"] = [str(_resolve(Path(str(v)), base)) for v in levels]
    paths = design.paths
    if isinstance(paths, PathsSpec):
        paths = paths.model_copy(
            update={
                "models_dir": _resolve(paths.models_dir, base),
                "output_dir": _resolve(paths.output_dir, base),
                "prior_runs": [_resolve(p, base) for p in paths.prior_runs],
                "scratch_dir": _resolve(paths.scratch_dir, base) if paths.scratch_dir else None,
            }
        )
    return design.model_copy(update={"dataset": dataset, "evaluation": evaluation, "factors": factors, "paths": paths})


def parse_design(data: Any, source: str = "design", base: Path | None = None) -> ExperimentDesign:
    """Validate a parsed design mapping; raise DesignError naming every bad field."""
    if not isinstance(data, dict):
        raise DesignError([Problem(field="design", message="must be a YAML mapping of fields (name:, models:, ...)", path=source)])
    try:
        design = ExperimentDesign.model_validate(data)
    except ValidationError as error:
        raise DesignError(problems_from_validation(error, source)) from None
    return resolve_paths(design, base or Path.cwd())


def load_design(path: str | Path) -> ExperimentDesign:
    """Read and validate a design YAML file."""
    path = Path(path).expanduser()
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DesignError([Problem(field="design", message="file not found", path=source)]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DesignError([Problem(field="design", message=f"cannot be read: {error}", path=source)]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise DesignError([Problem(field="design", message=f"is not valid YAML{at}: {getattr(error, 'problem', error)}", path=source)]) from None
    return parse_design(data, source=source, base=path.resolve().parent)
