"""What a site check before the sweep asked for and what it found (the plan and the check-site flow carry it).

Reads/writes: nothing. `tasks/setup/_site_check.py` runs the check; `runs_plan.md`, the plan
artifact and the approval form show a `SiteCheckReport`; `experiment.yaml` keeps it beside
the plan, so a run group records which check preceded it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["finetune", "eval"]
ShapeOutcome = Literal["passed", "failed", "timed out", "not submitted"]


class SiteShape(BaseModel):
    """One distinct resource request the plan makes: where its jobs run and with what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[Stage]  # which jobs of the plan ask for exactly this
    partition: str | None = None
    constraint: str | None = None
    gpus: int = 0
    gpu_type: str | None = None
    mem: str
    cpus: int

    @property
    def label(self) -> str:
        """E.g. `finetune + eval: partition gpu, constraint gpu80, 1 x a100 GPU, 32G`."""
        where = [f"partition {self.partition}" if self.partition else "default partition"]
        if self.constraint:
            where.append(f"constraint {self.constraint}")
        kind = f"{self.gpu_type} " if self.gpu_type else ""
        where.append(f"{self.gpus} x {kind}GPU" if self.gpus else "no GPU")
        where.append(self.mem)
        return f"{' + '.join(self.stages)}: {', '.join(where)}"


class ModelProbe(BaseModel):
    """One planned model as the check job saw it on the compute node."""

    model_config = ConfigDict(extra="forbid")

    name: str
    ok: bool
    detail: str  # what was loaded, or what is wrong


class ShapeCheck(BaseModel):
    """The check job of one shape and what it reported."""

    model_config = ConfigDict(extra="forbid")

    shape: SiteShape
    outcome: ShapeOutcome
    message: str  # one line a researcher acts on
    job_id: str | None = None
    folder: Path | None = None  # the job's script and log
    host: str | None = None
    python: str | None = None
    packages: dict[str, str | None] = Field(default_factory=dict)
    gpus: list[str] = Field(default_factory=list)  # "NVIDIA A100-SXM4-80GB (79 GiB)"
    models: list[ModelProbe] = Field(default_factory=list)
    free_gib: dict[str, float] = Field(default_factory=dict)  # "output_dir" / "scratch" -> free GiB
    elapsed_s: float | None = None


class SiteCheckReport(BaseModel):
    """One site check: every shape the plan asks for, each with its job's finding."""

    model_config = ConfigDict(extra="forbid")

    checked_at: str  # ISO timestamp (UTC)
    backend: str  # the backend's registry name
    shapes: list[ShapeCheck]
    reused_from: str | None = None  # set when a recent pass was reused instead of a new job

    @property
    def passed(self) -> bool:
        """Every shape's job passed."""
        return all(s.outcome == "passed" for s in self.shapes)

    def failures(self) -> list[str]:
        """One line per shape that did not pass."""
        return [f"{s.shape.label}: {s.outcome}: {s.message}" for s in self.shapes if s.outcome != "passed"]
