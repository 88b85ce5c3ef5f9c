r"""run-experiment: the whole mission as one parent flow, stage by stage, resumable.

What it does
------------
1. **plan-runs** (subflow): design -> verified, estimated plan; approval (the UI form, or
   `auto_approve`); `experiment.yaml`, `runs_plan.md`, `runs_status.yaml`.
2. **setup-experiment** (subflow): run folders, torchtune configs, SLURM scripts.
3. **launch-runs** (subflow): sbatch with chained evaluations, watching, retries by cause.
4. **summarize-experiment** (subflow): summary.md, plots, result artifacts.

Re-running it continues where it stopped: the run group of the same design is found again
(same design hash, whatever the date), its status is kept, files that are already right are
left alone, jobs already submitted are not submitted again, and finished stages stay done.

How to run it
-------------
    prefect deployment run run-experiment/run-experiment \
        --param design=$PWD/examples/tiny_demo/design.yaml --param auto_approve=true --watch

(`make demo` does exactly this on a local Prefect server, worker and SLURM cluster.)
As Python: `from flows.run_experiment import run_experiment; run_experiment(design, auto_approve=True)`;
from a shell: `sweepflow run DESIGN --auto-approve` (or `--on-server`, and approve in the UI).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from blocks.resolve import resolve_site
from flows._cli import FlowCommand, UsageError, absolute
from flows._common import domain_flow, subflow_result
from flows.launch_runs import launch_runs
from flows.plan_runs import plan_runs
from flows.setup_experiment import setup_experiment
from flows.summarize_experiment import summarize_experiment
from tasks.core import SweepflowError
from tasks.model import DesignInput, read_design
from tasks.planning import design_hash, existing_group_date


def _resume_date(design: DesignInput) -> str | None:
    """The date of an earlier run group of this very design, if there is one."""
    try:
        resolved = resolve_site(read_design(design))
    except SweepflowError:
        return None  # plan-runs reports the problem properly
    return existing_group_date(resolved, design_hash(resolved))


@domain_flow("run-experiment")
def run_experiment(
    design: DesignInput,
    auto_approve: bool = False,
    date: str | None = None,
    max_attempts: int = 3,
    poll_seconds: float = 10.0,
    summarize: bool = True,
    check_site: bool | None = None,
    pilot: bool = False,
    pilot_steps: int = 20,
) -> str:
    """Plan, set up, launch, watch and summarize an experiment; safe to run again.

    Args:
        design: The experiment: fill in the design form (each field says what it means), or give
            the path of a design YAML file (absolute, or relative to the working directory;
            relative paths inside it resolve against its folder) or YAML text.
        auto_approve: skip the approval pause of plan-runs.
        date: run group date (default: the date of an earlier group of this design, else today).
        max_attempts: submissions per fine-tune (retries by cause).
        poll_seconds: time between status syncs.
        summarize: write summary.md and plots at the end.
        check_site: plan-runs' site check before approval (unset: on SLURM unless it passed recently).
        pilot: plan-runs runs the pilot first (`pilot_steps` steps of each model, short
            evaluations) and plans from what it measured.
        pilot_steps: optimizer steps of each pilot fine-tune.

    Returns:
        The run group folder.
    """
    logger = get_run_logger()
    if date is None:
        date = _resume_date(design)
        if date:
            logger.info("Resuming the run group of this design from %s", date)

    group_dir = subflow_result(plan_runs(design, auto_approve=auto_approve, date=date, check_site=check_site,
                                         pilot=pilot, pilot_steps=pilot_steps, return_state=True), "plan-runs")
    subflow_result(setup_experiment(group_dir, return_state=True), "setup-experiment")
    counts = subflow_result(launch_runs(group_dir, max_attempts=max_attempts, poll_seconds=poll_seconds,
                                        return_state=True), "launch-runs")
    logger.info("Stages: %s", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if summarize:
        summary = subflow_result(summarize_experiment(group_dir, return_state=True), "summarize-experiment")
        logger.info("Summary: %s", summary)
    return str(Path(group_dir))



def add_arguments(parser: argparse.ArgumentParser) -> None:
    """run-experiment's options."""
    parser.add_argument("design", help="the design YAML file")
    parser.add_argument("--auto-approve", action="store_true", help="write the plan without asking for approval")
    parser.add_argument("--date", help="the run group's date (default: that of an earlier group of this design, "
                        "else today)")
    parser.add_argument("--max-attempts", type=int, default=3,
                        help="submissions per fine-tune, retries by cause included (default: %(default)s)")
    parser.add_argument("--poll-seconds", type=float, default=10.0,
                        help="time between status checks (default: %(default)s)")
    parser.add_argument("--no-summary", action="store_true", help="stop after the jobs; no summary.md")
    parser.add_argument("--check-site", action=argparse.BooleanOptionalAction, default=None,
                        help="the site check before approval (default: on SLURM, unless it passed within 7 days)")
    parser.add_argument("--pilot", action="store_true", help="run the pilot first and plan from what it measured")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """run-experiment's parameters; refused when nobody could approve the plan (no server, no --auto-approve)."""
    design = absolute(args.design)
    read_design(design)
    if not (args.auto_approve or args.on_server or os.environ.get("PREFECT_API_URL")):
        raise UsageError("run: without a Prefect server nobody can approve the plan in the UI; pass --auto-approve, "
                         "or --on-server (approve in the UI), or plan first with `sweepflow plan`")
    return {"design": design, "auto_approve": args.auto_approve, "date": args.date,
            "max_attempts": args.max_attempts, "poll_seconds": args.poll_seconds, "summarize": not args.no_summary,
            "check_site": args.check_site, "pilot": args.pilot}


COMMAND = FlowCommand(
    flow=run_experiment,
    summary="The whole sweep in one go: plan (with approval), set up, launch and follow the jobs, summarize. "
    "Running it again continues where it stopped.",
    add_arguments=add_arguments,
    parameters=parameters,
    details="Prints the run group folder (exit 0), or the stage that did not finish and why (exit 1).",
)


def main(argv: list[str] | None = None) -> int:
    """Run the whole experiment from a shell (`python -m flows.run_experiment DESIGN`)."""
    return COMMAND.main("python -m flows.run_experiment", argv)


if __name__ == "__main__":
    sys.exit(main())
