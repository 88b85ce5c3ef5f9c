r"""pilot-runs: measure before the sweep spends: a few steps of each model, one save, short evaluations.

What it does
------------
1. **plan** the sweep (as plan-runs does, nothing written): its batch sizes are what the pilot runs.
2. **pilot-design**: per model, the design's first run (every factor at its first level) at the
   plan's batch size, one epoch ended after `steps` optimizer steps (torchtune's
   `max_steps_per_epoch`), so one checkpoint save, and every evaluation task on the first
   `eval_samples` test samples (`tasks.planning._pilot`). No control runs.
3. **deliver** it as its own run group `<output_dir>/<name>-pilot-<hash6>_<date>/`, then run it
   like any sweep: **setup-experiment** and **launch-runs** (real jobs on the design's backend,
   retries by cause included: an OOM at the planned batch size is retried at half of it).
4. **report**: `measured_runs.yaml` in the pilot group, and the markdown artifact
   `pilot-<pilot group>`: the sweep planned again, each figure saying whether the pilot measured
   it (training speed, start-up, checkpoint save and size, peak GPU memory, evaluation time).

The next plan of the design reads the pilot's logs as prior runs whatever `paths.prior_runs`
says, preferring them, and names those figures `measured by pilot: ...` in runs_plan.md and on
plan-runs' approval form. `plan-runs --param pilot=true` runs this flow before its approval.
Running it again with the same settings resumes (or reuses) the same pilot group.

How to run it
-------------
    prefect deployment run pilot-runs/pilot-runs --param design=$PWD/examples/tiny_demo/design.yaml --watch

As Python: `from flows.pilot_runs import pilot_runs; pilot_runs("examples/tiny_demo/design.yaml")`;
from a shell: `sweepflow pilot DESIGN [--steps 20] [--eval-samples 20]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import State

from flows._cli import FlowCommand, absolute
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
from flows.launch_runs import launch_runs
from flows.setup_experiment import setup_experiment
from tasks.model import DesignInput, read_design
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


__all__ = ["COMMAND", "main", "pilot_runs"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """pilot-runs' options."""
    parser.add_argument("design", help="the design YAML file of the sweep to measure")
    parser.add_argument("--date", help="the pilot group's date, YYYY-MM-DD (default: today)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="optimizer steps of each pilot fine-tune (default: %(default)s)")
    parser.add_argument("--eval-samples", type=int, default=DEFAULT_EVAL_SAMPLES,
                        help="test samples of each pilot evaluation (default: %(default)s)")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """pilot-runs' parameters from the options; the design is read first, so a bad file fails at once."""
    design = absolute(args.design)
    read_design(design)
    return {"design": design, "date": args.date, "steps": args.steps, "eval_samples": args.eval_samples}


COMMAND = FlowCommand(
    flow=pilot_runs,
    summary="Measure before the sweep spends: a few training steps of each model, one checkpoint save and short "
    "evaluations, as real jobs; the next plan of the design uses what they measured.",
    add_arguments=add_arguments,
    parameters=parameters,
    details="Prints the pilot's run group folder (exit 0), or how it ended (exit 1).",
)


def main(argv: list[str] | None = None) -> int:
    """Run the pilot from a shell; prints the pilot's run group folder (exit 0), else how it ended (exit 1)."""
    return COMMAND.main("python -m flows.pilot_runs", argv)


if __name__ == "__main__":
    sys.exit(main())
