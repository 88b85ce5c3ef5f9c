"""`ExperimentPaths`: where models, outputs, prior runs and scratch space live on a site.

Saved once as a Prefect block (type slug `sweepflow-paths`) and named by designs
(`paths: della-paths`) instead of repeating absolute paths in every design:

    from blocks import ExperimentPaths
    ExperimentPaths(models_dir="/scratch/me/models", output_dir="/scratch/me/experiments",
                    prior_runs=["/scratch/me/old"]).save("della-paths", overwrite=True)

Paths must be absolute (`~` is expanded): a block is used from any working directory.
Reads/writes: nothing itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, ValidationInfo, field_validator


def _absolute(value: object, field: str) -> Path:
    path = Path(str(value)).expanduser()
    if not path.is_absolute():
        raise ValueError(
            f"{field} {str(value)!r} must be an absolute path (a block is used from any working directory)"
        )
    return path


class ExperimentPaths(Block):
    """Folders a sweep reads from and writes to."""

    _block_type_name: ClassVar[str] = "sweepflow paths"
    _block_type_slug: ClassVar[str] = "sweepflow-paths"
    _description: ClassVar[str] = (
        "Folders for sweepflow: base models (one sub-folder per model), run group output, "
        "prior runs searched for SLURM logs, and scratch space."
    )

    models_dir: Path = Field(description="Folder holding one sub-folder per base model, named as on HuggingFace")
    output_dir: Path = Field(description="Where run group folders are created")
    prior_runs: list[Path] = Field(default_factory=list, description="Folders searched for prior torchtune job logs")
    scratch_dir: Path | None = Field(None, description="Scratch space (HF caches, temporary files)")

    @field_validator("models_dir", "output_dir", "scratch_dir", mode="before")
    @classmethod
    def _abs(cls, value: object, info: ValidationInfo) -> object:
        return None if value is None else _absolute(value, info.field_name or "path")

    @field_validator("prior_runs", mode="before")
    @classmethod
    def _abs_list(cls, value: object) -> object:
        if isinstance(value, (str, Path)):
            value = [value]
        if not isinstance(value, list):
            return value
        return [_absolute(v, f"prior_runs[{i}]") for i, v in enumerate(value)]
