"""plan-runs' presentation and approval: the runs table, the summary line, the artifacts and the form.

Reads a Plan (and its site check, pilot figures and power); writes Prefect artifacts (the plan as
markdown, the runs as a table) and pauses the flow run for the approval form. Used by
`flows/plan_runs.py` only; kept apart so the flow module reads as its steps.
"""

from __future__ import annotations

import os
from typing import Any

import pydantic
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled, State
from pydantic import Field

from flows._common import artifact_slug, fail
from tasks.model import Plan, SiteCheckReport
from tasks.planning import pilot_figures, time_limit_table


def approval_timeout_s() -> int:
    """How long a plan waits for approval (env SWEEPFLOW_APPROVAL_TIMEOUT_S; default 7 days)."""
    return int(os.environ.get("SWEEPFLOW_APPROVAL_TIMEOUT_S", str(7 * 24 * 3600)))


def approval_poll_s() -> int:
    """How often the paused flow checks for an answer (env SWEEPFLOW_APPROVAL_POLL_S; default 2)."""
    return max(1, int(os.environ.get("SWEEPFLOW_APPROVAL_POLL_S", "2")))


class PlanApproval(RunInput):
    """The form shown in the Prefect UI while a plan waits for approval."""

    approve: bool = Field(True, description="Untick to reject the plan (nothing is written)")
    comment: str = Field("", description="A note for the logs; say why when rejecting")



def runs_table(plan: Plan) -> list[dict[str, Any]]:
    """One row per run for the table artifact."""
    rows = []
    for run in plan.runs:
        estimate = plan.estimates.runs.get(run.name)
        rows.append(
            {
                "run": run.name,
                "kind": run.kind,
                "model": run.model,
                "factors": ", ".join(f"{k}={v}" for k, v in run.factors.items()) or "-",
                "lora_rank": run.params.lora_rank if run.kind == "finetune" else "-",
                "learning_rate": run.params.learning_rate if run.kind == "finetune" else "-",
                "epochs": run.params.epochs if run.kind == "finetune" else "-",
                "batch_size": estimate.batch_size if estimate else run.params.batch_size,
                "eval_jobs": len(run.checkpoint_jobs),
                "train_minutes": round(estimate.train_minutes, 1) if estimate else None,
                "gpu_hours": round(estimate.gpu_hours, 2) if estimate else None,
                "disk_gib": round(estimate.disk_gib, 2) if estimate else None,
            }
        )
    return rows


def plan_summary(plan: Plan) -> str:
    """One line: runs, evaluation jobs, GPU-hours and disk of the plan."""
    finetunes, controls = len(plan.finetune_runs), len(plan.control_runs)
    replicates = plan.design.replicates
    tuned = (f"{finetunes // replicates} cells x {replicates} replicates = {finetunes} fine-tuned" if replicates > 1
             else f"{finetunes} fine-tuned")
    return (
        f"{plan.run_group}: {len(plan.runs)} runs ({tuned}, {controls} control), "
        f"{len(plan.eval_jobs)} evaluations in {len(plan.checkpoint_jobs)} evaluation jobs, "
        f"about {plan.estimates.total_gpu_hours:.1f} GPU-hours "
        f"and {plan.estimates.disk.total_gib:.1f} GiB of disk"
    )


def publish_plan(plan: Plan, markdown: str) -> tuple[str, str]:
    """Markdown artifact of runs_plan.md and table artifact of the runs; returns their keys."""
    slug = artifact_slug(plan.run_group)
    plan_key, runs_key = f"plan-{slug}", f"runs-{slug}"
    create_markdown_artifact(markdown=markdown, key=plan_key, description=f"runs_plan.md for {plan.run_group}")
    create_table_artifact(table=runs_table(plan), key=runs_key, description=f"Runs of {plan.run_group}")
    return plan_key, runs_key


def log_findings(plan: Plan) -> None:
    """The plan's warnings in the flow's log: time limits below their estimate, statistical power, leakage."""
    logger = get_run_logger()
    for warning in time_limit_table(plan)["time_limit_warnings"]:
        logger.warning("Time limit: %s", warning)
    for warning in plan.power.warnings if plan.power else []:
        logger.warning("Statistical power: %s", warning)
    for dataset in plan.resources.datasets:
        if dataset.test_in_train:
            logger.warning(
                "Leakage: %d of %d test inputs of %s also occur in its train split (e.g. %s)",
                dataset.test_in_train, dataset.splits.test, dataset.path, ", ".join(dataset.test_in_train_examples),
            )


def _leakage_line(plan: Plan) -> str:
    leaks = [d for d in plan.resources.datasets if d.test_in_train]
    return "".join(
        f"**Leakage**: {d.test_in_train} of {d.splits.test} test inputs of `{d.path.name}` also occur in its "
        f"train split.\n\n" for d in leaks
    )


def check_refuses(check: SiteCheckReport) -> bool:
    """A job failed its check (or was refused): the sweep would fail the same way. A queue wait alone does not."""
    return any(s.outcome in ("failed", "not submitted") for s in check.shapes)


def _site_check_line(plan: Plan) -> str:
    check = plan.site_check
    if check is None or check.passed:
        return ""
    found = "".join(f"- {line}\n" for line in check.failures())
    return (f"**Site check FAILED** ({check.checked_at}): jobs of these shapes would fail the same way; "
            f"reject, fix and plan again.\n\n{found}\n")


def _figures_table(plan: Plan) -> str:
    """Each model's figures with where they came from; "measured by pilot" where the pilot measured them."""
    rows = [f"| {f.model} | {f.name} | {f.value} | {'measured by pilot' if f.by_pilot else f.source} |"
            for f in pilot_figures(plan)]
    return "| model | figure | value | from |\n|---|---|---|---|\n" + "\n".join(rows) + "\n\n"


def _pilot_line(pilot_problem: str | None) -> str:
    return f"**Pilot FAILED**: {pilot_problem}\n\n" if pilot_problem else ""


def _power_lines(plan: Plan) -> str:
    """The statistical power warnings (unmeasured seed variance, a test set too small for the target)."""
    if plan.power is None:
        return ""
    rows = "".join(f"- {t.task}: {t.n_items} test items detect a difference of "
                   f"{t.detectable:.3f} or more\n" for t in plan.power.tasks if t.detectable is not None)
    warnings = "".join(f"- **Warning**: {w}\n" for w in plan.power.warnings)
    return f"**Statistical power** ({plan.power.power:.0%} power, alpha {plan.power.alpha:g}):\n\n{rows}{warnings}\n"


def _approval_form(plan: Plan, plan_key: str, pilot_problem: str | None = None,
                   delta: str = "") -> type[PlanApproval]:
    what = "extension" if delta else "plan"
    description = (
        f"## Approve the {what} for `{plan.run_group}`?\n\n"
        f"{delta + chr(10) if delta else ''}"
        f"{plan_summary(plan)}.\n\n"
        f"{_site_check_line(plan)}"
        f"{_pilot_line(pilot_problem)}"
        f"{_leakage_line(plan)}"
        f"{_power_lines(plan)}"
        f"{_figures_table(plan)}"
        f"The full plan is the artifact **{plan_key}** (this run's Artifacts tab).\n\n"
        f"Approving writes `experiment.yaml`, `runs_plan.md` and `runs_status.yaml` to "
        f"`{plan.group_dir}`. Rejecting writes nothing and ends this run Cancelled."
    )
    # a subclass per plan carries the description shown above the form (and keeps the
    # fields' own descriptions, which `RunInput.with_initial_data` would drop)
    form = pydantic.create_model("PlanApproval", __base__=PlanApproval)
    form._description = description
    return form


def _ui_link() -> str:
    try:
        from prefect.settings import PREFECT_UI_URL

        base = PREFECT_UI_URL.value()
        run_id = current_flow_run.get_id()
        return f" at {base}/runs/flow-run/{run_id}" if base and run_id else ""
    except Exception:
        return ""


def await_approval(plan: Plan, plan_key: str, pilot_problem: str | None = None, delta: str = "") -> State | None:
    """Pause for the approval form; None once approved, else the state that ends the run."""
    logger = get_run_logger()
    logger.info("Waiting for approval: open this run in the Prefect UI%s and submit the form", _ui_link())
    try:
        answer = pause_flow_run(
            wait_for_input=_approval_form(plan, plan_key, pilot_problem, delta),
            timeout=approval_timeout_s(),
            poll_interval=approval_poll_s(),
        )
    except FlowPauseTimeout:
        return fail(
            f"No approval within {approval_timeout_s()} s; nothing was written. Start the run again to re-plan."
        )
    comment = (answer.comment or "").strip()
    if not answer.approve:
        message = f"Plan rejected: {comment or 'no comment given'}. Nothing was written."
        logger.warning(message)
        return Cancelled(message=message)
    logger.info("Plan approved%s", f": {comment}" if comment else "")
    return None
