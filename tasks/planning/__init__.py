"""plan-runs' domain: expand a design into runs, verify resources, estimate, render and deliver the plan.

Layer 4 (imports the layers below: `core`, `model`, `backends`, `training`, `evaluation`).
"""

from tasks.planning.deliver import deliver_plan
from tasks.planning.expand import count_runs, expand_design
from tasks.planning.plan_markdown import render_plan_markdown
from tasks.planning.planner import build_plan, design_hash, existing_group_date

__all__ = ["build_plan", "count_runs", "deliver_plan", "design_hash", "existing_group_date", "expand_design",
           "render_plan_markdown"]
