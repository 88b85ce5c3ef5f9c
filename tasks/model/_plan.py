"""The resolved plan: expanded runs, evaluation jobs, verified resources and estimates.

This is what `plan-runs` writes as `experiment.yaml` in the run group folder and what every
later flow reads (never `runs_plan.md`). Reads/writes: nothing itself; see `tasks/planning/_deliver.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.model._design import DatasetSpec, ExperimentDesign
from tasks.model._site_check import SiteCheckReport

RunKind = Literal["finetune", "control"]
EpochRef = int | Literal["best"] | None

PLAN_FILE = "experiment.yaml"
PLAN_MD = "runs_plan.md"
STATUS_FILE = "runs_status.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunParams(_Model):
    """Everything that makes one fine-tune what it is."""

    lora_rank: int
    lora_alpha: int  # always 2 x rank
    lora_dropout: float
    lora_attn_modules: list[str]
    apply_lora_to_mlp: bool
    learning_rate: float
    weight_decay: float
    num_warmup_steps: int
    epochs: int
    batch_size: int | None  # None until estimated ("auto")
    gradient_accumulation_steps: int
    max_steps_per_epoch: int | None = None  # None: the whole train split each epoch
    max_seq_len: int
    packed: bool
    validation: bool
    validate_every_n_steps: int | None
    seed: int
    dtype: str
    save_adapter_weights_only: bool
    system_prompt: str
    dataset: DatasetSpec


class EvalJob(_Model):
    """One inspect-ai evaluation: a run's checkpoint (or base model) on one task."""

    run: str
    task: str
    epoch: EpochRef = None  # None for base models (evaluated once)

    @property
    def key(self) -> str:
        """The name used in runs_status.yaml and on disk: task_epoch_N, or task for base models."""
        return self.task if self.epoch is None else f"{self.task}_epoch_{self.epoch}"


class CheckpointJob(_Model):
    """One evaluation job: a run's checkpoint (or base model) on all of its tasks, loaded once.

    Each task is still its own stage (`EvalJob`): its own `.eval` log, status entry and result;
    they share this job's id. A task retried alone runs in a job of this checkpoint with that task only.
    """

    run: str
    epoch: EpochRef = None  # None for base models (one job for all their tasks)
    tasks: list[str]

    @property
    def key(self) -> str:
        """`eval` (a base model's job) or `eval_epoch_N`: its script's and job name's stem."""
        return "eval" if self.epoch is None else f"eval_epoch_{self.epoch}"

    @property
    def evaluations(self) -> list[EvalJob]:
        """The per-task stages this job runs."""
        return [EvalJob(run=self.run, task=task, epoch=self.epoch) for task in self.tasks]

    def only(self, tasks: list[str]) -> CheckpointJob:
        """This checkpoint's job for some of its tasks (a retry of the ones that failed)."""
        return self.model_copy(update={"tasks": [t for t in self.tasks if t in tasks]})


def checkpoint_jobs(evaluations: list[EvalJob]) -> list[CheckpointJob]:
    """Evaluations grouped by checkpoint (run, epoch), in plan order; each task once per checkpoint."""
    jobs: dict[tuple[str, str], CheckpointJob] = {}
    for job in evaluations:
        group = jobs.setdefault((job.run, str(job.epoch)), CheckpointJob(run=job.run, epoch=job.epoch, tasks=[]))
        if job.task not in group.tasks:
            group.tasks.append(job.task)
    return list(jobs.values())


class Run(_Model):
    """One run: a fine-tune (or an evaluation-only base-model control), its parameters and evaluations."""

    name: str
    kind: RunKind
    model: str
    model_dir: Path
    factors: dict[str, str] = Field(default_factory=dict)  # factor -> level label
    params: RunParams
    evaluations: list[EvalJob] = Field(default_factory=list)
    replicate: int = 1  # 1..design.replicates; every replicate of a cell trains with its own seed
    cell: str = ""  # the design cell (model x factor levels) this run replicates; "" means `name`

    @property
    def cell_name(self) -> str:
        """The run's design cell: its name without the replicate suffix (controls: the run's name)."""
        return self.cell or self.name

    @property
    def is_control(self) -> bool:
        """Whether this is a base-model control run (evaluated only, never fine-tuned)."""
        return self.kind == "control"

    @property
    def checkpoint_jobs(self) -> list[CheckpointJob]:
        """The run's evaluation jobs: one per evaluated checkpoint (base model: one), all tasks in each."""
        return checkpoint_jobs(self.evaluations)


class SplitCounts(_Model):
    """Record counts of a dataset's train, validation and test splits."""

    train: int
    validation: int
    test: int


class DatasetInfo(_Model):
    """One verified dataset file: its path, size, sha256 and split counts."""

    path: Path
    size_bytes: int
    sha256: str
    splits: SplitCounts
    # test inputs that also occur in the train split (exact match after normalise_text): leakage
    test_in_train: int = 0
    test_in_train_examples: list[str] = Field(default_factory=list)  # the first few of them


class ModelInfo(_Model):
    """One verified base-model folder and its size on disk."""

    name: str
    path: Path
    size_bytes: int


class VerifiedResources(_Model):
    """What verification found (only produced when nothing is missing)."""

    models: list[ModelInfo]
    datasets: list[DatasetInfo]
    eval_scripts: dict[str, Path]  # task -> script
    eval_datasets: dict[str, Path]  # task -> dataset (when not the training test split)
    free_disk_gib: float | None  # under output_dir (its nearest existing parent)


# What a plan figure rests on: the design itself, a measurement of this model (a prior log, earlier
# evaluations, a folder's size), another model's measurement scaled by size, a computation from the
# model's files or the data's tokens, or the seed's preliminary default.
FigureKind = Literal["design", "measured", "scaled", "computed", "default"]


class Figure(_Model):
    """A number, where it came from (`source`, said to the reader) and the kind of source it is."""

    value: float
    source: str
    kind: FigureKind
    by_pilot: bool = False  # measured (or scaled) from a pilot job of this plan

    @model_validator(mode="before")
    @classmethod
    def _kind_of_older_plans(cls, data: Any) -> Any:
        """experiment.yaml written before figures had a `kind`: the kind their source text says."""
        if isinstance(data, dict) and "kind" not in data and isinstance(data.get("source"), str):
            data = {**data, **legacy_figure_kind(data["source"])}
        return data

    def but(self, value: float) -> Figure:
        """The same source with another value (a figure derived from this one)."""
        return self.model_copy(update={"value": value})


def legacy_figure_kind(source: str) -> dict[str, Any]:
    """`kind` and `by_pilot` of a figure from its source text, as plans before `kind` wrote it."""
    pilot = source.startswith("measured by pilot:")
    text = source.removeprefix("measured by pilot:").strip()
    kind: FigureKind = "measured"
    if text.startswith("default"):
        kind = "default"
    elif text.startswith("design"):
        kind = "design"
    elif text.startswith("scaled from "):
        kind = "scaled"
    elif text.startswith(("computed:", "tokenized:")):
        kind = "computed"
    return {"kind": kind, "by_pilot": pilot}


class ModelEstimate(_Model):
    """Per-model figures that the seed's estimation formulas start from."""

    model: str
    batch_size: Figure
    packing_density: Figure
    peak_memory_gib: Figure | None = None  # per prior batch, when a prior log had it
    speed_it_s: Figure  # training iterations per second at the prior's batch size
    prior_samples: int | None = None
    prior_batch_size: int | None = None
    checkpoint_gib_per_epoch: Figure
    eval_minutes: Figure  # per evaluation job
    startup_minutes: Figure | None = None  # per fine-tune job, outside its epochs, when a prior log measured it


class RunEstimate(_Model):
    """One run's estimates: batch size, steps and minutes per epoch, evaluation time, GPU-hours, disk."""

    run: str
    model: str
    batch_size: int
    steps_per_epoch: int
    minutes_per_epoch: float
    train_minutes: float  # 0 for controls
    eval_jobs: int  # evaluation jobs: one per evaluated checkpoint
    eval_minutes: float  # all of this run's evaluation jobs
    gpu_hours: float  # training x GPUs + evaluation (1 GPU each)
    disk_gib: float


class Scenario(_Model):
    """One wall-clock scenario (parallel, sequential or mixed): GPUs held and minutes of each phase."""

    name: Literal["parallel", "sequential", "mixed"]
    gpus: int
    training_minutes: float
    eval_minutes: float
    detail: str  # e.g. "2 batches x 20 min"

    @property
    def total_minutes(self) -> float:
        """Training plus evaluation minutes."""
        return self.training_minutes + self.eval_minutes


class DiskEstimate(_Model):
    """Disk the plan needs, in GiB: checkpoints, evaluation logs and a safety margin."""

    checkpoints_gib: float
    eval_logs_gib: float
    margin_gib: float  # 15 % of the two above
    total_gib: float
    per_model_gib: dict[str, float]


class Estimates(_Model):
    """A plan's estimates: per model, per run, GPU-hours, sequential minutes, disk, scenarios and notes."""

    per_model: dict[str, ModelEstimate]
    runs: dict[str, RunEstimate]
    training_gpu_hours: float
    eval_gpu_hours: float
    training_minutes_sequential: float
    eval_minutes_sequential: float
    disk: DiskEstimate
    scenarios: list[Scenario]
    notes: list[str] = Field(default_factory=list)
    accuracy: str | None = None  # how far this site's earlier estimates were off (tasks.planning._accuracy)

    @property
    def total_gpu_hours(self) -> float:
        """Training plus evaluation GPU-hours."""
        return self.training_gpu_hours + self.eval_gpu_hours


class TaskPower(_Model):
    """What one task's test set can resolve: the smallest paired accuracy difference detectable."""

    task: str
    n_items: int  # test items each evaluation scores
    detectable: float | None  # at the design's alpha and power (None: no items known)
    sd: float  # the per-item SD of a paired difference assumed
    sd_source: str
    items_for_target: int | None = None  # items that analysis.min_difference would need, when set


class StatisticalPower(_Model):
    """The plan's statistical resolution: per task, and the warnings shown before approval."""

    alpha: float
    power: float
    replicates: int
    cells: int  # fine-tuned design cells (models x factor levels)
    tasks: list[TaskPower] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class FieldChange(_Model):
    """One design field that differs between a run group's recorded design and a new one."""

    field: str  # dotted path in the design, e.g. factors.lora_rank, evaluation.tasks[gsm8k].args
    old: str  # the recorded value (short text; "-" when absent)
    new: str  # the new value (short text; "-" when absent)


class Extension(_Model):
    """One approved extension of a run group: what was added, kept and dropped, and which fields changed."""

    at: str  # ISO timestamp of the delivery
    from_design_hash: str
    to_design_hash: str
    new_runs: list[str] = Field(default_factory=list)
    unchanged_runs: list[str] = Field(default_factory=list)
    dropped_runs: list[str] = Field(default_factory=list)
    new_evaluations: list[str] = Field(default_factory=list)  # run/key of evaluation-only jobs on kept runs
    dropped_evaluations: list[str] = Field(default_factory=list)  # run/key
    changes: list[FieldChange] = Field(default_factory=list)


class DroppedRun(_Model):
    """A run that an extension took out of the design: its plan entry, kept (its files stay on disk)."""

    run: Run
    reason: str
    dropped: str  # ISO timestamp


class Plan(_Model):
    """The resolved, verified, estimated plan of one run group."""

    schema_version: int = 1
    run_group: str  # design name + _YYYY-MM-DD
    created: str  # ISO timestamp
    design_hash: str  # sha256 of the canonical design; recorded in every evaluation's metadata
    design: ExperimentDesign
    group_dir: Path
    recipe: str
    runs: list[Run]
    resources: VerifiedResources
    estimates: Estimates
    site_check: SiteCheckReport | None = None  # the check before the sweep, when plan-runs ran one
    power: StatisticalPower | None = None  # what the test sets can resolve (plans made before it: None)
    extensions: list[Extension] = Field(default_factory=list)  # tasks/planning/_extend.py, oldest first
    dropped_runs: list[DroppedRun] = Field(default_factory=list)  # runs an extension took out of the design

    @property
    def design_hashes(self) -> set[str]:
        """Every design this group was planned with (the current one and each extension's predecessor)."""
        return {self.design_hash, *(e.from_design_hash for e in self.extensions)}

    def with_dropped(self) -> Plan:
        """This plan with its dropped runs back among its runs (a summary asked to include them)."""
        return self.model_copy(update={"runs": [*self.runs, *(d.run for d in self.dropped_runs)]})

    def run(self, name: str) -> Run:
        """The run called `name`; `KeyError` when the plan has none."""
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(name)

    @property
    def finetune_runs(self) -> list[Run]:
        """The fine-tuned runs, in plan order."""
        return [r for r in self.runs if r.kind == "finetune"]

    @property
    def control_runs(self) -> list[Run]:
        """The base-model control runs, in plan order."""
        return [r for r in self.runs if r.kind == "control"]

    def factor_levels(self) -> dict[str, list[str]]:
        """"model" and each factor -> its level labels, in plan order (the fine-tuned runs' levels)."""
        levels: dict[str, list[str]] = {"model": list(dict.fromkeys(r.model for r in self.runs))}
        for run in self.finetune_runs:
            for factor, label in run.factors.items():
                levels.setdefault(factor, [])
                if label not in levels[factor]:
                    levels[factor].append(label)
        return levels

    @property
    def eval_jobs(self) -> list[EvalJob]:
        """Every run's evaluations (one per checkpoint and task: a stage each), in plan order."""
        return [e for r in self.runs for e in r.evaluations]

    @property
    def checkpoint_jobs(self) -> list[CheckpointJob]:
        """Every evaluation job (one per evaluated checkpoint, one model load each), in plan order."""
        return [c for r in self.runs for c in r.checkpoint_jobs]
