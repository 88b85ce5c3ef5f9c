"""What keeps a large runs_plan.md readable: the directory tree as a pattern with examples, grouped limits.

Reads: a Plan and the time-limit rows of `tasks.planning._time_limits.time_limit_table`. Writes:
nothing. `large_plan_context` adds to runs_plan.md's context: `dir_runs` (the run folders drawn in
"Directory Structure": every run of a small plan, else the first fine-tuned run of each model and
one control) and `dir_more` (how many are not drawn), and `time_limit_display` (the job time
limits: one row per job of a small plan, else one row per distinct limit with its run count).
Tables that list runs (All Runs, Evaluation Matrix) stay complete: one line per run.
"""

from __future__ import annotations

from typing import Any

from tasks.model._plan import Plan, Run

SMALL_PLAN_RUNS = 12  # up to this many runs, every run folder and job limit is drawn


def _examples(plan: Plan) -> list[Run]:
    shown: dict[str, Run] = {}
    for run in plan.finetune_runs:
        shown.setdefault(run.model, run)
    examples = list(shown.values())
    return examples + plan.control_runs[:1]


def _grouped_limits(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[str]] = {}
    for row in rows:
        groups.setdefault((row["stage"], row["limit"], row["source"], row["warning"]), []).append(row["run"])
    out = []
    for (stage, limit, source, warning), runs in groups.items():
        named = runs[0] if len(runs) == 1 else f"{runs[0]} and {len(runs) - 1} more ({len(runs)} runs)"
        out.append({"run": named, "stage": stage, "limit": limit, "source": source, "warning": warning})
    return out


def large_plan_context(plan: Plan, time_limit_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """`dir_runs`, `dir_more` and `time_limit_display` for runs_plan.md (see the module docstring)."""
    if len(plan.runs) <= SMALL_PLAN_RUNS:
        return {"dir_runs": plan.runs, "dir_more": 0, "time_limit_display": time_limit_rows}
    examples = _examples(plan)
    return {"dir_runs": examples, "dir_more": len(plan.runs) - len(examples),
            "time_limit_display": _grouped_limits(time_limit_rows)}
