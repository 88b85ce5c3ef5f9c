r"""rerun-runs: run chosen runs or stages of a run group again, finished or failed, with the reason on record.

What it does
------------
1. **rerun-stages**: under the status lock, the chosen stages go back to `pending` with
   `reason: re-run requested: <your reason> (was <status>)`; every earlier attempt stays on
   record and the last one is marked `reopened` (`tasks.execution._rerun`). A re-run fine-tune
   brings all its evaluations with it (a new checkpoint); a fine-tune a TIMEOUT retry had set to
   resume is rendered again to train from the start. Nothing changes when a chosen stage is
   queued or running (cancel it first), when the reason is empty, or when a run was dropped
   from the design (extend the group with it back instead).
2. **launch** (with `launch=true`, the default): the launch-runs flow as a subflow submits what
   was reopened (with `wait=false`, one step; the scheduled advance-runs carries it on).
   Without it, the next advance-runs step submits them.

`stages` names `finetune`, `evaluations` (all of a run's), a task name (all its epochs) or an
evaluation key (`capitalization_epoch_1`); unset: every stage of the chosen runs. `runs` unset:
every run of the design.

How to run it
-------------
    prefect deployment run rerun-runs/rerun-runs --param group_dir=/abs/path/<run group> \
        --params '{"runs": ["Llama-3.2-1B-Instruct_rank64"], "stages": ["evaluations"], "reason": "new inspect"}'

As Python: `from flows.rerun_runs import rerun_runs; rerun_runs(group_dir, runs=[...], reason="...")`.
From a shell: `sweepflow rerun GROUP [RUN ...] --stage evaluations --reason "new scorer"`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefect import get_run_logger, task

from flows._cli import FlowCommand, absolute
from flows._common import TASK_OPTIONS, domain_flow, reworded
from flows._launch import launch_runs
from tasks.execution import rerun_stages

rerun_stages_task = task(name="rerun-stages", **TASK_OPTIONS)(rerun_stages)


@domain_flow("rerun-runs")
def rerun_runs(
    group_dir: str,
    reason: str,
    runs: list[str] | None = None,
    stages: list[str] | None = None,
    launch: bool = True,
    wait: bool = False,
) -> dict[str, Any]:
    """Send chosen stages of a run group back to pending, with `reason`, and (with `launch`) submit them.

    Args:
        group_dir: the run group folder (holds experiment.yaml and runs_status.yaml).
        reason: why they run again; recorded on every reopened stage in runs_status.yaml.
        runs: run names (default: every run of the design).
        stages: finetune, evaluations, a task name or an evaluation key (default: every stage).
        launch: submit them now (launch-runs as a subflow); false: the next advance step does.
        wait: with `launch`, wait until they end (launch-runs' `wait`).

    Returns:
        The reason and the `run/stage` entries reopened.
    """
    logger = get_run_logger()
    with reworded("{}\nNothing was changed."):
        report = rerun_stages_task(group_dir, runs, stages, reason)
    logger.info("Re-run (%s): %s", report.reason, ", ".join(report.reopened))
    if report.rerendered:
        logger.info("Configs rendered again to train from the start: %s", ", ".join(report.rerendered))
    if launch:
        counts = launch_runs(group_dir, wait=wait)
        logger.info("launch-runs: %s", counts)
    return report.model_dump()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """rerun-runs' options."""
    parser.add_argument("group_dir", help="the run group folder")
    parser.add_argument("runs", nargs="*", help="names of the runs to run again (default: every run of the design)")
    parser.add_argument("--stage", action="append", dest="stages",
                        help="finetune (with its evaluations), evaluations, a task name or an evaluation key "
                        "such as capitalization_epoch_1; repeat it for several (default: every stage)")
    parser.add_argument("--reason", default="", help="why they run again (required); recorded on every stage")
    parser.add_argument("--no-launch", action="store_true",
                        help="only send them back to pending; the next advance step (advance-runs) submits them")
    parser.add_argument("--wait", action="store_true", help="wait until the re-run jobs end")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """rerun-runs' parameters from the options."""
    return {"group_dir": absolute(args.group_dir), "reason": args.reason, "runs": args.runs or None,
            "stages": args.stages, "launch": not args.no_launch, "wait": args.wait}


COMMAND = FlowCommand(
    flow=rerun_runs,
    summary="Run chosen runs or stages of a run group again, finished or failed: they go back to pending with "
    "your reason recorded (earlier attempts kept) and are submitted again.",
    add_arguments=add_arguments,
    parameters=parameters,
    details="Refused, changing nothing: no reason, a stage still queued or running (cancel it first), a run "
    "dropped from the design (extend the group with it back).",
)


def main(argv: list[str] | None = None) -> int:
    """Re-run from a shell (`python -m flows.rerun_runs GROUP_DIR [RUN ...] --reason WHY`); exit 0 done, 1 failed."""
    return COMMAND.main("python -m flows.rerun_runs", argv)


if __name__ == "__main__":
    sys.exit(main())
