"""Prefect blocks that replace the seed's `claude.local.md`: site settings saved once, by name.

- `SlurmCluster` (block type `slurm-cluster`): account, partition, QoS, limits, module loads.
- `ExperimentPaths` (block type `sweepflow-paths`): models, outputs, prior runs, scratch.

A design names a saved block (`paths: della-paths`, `cluster: della-a100`) or gives the
fields inline; `blocks.resolve.resolve_site` turns names into values before planning.
Register both types with a server: `python -m blocks.register`.
"""

from blocks.cluster import SlurmCluster
from blocks.paths import ExperimentPaths

__all__ = ["ExperimentPaths", "SlurmCluster"]
