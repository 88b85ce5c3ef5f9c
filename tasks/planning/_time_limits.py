"""Each job's `--time`: its estimate times a margin, rounded up, capped by the partition's limit.

Reads: a plan's estimates and the cluster settings (`time_limit` / `eval_time_limit` when set
explicitly, `time_margin`, `max_time_limit`). Writes: nothing. setup-experiment writes the
result into each job script's `#SBATCH --time`, runs_plan.md shows it per run, and a TIMEOUT
retry doubles it.

Rules:
  explicit limit in the settings       -> that limit; a warning when it is below the estimate
  otherwise                            -> estimate x time_margin, rounded up to 5 minutes
                                          (at least 10), capped by max_time_limit; a warning
                                          when the cap is below the estimate
  no estimate (a run the plan lacks)   -> the fallback (4 h fine-tune, 30 min evaluation)
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from tasks.core._durations import format_duration, parse_duration
from tasks.core._errors import DesignError
from tasks.model._cluster import ClusterSettings, cluster_settings
from tasks.model._plan import Plan, Run

STEP_MINUTES = 5
MIN_MINUTES = 10
FALLBACK = {"finetune": "04:00:00", "eval": "00:30:00"}


class TimeLimit(BaseModel):
    """One job's limit, where it came from, and a warning when it may be too short."""

    limit: str  # a duration (tasks.core._durations), e.g. 01:15:00
    source: str
    warning: str | None = None


def _minutes(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None:  # ClusterSettings validates limits; this guards an edited experiment.yaml
        raise ValueError(f"{text!r} is not a time limit")
    return seconds / 60


def time_limit(
    estimate_minutes: float | None, explicit: str | None, margin: float, cap: str | None, what: str, stage: str
) -> TimeLimit:
    """The limit of one job of `stage` ("finetune" or "eval") estimated at `estimate_minutes`."""
    if explicit is not None:
        short = estimate_minutes is not None and _minutes(explicit) < estimate_minutes
        warning = (f"{what}: time limit {explicit} is below its estimate of {estimate_minutes:.0f} min"
                   if short else None)
        return TimeLimit(limit=explicit, source="cluster settings", warning=warning)
    if estimate_minutes is None:
        return TimeLimit(limit=FALLBACK[stage], source="default (no estimate)")
    wanted = max(MIN_MINUTES, math.ceil(estimate_minutes * margin / STEP_MINUTES) * STEP_MINUTES)
    source = f"estimate {estimate_minutes:.1f} min x {margin:g}"
    if cap is not None and _minutes(cap) < wanted:
        below = _minutes(cap) < estimate_minutes
        warning = (f"{what}: the partition's limit {cap} is below its estimate of {estimate_minutes:.0f} min"
                   if below else None)
        return TimeLimit(limit=cap, source=f"{source}, capped by max_time_limit", warning=warning)
    return TimeLimit(limit=format_duration(wanted * 60), source=source)


def finetune_time_limit(plan: Plan, run: Run, cluster: ClusterSettings) -> TimeLimit:
    """The fine-tune's limit: from its training estimate (all epochs, start-up and saves included)."""
    estimate = plan.estimates.runs.get(run.name)
    minutes = estimate.train_minutes if estimate is not None and estimate.train_minutes > 0 else None
    return time_limit(minutes, cluster.time_limit, cluster.time_margin, cluster.max_time_limit,
                      f"fine-tune {run.name}", "finetune")


def eval_time_limit(plan: Plan, run: Run, cluster: ClusterSettings) -> TimeLimit:
    """Each evaluation job's limit: the run's evaluation estimate per job.

    One job per evaluated checkpoint: its model load and merge once, plus each of its tasks
    (`formulas.checkpoint_job_minutes`).
    """
    estimate = plan.estimates.runs.get(run.name)
    minutes = estimate.eval_minutes / estimate.eval_jobs if estimate is not None and estimate.eval_jobs else None
    return time_limit(minutes, cluster.eval_time_limit, cluster.time_margin, cluster.max_time_limit,
                      f"evaluations of {run.name}", "eval")


def time_limit_table(plan: Plan) -> dict[str, Any]:
    """runs_plan.md's rows (run, stage, limit, source, warning) and the warnings; none while cluster is a block name."""
    try:
        cluster = cluster_settings(plan.design)
    except DesignError:
        return {"time_limit_rows": [], "time_limit_warnings": []}
    rows = []
    for run in plan.runs:
        if not run.is_control:
            rows.append({"run": run.name, "stage": "fine-tune", **finetune_time_limit(plan, run, cluster).model_dump()})
        if run.evaluations:
            each = eval_time_limit(plan, run, cluster)
            rows.append({"run": run.name, "stage": "each evaluation job", **each.model_dump()})
    return {"time_limit_rows": rows, "time_limit_warnings": [r["warning"] for r in rows if r["warning"]]}


def time_limit_warnings(plan: Plan, cluster: ClusterSettings) -> list[str]:
    """Every job whose limit is below its estimate (an explicit limit, or the partition's cap)."""
    limits = [finetune_time_limit(plan, run, cluster) for run in plan.finetune_runs]
    limits += [eval_time_limit(plan, run, cluster) for run in plan.runs if run.evaluations]
    return [t.warning for t in limits if t.warning]
