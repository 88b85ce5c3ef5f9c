"""Register sweepflow's block types with the Prefect server: `python -m blocks.register`.

Needs `PREFECT_API_URL` pointing at a running server (e.g. http://127.0.0.1:4200/api);
afterwards the UI's Blocks page offers "SLURM cluster" and "sweepflow paths" forms.
Saving a block from Python (`.save(name)`) registers its type too, so this is only needed
to create the first block in the UI.
"""

from __future__ import annotations

from blocks.cluster import SlurmCluster
from blocks.paths import ExperimentPaths


def main() -> None:
    """Register sweepflow's block types (slurm-cluster, sweepflow-paths) with the Prefect server."""
    for block in (SlurmCluster, ExperimentPaths):
        block.register_type_and_schema()
        print(f"registered block type {block.get_block_type_slug()}")


if __name__ == "__main__":
    main()
