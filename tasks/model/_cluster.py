"""Site settings for the jobs, as a plain pydantic model: the one source of the cluster fields.

The Prefect block `blocks.SlurmCluster` subclasses it (its UI form shows these descriptions),
and docs/gpu-clusters.md's defaults are checked against it by a test.

Reads: the design's `cluster:` mapping (already resolved from a block name by the flow).
Writes: nothing.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from tasks.core._durations import parse_duration
from tasks.core._errors import DesignError, Problem
from tasks.model._design import ExperimentDesign
from tasks.model._yaml_types import explain_yaml_type

# A job script's header is read by its scheduler, not by a shell: values there must be plain tokens.
DIRECTIVE_VALUE = re.compile(r"^[A-Za-z0-9._:,=@%+/-]+$")
# Constraint expressions: features joined by & (and), | (or), [] (one of, for all nodes),
# * (node count), () (grouping); no spaces, so the scheduler reads the value as one token
CONSTRAINT_VALUE = re.compile(r"^[A-Za-z0-9._:,=@%+/|&*()\[\]-]+$")
TIME_LIMIT = re.compile(r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$|^\d+$")
# a conda env name, a module name (`cuda/12.1`), a filesystem path: no shell syntax
ENV_VALUE = re.compile(r"^[A-Za-z0-9._:,=@%+/~-]+$")
# a saved Prefect block's document name: `<block type slug>/<block name>` (Prefect allows a-z, 0-9, - in each)
BLOCK_DOCUMENT = re.compile(r"^[a-z0-9-]+/[a-z0-9-]+$")
STAGGER_HELP = ("Pause between submissions of jobs that can start at once (spreads the load on shared "
                "filesystems; 1,000 submissions take ~8 min at 0.5 s)")
NOTIFY_HELP = ("Saved Prefect notification block that hears about the run group, as <block type slug>/<name>, "
               "e.g. slack-webhook/lab-alerts or custom-webhook/lab (unset: no notifications)")
STALL_HELP = "A run group with unfinished stages where nothing changed for this many hours is reported stalled"


class JobEnv(BaseModel):
    """How a job gets its Python: module lines, then a conda env or a venv (never the orchestrator's by accident).

    Job scripts load `modules` (`module load <each>`), then activate `conda` (a name or a
    prefix path) or `venv` (a virtual environment's folder), and run the preflight check in
    that Python. Unset in the cluster settings: this clone's own `.venv` (the demo and tests).
    """

    model_config = ConfigDict(extra="forbid")

    modules: list[str] = Field(default_factory=list, description="module load arguments, e.g. cuda/12.1")
    conda: str | None = Field(None, description="conda environment name or prefix (conda activate)")
    venv: str | None = Field(None, description="virtual environment folder (its bin/activate is sourced)")

    @field_validator("modules")
    @classmethod
    def _modules(cls, value: list[str]) -> list[str]:
        for module in value:
            if not ENV_VALUE.fullmatch(module):
                raise ValueError(f"{module!r} is not a module name like cuda/12.1")
        return value

    @field_validator("conda", "venv")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        if value is not None and not ENV_VALUE.fullmatch(value):
            raise ValueError(f"{value!r} is not a plain name or path (no spaces or shell characters)")
        return value

    @model_validator(mode="after")
    def _one_python(self) -> JobEnv:
        if self.conda and self.venv:
            raise ValueError("name a conda env or a venv, not both")
        if not (self.conda or self.venv or self.modules):
            raise ValueError("name a conda env, a venv or module lines (or leave job_env out)")
        return self


class ClusterSettings(BaseModel):
    """Where and how the jobs run (account, limits, resources, queue cap, backend, device), and who hears of it."""

    model_config = ConfigDict(extra="forbid")

    account: str | None = Field(None, description="sbatch --account (leave empty if your site has none)")
    partition: str | None = Field(None, description="sbatch --partition")
    constraint: str | None = Field(None, description="sbatch --constraint, e.g. gpu80 or a100|h100")
    qos: str | None = Field(None, description="sbatch --qos")
    time_limit: str | None = Field(
        None, description="Fine-tune time limit (D-HH:MM:SS, HH:MM:SS or minutes); unset: estimate x time_margin"
    )
    eval_time_limit: str | None = Field(None, description="Evaluation job time limit; unset: estimate x time_margin")
    time_margin: float = Field(1.5, ge=1.0, description="Limit = estimate x this, rounded up to 5 min")
    max_time_limit: str | None = Field(None, description="The partition's MaxTime: no job asks for more")
    mem: str = Field("32G", description="Memory per fine-tune job, e.g. 64G")
    eval_mem: str = Field("16G", description="Memory per evaluation job")
    cpus_per_task: PositiveInt = Field(4, description="sbatch --cpus-per-task")
    env_setup: list[str] = Field(
        default_factory=list,
        description="Shell lines run before each job's environment is activated (exports, site setup)",
    )
    max_queued_jobs: PositiveInt = Field(
        20, description="Never more than this many jobs queued or running (your QoS MaxSubmitJobs)"
    )
    submit_stagger_seconds: float = Field(0.5, ge=0, description=STAGGER_HELP)
    backend: str = Field(
        "auto", pattern=r"^[a-z][a-z0-9_-]*$",
        description="The job backend by name (tasks/backends/_select.py): slurm: sbatch; local: run jobs as local "
        "processes; auto: slurm when sbatch is on PATH, else local",
    )
    extra_sbatch: list[str] = Field(default_factory=list, description="Extra '#SBATCH' options, e.g. --mail-type=END")
    device: Literal["cuda", "cpu"] = Field(
        "cuda", description="Where torchtune and inspect run (cpu for the tiny demo model)"
    )
    job_env: JobEnv | None = Field(None, description="The jobs' Python environment (default: this clone's .venv)")
    use_orchestrator_env: bool = Field(
        False, description="With no job_env, run CUDA jobs on a cluster backend in this clone's own .venv on purpose "
        "(it has the GPU builds); without it, planning refuses such a CUDA design that names no job_env"
    )
    eval_partition: str | None = Field(None, description="Partition of evaluation jobs (default: partition)")
    eval_constraint: str | None = Field(None, description="Constraint of evaluation jobs (default: constraint)")
    eval_gpu_type: str | None = Field(
        None, description="GPU type of evaluation jobs, e.g. a MIG slice 3g.40gb (default: the design's gpu.type)"
    )
    notify_block: str | None = Field(None, description=NOTIFY_HELP)
    stall_hours: float = Field(6.0, gt=0, description=STALL_HELP)

    @field_validator("account", "partition", "qos", "mem", "eval_mem", "eval_partition", "eval_gpu_type")
    @classmethod
    def _directive(cls, value: str | None) -> str | None:
        if value is not None and not DIRECTIVE_VALUE.fullmatch(value):
            raise ValueError(f"{value!r} cannot be written on an #SBATCH line (letters, digits and ._:,=@%+/- only)")
        return value

    @field_validator("constraint", "eval_constraint")
    @classmethod
    def _constraint(cls, value: str | None) -> str | None:
        if value is not None and not CONSTRAINT_VALUE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a constraint expression (features with & | [] * (), no spaces)"
            )
        return value

    @field_validator("time_limit", "eval_time_limit", "max_time_limit")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not TIME_LIMIT.fullmatch(value):
            raise ValueError(f"{value!r} is not a time limit like 04:00:00, 1-00:00:00 or 90")
        return value

    @model_validator(mode="after")
    def _within_max_time(self) -> ClusterSettings:
        """Refuse a limit above the partition's MaxTime (sbatch would, mid-sweep), naming both fields."""
        cap = parse_duration(self.max_time_limit)
        if cap is None:
            return self
        for name in ("time_limit", "eval_time_limit"):
            value = getattr(self, name)
            seconds = parse_duration(value)
            if seconds is not None and seconds > cap:
                raise ValueError(
                    f"{name} {value} is above max_time_limit {self.max_time_limit} (the partition's MaxTime): "
                    f"sbatch would refuse every such job; lower {name} or leave it out (the estimate is then "
                    "capped by max_time_limit)"
                )
        return self

    @field_validator("notify_block")
    @classmethod
    def _notify_block(cls, value: str | None) -> str | None:
        if value is not None and not BLOCK_DOCUMENT.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a saved block's name like slack-webhook/lab-alerts: give "
                "<block type slug>/<block name>, each in lowercase letters, digits and dashes "
                "(`prefect block ls` lists them)"
            )
        return value

    @field_validator("extra_sbatch")
    @classmethod
    def _extra(cls, value: list[str]) -> list[str]:
        for option in value:
            if not option.startswith("--") or not DIRECTIVE_VALUE.fullmatch(option.lstrip("-")):
                raise ValueError(f"{option!r} is not a plain sbatch option like --mail-type=END")
        return value


def job_env_problem(cluster: ClusterSettings, remote: bool) -> Problem | None:
    """A CUDA design whose jobs run on other machines (`remote`: its backend says so) that names no job environment.

    Its jobs would run in the orchestrator's venv, usually a CPU build on a login node, and the first
    job's preflight fails mid-sweep; refused at plan time unless `use_orchestrator_env` says it is meant.
    """
    if cluster.device != "cuda" or not remote or cluster.job_env or cluster.use_orchestrator_env:
        return None
    return Problem(
        field="cluster.job_env",
        message=f"CUDA jobs on the {cluster.backend} backend need their Python environment named: set job_env (e.g. "
        "{modules: [anaconda3/2024.6], conda: torch-env}, or {venv: /path/to/venv}) to the environment with "
        "torchtune and a CUDA build of torch on the compute nodes; or set use_orchestrator_env: true to run the jobs "
        "in this clone's own .venv on purpose",
    )


def cluster_settings(design: ExperimentDesign, overrides: dict[str, Any] | None = None) -> ClusterSettings:
    """The design's inline cluster fields, then `overrides`, over the defaults; `DesignError` names bad fields."""
    raw = design.cluster
    if isinstance(raw, str):
        raise DesignError([Problem(
            field="cluster", message=f"names the block {raw!r}, which must be loaded first (the flows do this)"
        )])
    try:
        return ClusterSettings.model_validate({**(raw or {}), **(overrides or {})})
    except ValidationError as error:
        problems = [
            Problem(
                field=".".join(["cluster", *(str(p) for p in e["loc"])]),
                message=explain_yaml_type(e) or str(e["msg"]).removeprefix("Value error, "),
            )
            for e in error.errors()
        ]
        raise DesignError(problems, heading="The cluster settings have problems") from None
