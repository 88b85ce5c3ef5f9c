"""`SlurmCluster`: one SLURM site profile (account, partition, limits, environment lines).

Saved once as a Prefect block (type slug `slurm-cluster`) and named by designs:

    from blocks import SlurmCluster
    SlurmCluster(account="mylab", partition="gpu", constraint="gpu80", mem="64G",
                 job_env={"modules": ["anaconda3/2024.6"], "conda": "ttenv"},
                 ).save("della-a100", overwrite=True)

A design may also give the same fields inline (`cluster: {partition: gpu, ...}`).
The block mirrors `tasks.model.cluster.ClusterSettings` field for field (the plain model
the flows use, with the validation rules); the block adds the UI form and saving by name.
Reads/writes: nothing itself; the Prefect API stores saved blocks.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, ValidationError, model_validator

from tasks.model.cluster import NOTIFY_HELP, STAGGER_HELP, STALL_HELP, ClusterSettings, JobEnv


class SlurmCluster(Block):
    """Where and how SLURM jobs are submitted: account, partition, limits, environment setup."""

    _block_type_name: ClassVar[str] = "SLURM cluster"
    _block_type_slug: ClassVar[str] = "slurm-cluster"
    _description: ClassVar[str] = (
        "A SLURM site profile for sweepflow: account, partition, constraint, QoS, limits, "
        "module loads / environment activation, and the queue cap."
    )

    account: str | None = Field(None, description="sbatch --account (leave empty if your site has none)")
    partition: str | None = Field(None, description="sbatch --partition")
    constraint: str | None = Field(None, description="sbatch --constraint, e.g. gpu80")
    qos: str | None = Field(None, description="sbatch --qos")
    time_limit: str | None = Field(
        None, description="Fine-tune time limit: HH:MM:SS, D-HH:MM:SS or minutes (empty: estimate x time_margin)"
    )
    eval_time_limit: str | None = Field(None, description="Evaluation job time limit (empty: estimate x time_margin)")
    time_margin: float = Field(1.5, ge=1.0, description="Each job's limit is its estimate times this, rounded up")
    max_time_limit: str | None = Field(None, description="The partition's MaxTime (scontrol show partition)")
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
    submit_stagger_seconds: NonNegativeFloat = Field(0.5, description=STAGGER_HELP)
    backend: Literal["auto", "slurm", "local"] = Field(
        "auto", description="slurm: sbatch; local: run jobs as local processes; auto: slurm when sbatch is on PATH"
    )
    extra_sbatch: list[str] = Field(
        default_factory=list, description="Further sbatch options, one per item, e.g. --mail-type=END"
    )
    device: Literal["cuda", "cpu"] = Field(
        "cuda", description="Where torchtune and inspect run (cpu for the tiny demo model)"
    )
    job_env: JobEnv | None = Field(
        None, description="The jobs' Python: module lines, then a conda env (name or prefix) or a venv folder; "
        "empty: this clone's .venv"
    )
    use_orchestrator_env: bool = Field(
        False, description="With no job_env, run CUDA SLURM jobs in this clone's .venv on purpose "
        "(else planning refuses a CUDA SLURM design with no job_env)"
    )
    eval_partition: str | None = Field(None, description="Partition of evaluation jobs (empty: partition)")
    eval_constraint: str | None = Field(None, description="Constraint of evaluation jobs (empty: constraint)")
    eval_gpu_type: str | None = Field(
        None, description="GPU type of evaluation jobs, e.g. a MIG slice 3g.40gb (empty: the design's gpu.type)"
    )
    notify_block: str | None = Field(None, description=NOTIFY_HELP)
    stall_hours: PositiveFloat = Field(6.0, description=STALL_HELP)

    @model_validator(mode="after")
    def _same_rules_as_settings(self) -> SlurmCluster:
        try:
            ClusterSettings.model_validate(self.profile())
        except ValidationError as error:
            raise ValueError(
                "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
                    for e in error.errors()
                )
            ) from None
        return self

    def profile(self) -> dict[str, Any]:
        """The plain fields: what a design's `cluster:` holds once the block is resolved."""
        return self.model_dump(mode="json", include=set(profile_fields()))

    def settings(self) -> ClusterSettings:
        """The block's fields as the `ClusterSettings` a plan records."""
        return ClusterSettings.model_validate(self.profile())


def profile_fields() -> list[str]:
    """Names of the fields a design may give inline under `cluster:`."""
    return [name for name in SlurmCluster.model_fields if name != "block_type_slug"]
