"""The on-disk contract of a run group: design, factors, plan, status, cluster settings, layout.

Layer 1 (imports `core` only). A flow opens a `RunGroup` once (plan, status store, cluster
settings, `GroupLayout` of every path inside the folder) and hands it to each step.
"""

from tasks.model._cluster import ClusterSettings, cluster_settings
from tasks.model._design import ExperimentDesign, PathsSpec, design_type
from tasks.model._design_file import DesignInput, load_design, parse_design, read_design
from tasks.model._factors import FACTORS, Factor, factor_levels
from tasks.model._group import GroupRef, RunGroup
from tasks.model._job_naming import JobNaming
from tasks.model._layout import GroupLayout, SiteCheckLayout
from tasks.model._plan import CheckpointJob, EvalJob, Plan, Run
from tasks.model._plan_file import load_plan
from tasks.model._site_check import SiteCheckReport, SiteShape
from tasks.model._status import FINETUNE, RunsStatus, StageStatus, utc_now
from tasks.model._status_file import StatusDamaged, StatusStore
from tasks.model._status_restore import StatusRestore, restore_status

__all__ = [
    "FACTORS",
    "FINETUNE",
    "CheckpointJob",
    "ClusterSettings",
    "DesignInput",
    "EvalJob",
    "ExperimentDesign",
    "Factor",
    "GroupLayout",
    "GroupRef",
    "JobNaming",
    "PathsSpec",
    "Plan",
    "Run",
    "RunGroup",
    "RunsStatus",
    "SiteCheckLayout",
    "SiteCheckReport",
    "SiteShape",
    "StageStatus",
    "StatusDamaged",
    "StatusRestore",
    "StatusStore",
    "cluster_settings",
    "design_type",
    "factor_levels",
    "load_design",
    "load_plan",
    "parse_design",
    "read_design",
    "restore_status",
    "utc_now",
]
