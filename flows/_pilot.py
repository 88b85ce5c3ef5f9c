"""The pilot-runs flow itself (plan, pilot design, deliver, set up, launch, report).

A helper module so that plan-runs (`pilot=true`) runs it as a subflow through a shared helper,
not another flow. What it does and how to run it: flows/pilot_runs.py.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import State

from flows._common import (
    TASK_OPTIONS,
    artifact_slug,
    build_plan_task,
    deliver_now,
    domain_flow,
    fail,
    plan_design,
    reworded,
    subflow_result,
)
from flows._launch import launch_runs
from flows._setup import setup_experiment
from tasks.model import DesignInput
from tasks.planning import (
    DEFAULT_EVAL_SAMPLES,
    DEFAULT_STEPS,
    pilot_design,
    pilot_problems,
    render_pilot_report,
)
from tasks.results import record_measurements

pilot_design_task = task(name="pilot-design", **TASK_OPTIONS)(pilot_design)
deliver_pilot_task = task(name="deliver-pilot", **TASK_OPTIONS)(deliver_now)
record_measurements_task = task(name="record-measurements", **TASK_OPTIONS)(record_measurements)


@domain_flow("pilot-runs")
def pilot_runs(
    design: DesignInput,
    date: str | None = None,
    steps: int = DEFAULT_STEPS,
    eval_samples: int = DEFAULT_EVAL_SAMPLES,
    max_attempts: int = 3,
    poll_seconds: float = 10.0,
    max_wait_hours: float = 12.0,
) -> str | State:
    """Run the pilot of a design and report what it measured; returns the pilot's run group folder.

    Args:
        design: The experiment: fill in the design form (each field says what it means), or give
            the path of a design YAML file (absolute, or relative to the working directory;
            relative paths inside it resolve against its folder) or YAML text.
        date: the pilot group's date (default: today).
        steps: optimizer steps of each pilot fine-tune (its one epoch ends there).
        eval_samples: test samples each pilot evaluation looks at.
        max_attempts: submissions per pilot fine-tune (an OOM is retried at half the batch).
        poll_seconds: time between status syncs.
        max_wait_hours: give up waiting after this long (queue waits included); the jobs go on.
    """
    logger = get_run_logger()
    if steps < 1 or eval_samples < 1:
        return fail(f"A pilot needs steps >= 1 and eval_samples >= 1 (got steps={steps}, eval_samples={eval_samples})")
    plan = plan_design(design, date)
    pilot = pilot_design_task(plan, steps, eval_samples)
    with reworded("The pilot could not be planned:\n{}"):
        pilot_plan = build_plan_task(pilot, date=date)
    group_dir = deliver_pilot_task(pilot_plan)
    logger.info("Pilot of %s: %d run(s) in %s", plan.design.name, len(pilot_plan.runs), group_dir)

    subflow_result(setup_experiment(str(group_dir), return_state=True), "The pilot's setup-experiment")
    subflow_result(launch_runs(str(group_dir), max_attempts=max_attempts, poll_seconds=poll_seconds,
                               max_wait_hours=max_wait_hours, return_state=True), "The pilot's launch-runs")

    record_measurements_task(group_dir)
    problems = pilot_problems(group_dir)
    replanned = plan_design(plan.design.model_dump(mode="json"), date)
    report = render_pilot_report(replanned, group_dir, steps, eval_samples, problems)
    create_markdown_artifact(markdown=report, key=f"pilot-{artifact_slug(Path(group_dir).name)}",
                             description=f"What the pilot of {plan.design.name} measured")
    if problems:
        return fail("The pilot did not finish cleanly (a failure here is likely the sweep's too):\n  - "
                    + "\n  - ".join(problems))
    logger.info("Pilot finished: %s", group_dir)
    return str(group_dir)
