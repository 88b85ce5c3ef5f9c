"""`SlurmCluster`: one SLURM site profile (account, partition, limits, environment lines).

Saved once as a Prefect block (type slug `slurm-cluster`) and named by designs:

    from blocks import SlurmCluster
    SlurmCluster(account="mylab", partition="gpu", constraint="gpu80", mem="64G",
                 job_env={"modules": ["anaconda3/2024.6"], "conda": "ttenv"},
                 ).save("della-a100", overwrite=True)

A design may also give the same fields inline (`cluster: {partition: gpu, ...}`).
The fields, their defaults, descriptions and validation rules have one source:
`tasks.model._cluster.ClusterSettings`, which this block subclasses; the block adds the UI form
and saving by name. Reads/writes: nothing itself; the Prefect API stores saved blocks.
"""

from __future__ import annotations

from typing import Any, ClassVar

from prefect.blocks.core import Block

from tasks.model._cluster import ClusterSettings


class SlurmCluster(Block, ClusterSettings):
    """Where and how SLURM jobs are submitted: account, partition, limits, environment setup."""

    _block_type_name: ClassVar[str] = "SLURM cluster"
    _block_type_slug: ClassVar[str] = "slurm-cluster"
    _description: ClassVar[str] = (
        "A SLURM site profile for sweepflow: account, partition, constraint, QoS, limits, "
        "module loads / environment activation, and the queue cap."
    )

    def profile(self) -> dict[str, Any]:
        """The plain fields: what a design's `cluster:` holds once the block is resolved."""
        return self.model_dump(mode="json", include=set(profile_fields()))

    def settings(self) -> ClusterSettings:
        """The block's fields as the `ClusterSettings` a plan records."""
        return ClusterSettings.model_validate(self.profile())


def profile_fields() -> list[str]:
    """Names of the fields a design may give inline under `cluster:` (those of `ClusterSettings`)."""
    return list(ClusterSettings.model_fields)
