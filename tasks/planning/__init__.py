"""plan-runs' domain: expand a design into runs, verify resources, estimate, time limits, render and deliver the plan.

Layer 4 (imports the layers below: `core`, `model`, `backends`, `training`, `evaluation`).
"""

from tasks.planning._deliver import deliver_plan
from tasks.planning._expand import count_runs, expand_design
from tasks.planning._extend import ExtensionPlan, newest_group_date, plan_extension, prepare_extension
from tasks.planning._pilot import (
    DEFAULT_EVAL_SAMPLES,
    DEFAULT_STEPS,
    PilotFigure,
    pilot_design,
    pilot_figures,
    pilot_problems,
    render_pilot_report,
)
from tasks.planning._plan_markdown import render_plan_markdown, render_site_check_markdown
from tasks.planning._planner import build_plan, design_hash, existing_group_date
from tasks.planning._time_limits import TimeLimit, eval_time_limit, finetune_time_limit, time_limit_table

__all__ = [
    "DEFAULT_EVAL_SAMPLES",
    "DEFAULT_STEPS",
    "ExtensionPlan",
    "PilotFigure",
    "TimeLimit",
    "build_plan",
    "count_runs",
    "deliver_plan",
    "design_hash",
    "eval_time_limit",
    "existing_group_date",
    "expand_design",
    "finetune_time_limit",
    "newest_group_date",
    "pilot_design",
    "pilot_figures",
    "pilot_problems",
    "plan_extension",
    "prepare_extension",
    "render_pilot_report",
    "render_plan_markdown",
    "render_site_check_markdown",
    "time_limit_table",
]
