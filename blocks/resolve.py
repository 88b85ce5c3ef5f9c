"""Replace block names in a design with the saved blocks' values ("site resolution").

Reads: saved `sweepflow-paths` / `slurm-cluster` blocks through the Prefect API (only when
the design names one). Writes: nothing.

`resolve_site(design)` returns a design whose `paths` is a `PathsSpec` and whose `cluster`
is `None` or a complete, validated dict of `SlurmCluster` fields, so planning never talks
to Prefect. A block that does not exist, or an inline cluster with a bad field, raises a
`DesignError` that names the design field and the block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.blocks.core import Block
from pydantic import ValidationError

from blocks.cluster import SlurmCluster, profile_fields
from blocks.paths import ExperimentPaths
from tasks.core._errors import DesignError, Problem
from tasks.model._cluster import ClusterSettings
from tasks.model._design import ExperimentDesign, PathsSpec


def _problems(error: ValidationError, prefix: str, source: str | None) -> list[Problem]:
    problems = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"])
        field = f"{prefix}.{loc}" if loc else prefix
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "required field is missing"
        problems.append(Problem(field=field, message=message, path=source))
    return problems


def _load_block(cls: type[Block], name: str, field: str) -> Any:
    slug = cls.get_block_type_slug()
    try:
        return cls.load(name)
    except ValidationError as error:
        raise DesignError(_problems(error, field, f"block {slug}/{name}")) from None
    except ValueError as error:
        # Prefect raises ValueError("Unable to find block document named ...") for a missing block
        if "Unable to find block" in str(error) or "not found" in str(error).lower():
            raise DesignError(
                [
                    Problem(
                        field=field,
                        message=f"no saved {slug} block is named {name!r}; save one first "
                        f"(see README, 'Blocks') or give the fields inline",
                    )
                ]
            ) from None
        raise DesignError([Problem(field=field, message=f"cannot load {slug} block {name!r}: {error}")]) from None
    except Exception as error:  # API unreachable, etc.
        raise DesignError(
            [Problem(field=field, message=f"cannot load {slug} block {name!r} from the Prefect API: {error}")]
        ) from None


def cluster_profile(value: dict[str, Any], field: str = "cluster", source: str | None = None) -> dict[str, Any]:
    """Validate inline cluster fields; return every field with its default filled in."""
    known = profile_fields()
    problems = [
        Problem(field=f"{field}.{key}", message=f"unknown cluster field (known: {', '.join(known)})", path=source)
        for key in sorted(set(value) - set(known))
    ]
    try:
        settings = ClusterSettings.model_validate({k: v for k, v in value.items() if k in known})
    except ValidationError as error:
        problems += _problems(error, field, source)
    if problems:
        raise DesignError(problems)
    return settings.model_dump(mode="json")


def resolve_site(
    design: ExperimentDesign,
    load_paths: Callable[[str], ExperimentPaths] | None = None,
    load_cluster: Callable[[str], SlurmCluster] | None = None,
) -> ExperimentDesign:
    """Return the design with saved blocks replaced by their values.

    `load_paths` / `load_cluster` replace `Block.load` (tests); by default blocks are read
    from the Prefect API that is configured (or the ephemeral one).
    """
    load_paths = load_paths or (lambda name: _load_block(ExperimentPaths, name, "paths"))
    load_cluster = load_cluster or (lambda name: _load_block(SlurmCluster, name, "cluster"))
    problems: list[Problem] = []
    update: dict[str, Any] = {}

    if isinstance(design.paths, str):
        try:
            block = load_paths(design.paths)
            update["paths"] = PathsSpec(
                models_dir=block.models_dir,
                output_dir=block.output_dir,
                prior_runs=list(block.prior_runs),
                scratch_dir=block.scratch_dir,
            )
        except DesignError as error:
            problems += error.problems

    if isinstance(design.cluster, str):
        try:
            update["cluster"] = load_cluster(design.cluster).profile()
        except DesignError as error:
            problems += error.problems
    elif isinstance(design.cluster, dict):
        try:
            update["cluster"] = cluster_profile(design.cluster)
        except DesignError as error:
            problems += error.problems

    if problems:
        raise DesignError(problems)
    return design.model_copy(update=update) if update else design
