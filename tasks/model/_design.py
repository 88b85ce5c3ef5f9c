"""The experiment design: the YAML file a researcher writes, as a typed pydantic model.

Reads and writes nothing: `tasks.model._design_file` reads a design file into this model.
The JSON schema of the design (`schema/`, `make schema`) is generated from it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tasks.model._factors import FACTORS

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SAFE_LABEL = re.compile(r"^[A-Za-z0-9.-]+$")


def _safe_name(value: str, what: str) -> str:
    if not SAFE_NAME.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} may contain only letters, digits, '.', '_' and '-' "
            "(it becomes a directory and job name)"
        )
    return value


def _model_name(value: str) -> str:
    if "/" in value:
        raise ValueError(
            f"model {value!r}: give the HuggingFace name without the organization ('{value.split('/')[-1]}')"
        )
    return _safe_name(value, "model")


# checked per item, so errors name the entry: models[2]
ModelName = Annotated[str, AfterValidator(_model_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """One JSON file holding `train`, `validation` and `test` arrays of {input, output}."""

    path: Path = Field(description="Dataset JSON file; relative paths resolve against the design file's folder")
    train_split: str = Field("train", description="Name of the array fine-tuning trains on")
    validation_split: str = Field(
        "validation", description="Name of the array for validation loss (used when training.validation is on)"
    )
    test_split: str = Field("test", description="Name of the array evaluations score (unless a task has its own data)")
    input_field: str = Field("input", description="Key of each example's prompt text")
    output_field: str = Field("output", description="Key of each example's expected answer")


class TrainingSpec(_Strict):
    """Training settings shared by every run unless a factor varies them."""

    epochs: PositiveInt = Field(1, description="Passes over the train split; a checkpoint is saved after each")
    batch_size: Literal["auto"] | PositiveInt | dict[str, PositiveInt] = Field(
        "auto", description="'auto' (estimated from prior runs and GPU memory), an int, or {model name: int}"
    )
    gradient_accumulation_steps: PositiveInt = Field(
        1, description="Batches summed into one optimizer step (effective batch = batch_size x this)"
    )
    max_steps_per_epoch: PositiveInt | None = Field(
        None, description="End each epoch after N optimizer steps (a pilot or smoke test; null: the whole split)"
    )
    packed: bool = Field(True, description="Pack several short examples into one sequence of max_seq_len (faster)")
    validation: bool = Field(
        False, description="Compute validation loss on the validation split (needed for evaluation.epochs: best)"
    )
    validate_every_n_steps: PositiveInt | None = Field(
        None, description="Validation loss every N steps (and always at each epoch end) when validation is on"
    )
    system_prompt: str = Field(
        "", description="System message before every prompt, in training and in evaluation alike (empty: none)"
    )
    lora_rank: PositiveInt = Field(8, description="Used when lora_rank is not a factor")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA layers' input (0 to <1)")
    lora_attn_modules: list[Literal["q_proj", "k_proj", "v_proj", "output_proj"]] = Field(
        ["q_proj", "v_proj", "output_proj"], description="Attention projections that get LoRA adapters"
    )
    apply_lora_to_mlp: bool = Field(False, description="Also put LoRA adapters on the MLP (feed-forward) layers")
    learning_rate: PositiveFloat = Field(3e-4, description="Peak learning rate of AdamW (after warm-up, cosine decay)")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW weight decay")
    num_warmup_steps: NonNegativeInt = Field(100, description="Optimizer steps of linear learning-rate warm-up")
    max_seq_len: PositiveInt = Field(2048, description="Longest tokenized example, prompt and answer together")
    accept_truncation: bool = Field(
        False, description="Train although some samples are longer than max_seq_len (torchtune cuts them: the "
        "model never sees their ends); false: planning refuses such data, with the counts"
    )
    seed: int = Field(42, description="Random seed of the first replicate (each further replicate adds 1000)")
    dtype: Literal["bf16", "fp32"] = Field("bf16", description="Number format of training: bf16 on GPUs, fp32 on CPUs")
    save_adapter_weights_only: bool = Field(
        False,
        description="Save only LoRA adapters per epoch (about 100x less disk); "
        "each evaluation job merges its epoch into the base model first",
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


TASK_PLACEHOLDERS = ("system_prompt", "dataset", "split", "input_field", "output_field")
PLACEHOLDER = re.compile(r"^\$\{(\w+)\}$")
REGISTERED_TASK = re.compile(r"^[A-Za-z_]\w*/[A-Za-z_]\w*$")
_ARGS_HELP = (
    "The task's own parameter -> a placeholder (${system_prompt}, ${dataset}, ${split}, ${input_field}, "
    "${output_field}: the run's values) or a literal value; a parameter named like a placeholder and not "
    "mapped here gets it by name"
)
_OWN_DATA_HELP = (
    "true: the task reads its own data (`dataset`, when given, names that file); false: it evaluates the "
    "design's data (`dataset` or the training file's test split), which must reach one of its parameters; "
    "unset: own data when no parameter receives ${dataset} and `dataset` is not given"
)


def _placeholder_problem(value: Any) -> str | None:
    """Why a mapped value is not a valid placeholder (None for a valid one or a literal)."""
    known = ", ".join(f"${{{p}}}" for p in TASK_PLACEHOLDERS)
    if isinstance(value, str) and "${" in value:
        found = PLACEHOLDER.match(value)
        if found is None:
            return f"{value!r}: a placeholder must be the whole value, one of {known}"
        if found.group(1) not in TASK_PLACEHOLDERS:
            return f"unknown placeholder {value!r} (placeholders: {known})"
    elif isinstance(value, dict | list) and "${" in repr(value):
        return f"{value!r}: a placeholder must be the whole value, one of {known}, not inside a list or mapping"
    return None


class EvalTask(_Strict):
    """One evaluation task: an inspect-ai script (and `@task` function) or a registered task, and its arguments."""

    name: str = Field(description="Task identifier; used in directory and status names")
    script: Path | None = Field(None, description="inspect-ai task file (or give inspect_task)")
    inspect_task: str | None = Field(
        None, description="A registered inspect task, named as inspect names it: inspect_evals/gsm8k, package/task"
    )
    dataset: Path | None = Field(None, description="Evaluation data when it is not the training file's test split")
    description: str = Field("", description="One line saying what the task measures (shown in the plan)")
    task_function: str | None = Field(None, description="@task function inside the script (default: the only one)")
    args: dict[str, Any] = Field(default_factory=dict, description=_ARGS_HELP)
    own_data: bool | None = Field(None, description=_OWN_DATA_HELP)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _safe_name(value, "task name")

    @field_validator("inspect_task")
    @classmethod
    def _registered(cls, value: str | None) -> str | None:
        if value is not None and not REGISTERED_TASK.match(value):
            raise ValueError(f"{value!r}: name a registered task as inspect does, package/task (inspect_evals/gsm8k)")
        return value

    @field_validator("args")
    @classmethod
    def _args(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        task = info.data.get("name", "?")
        for parameter, mapped in value.items():
            if not str(parameter).isidentifier():
                raise ValueError(f"task {task}: {parameter!r} is not a parameter name")
            problem = _placeholder_problem(mapped)
            if problem:
                raise ValueError(f"task {task}, parameter {parameter}: {problem}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> EvalTask:
        if (self.script is None) == (self.inspect_task is None):
            raise ValueError(f"task {self.name}: give either script (a task file) or inspect_task (package/task)")
        if self.inspect_task is not None and self.task_function is not None:
            raise ValueError(f"task {self.name}: task_function goes with script; inspect_task names the task itself")
        return self


EvalEpochs = Literal["last", "all", "best"] | Annotated[list[NonNegativeInt], Field(min_length=1)]


class EvaluationSpec(_Strict):
    """What to evaluate: which epochs, which tasks (per run via `matrix`), and generation limits."""

    epochs: EvalEpochs = Field("last", description="last | all | best (needs validation) | a list of epoch indices")
    tasks: list[EvalTask] = Field(min_length=1, description="The evaluation tasks every run is scored on")
    matrix: dict[str, list[str]] | None = Field(
        None, description="Run name -> tasks for the runs that do not get every task"
    )
    max_tokens: PositiveInt = Field(32, description="Longest answer the model may generate, in tokens")
    limit: PositiveInt | None = Field(None, description="Evaluate only the first N samples")
    accept_train_test_overlap: bool = Field(
        False, description="Evaluate although test inputs (any task's, transfer sets included) also occur in the "
        "training data (compared case- and whitespace-insensitively); false: planning refuses, with the counts"
    )

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, tasks: list[EvalTask]) -> list[EvalTask]:
        names = [t.name for t in tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task names must be unique; repeated: {', '.join(dupes)}")
        return tasks


class PathsSpec(_Strict):
    """Where base models live, where run groups are created, and where prior logs are searched."""

    models_dir: Path = Field(description="Folder holding one sub-folder per base model, named as on HuggingFace")
    output_dir: Path = Field(description="Where run group folders are created")
    prior_runs: list[Path] = Field(default_factory=list, description="Folders searched for prior torchtune job logs")
    scratch_dir: Path | None = Field(
        None, description="Fast node-local or scratch folder for per-job caches (unset: inside the run folders)"
    )


class GpuSpec(_Strict):
    """The GPUs of one fine-tuning job and how many are available at once (for estimates)."""

    count: PositiveInt = Field(1, description="GPUs per fine-tuning job (1 -> single-device recipe)")
    memory_gb: PositiveFloat = Field(80, description="Memory of one GPU, for batch-size estimates")
    type: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._-]+$",
        description="The site's GPU gres type, e.g. a100 or h100: rendered as --gres=gpu:<type>:<count>",
    )
    available: PositiveInt = Field(4, description="GPUs you can get at once (the 'mixed' wall-clock scenario)")


class AnalysisSpec(_Strict):
    """How results are judged: the test level, the power asked for, and the difference that matters."""

    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="Significance level of every test and 1 - CI level")
    power: float = Field(0.8, ge=0.5, lt=1.0, description="Power the plan's detectable difference is computed at")
    min_difference: float | None = Field(
        None, gt=0.0, le=1.0,
        description="Smallest accuracy difference the question is about (e.g. 0.05); the plan warns when the "
        "test set cannot detect it",
    )


FactorLevels = Annotated[list[Any], Field(min_length=1)] | Annotated[dict[str, Any], Field(min_length=1)]


class ExperimentDesign(_Strict):
    """What a researcher wants to run. See examples/ and README.md for a complete file."""

    model_config = ConfigDict(title="Experiment design")  # the Prefect UI's name of the form (config merges)

    name: str = Field(description="Run group name; the plan appends the date (_YYYY-MM-DD)")
    question: str = Field(description="The research question this experiment answers")
    task: str = Field(description="Short task label, e.g. capitalization_8L")
    models: list[ModelName] = Field(min_length=1, description="HuggingFace model names without the organization")
    factors: dict[str, FactorLevels] = Field(
        default_factory=dict,
        description="Factor -> levels (a list, or {label: value}); every model x level combination is a run",
    )
    controls: bool = Field(True, description="Add one evaluation-only base-model run per model")
    replicates: int = Field(
        1, ge=1, le=100, strict=True,
        description="Train every fine-tuned cell this many times with distinct seeds (training.seed, then "
        "+1000 per replicate); base models are evaluated once (decoding is greedy)",
    )
    dataset: DatasetSpec = Field(description="The training data: one JSON file with train, validation and test splits")
    training: TrainingSpec = Field(TrainingSpec(), description="Training settings shared by every fine-tuned run")
    evaluation: EvaluationSpec = Field(description="Which epochs are evaluated, on which tasks")
    paths: PathsSpec | str = Field(description="Paths, or the name of a saved sweepflow-paths block")
    cluster: str | dict[str, Any] | None = Field(
        None, description="Name of a saved slurm-cluster block, or its fields inline"
    )
    gpu: GpuSpec = Field(GpuSpec(), description="GPUs per fine-tuning job and how many you can use at once")
    analysis: AnalysisSpec = Field(
        AnalysisSpec(), description="Significance level, power and the difference that matters"
    )
    creator: str | None = Field(None, description="Who designed the experiment (recorded in the plan)")
    notes: str = Field("", description="Free text kept with the plan")

    @field_validator("name", "task")
    @classmethod
    def _names(cls, value: str) -> str:
        return _safe_name(value, "name")

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        dupes = sorted({m for m in value if value.count(m) > 1})
        if dupes:
            raise ValueError(f"models are listed twice: {', '.join(dupes)}")
        return value

    @field_validator("factors")
    @classmethod
    def _factor_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        allowed = tuple(FACTORS)
        for name in value:
            if name == "model" or name == "models":
                raise ValueError("models are listed under `models:`, not as a factor")
            if name not in allowed:
                raise ValueError(f"unknown factor {name!r}; factors can be: {', '.join(allowed)}")
        return value

    @model_validator(mode="after")
    def _consistency(self) -> ExperimentDesign:
        found = cross_field_problems(self.model_dump(mode="json"))
        if found:
            # one "field: message" per line; problems_from_validation splits them again
            raise ValueError("\n".join(f"{field}: {message}" for field, message in found))
        return self


def design_type(design: ExperimentDesign) -> str:
    """'2×2 Factorial Design' style label: models x each factor's level count."""
    dims = [len(design.models)] + [len(v) for v in design.factors.values()]
    dims = [d for d in dims if d > 1] or [1]
    if len(dims) == 1 and dims[0] == 1:
        return "Single configuration"
    return "×".join(map(str, dims)) + (" Factorial Design" if len(dims) > 1 else " Design (one factor)")


def cross_field_problems(data: Any) -> list[tuple[str, str]]:
    """Checks that span several fields, as (field, message).

    Works on the raw mapping too (it ignores parts of the wrong type), so `parse_design` can
    report these alongside field errors, which stop pydantic's model-level validator.
    """
    if not isinstance(data, dict):
        return []
    found: list[tuple[str, str]] = []
    evaluation: dict[str, Any] = data["evaluation"] if isinstance(data.get("evaluation"), dict) else {}
    training: dict[str, Any] = data["training"] if isinstance(data.get("training"), dict) else {}
    if evaluation.get("epochs") == "best" and training.get("validation") is not True:
        found.append(
            ("evaluation.epochs", "'best' picks the epoch by validation loss, so training.validation must be true")
        )
    batch = training.get("batch_size")
    models = data.get("models")
    if isinstance(batch, dict) and isinstance(models, list):
        names = {str(m) for m in models}
        unknown = sorted(set(map(str, batch)) - names)
        missing = sorted(names - set(map(str, batch)))
        if unknown:
            found.append(("training.batch_size", f"names models not in `models`: {', '.join(unknown)}"))
        if missing:
            found.append(("training.batch_size", f"has no entry for: {', '.join(missing)}"))
    return found


# pydantic names union branches in error locations ('list[any]', 'constrained-int', 'PathsSpec', ...);
# they mean nothing to a researcher.
