"""A run group opened once: its folder layout, its plan, its status store, its cluster settings.

Reads: `experiment.yaml` (once, when the plan is first asked for). Writes: nothing itself;
`status` is the `StatusStore` every writer of runs_status.yaml goes through.
A flow opens the group once and hands the same object to each step, so a step never reloads
the plan or builds a second store. Functions accept a `GroupRef` (the object, or the folder)
so that they can also be called from a shell or a test with a path.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from tasks.model._cluster import ClusterSettings, cluster_settings
from tasks.model._layout import GroupLayout
from tasks.model._plan import Plan
from tasks.model._plan_file import load_plan
from tasks.model._status import FINETUNE
from tasks.model._status_file import StatusStore


def planned_stages(plan: Plan) -> list[tuple[str, str]]:
    """(run, key) of every stage the plan has: fine-tunes (skipped ones too) and evaluations."""
    return [(run.name, key) for run in plan.runs for key in (FINETUNE, *(job.key for job in run.evaluations))]


class RunGroup:
    """One run group folder; the plan is read on first use and kept."""

    def __init__(self, root: str | Path, plan: Plan | None = None):
        self.layout = GroupLayout(Path(root))
        self.status = StatusStore(self.layout.status_file, expected=lambda: planned_stages(self.plan))
        if plan is not None:
            self.__dict__["plan"] = plan

    @classmethod
    def of(cls, group: GroupRef) -> RunGroup:
        """`group` itself when it is open already, else the folder opened."""
        return group if isinstance(group, RunGroup) else cls(group)

    @property
    def root(self) -> Path:
        """The run group folder."""
        return self.layout.root

    @property
    def name(self) -> str:
        """The run group's name: its folder's name."""
        return self.layout.root.name

    @cached_property
    def plan(self) -> Plan:
        """The approved plan (experiment.yaml); errors name the file and the field."""
        return load_plan(self.root)

    @cached_property
    def cluster(self) -> ClusterSettings:
        """The cluster settings the plan records."""
        return cluster_settings(self.plan.design)

    def __repr__(self) -> str:
        return f"RunGroup({str(self.root)!r})"


GroupRef = RunGroup | str | Path
