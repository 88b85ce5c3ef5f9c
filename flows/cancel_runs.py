r"""cancel-runs: stop a run group's jobs (all of them, or some runs') and say so in its status.

What it does
------------
1. **cancel-jobs**: one `scancel` with every queued or running job of the selected runs (their
   fine-tunes and evaluations); then, under the status lock, every selected stage that had
   not finished becomes `cancelled` with your reason, including stages not submitted yet.
   Finished stages keep their outcome. A cancelled fine-tune is never retried.
2. **sync**: one status query, then the keyed progress and runs table artifacts are
   published again, so the Prefect UI shows the cancellation at once.

To run the cancelled work later (after a fix): `launch-runs` with `rerun_failed_finetunes`.

How to run it
-------------
    prefect deployment run cancel-runs/cancel-runs --param group_dir=/abs/path/<run group> \
        --param reason="wrong learning rate"            # every run of the group
    prefect deployment run cancel-runs/cancel-runs --param group_dir=/abs/path/<run group> \
        --params '{"runs": ["Llama-3.2-1B-Instruct_rank64"]}'   # only these runs

As Python: `from flows.cancel_runs import cancel_runs; cancel_runs(group_dir, runs=[...])`; from a
shell: `sweepflow cancel GROUP_DIR [RUN ...] --reason "..."`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefect import get_run_logger, task
from prefect.states import State

from flows._cli import FlowCommand, absolute
from flows._common import TASK_OPTIONS, domain_flow, fail, open_group, publish_status
from tasks.execution import cancel_stages, sync_jobs

cancel_jobs_task = task(name="cancel-jobs", **TASK_OPTIONS)(cancel_stages)


@domain_flow("cancel-runs")
def cancel_runs(group_dir: str, runs: list[str] | None = None, reason: str = "") -> dict[str, Any] | State:
    """Cancel the queued and running jobs of a run group, or of some of its runs.

    Args:
        group_dir: the run group folder (holds experiment.yaml and runs_status.yaml).
        runs: run names to cancel (fine-tune and evaluations); default: every run.
        reason: why; recorded in runs_status.yaml and the logs.

    Returns:
        The job ids cancelled and the `run/stage` entries marked cancelled.
    """
    logger = get_run_logger()
    group, backend = open_group(group_dir)
    try:
        report = cancel_jobs_task(group, backend, runs, reason)
    except RuntimeError as error:  # scancel refused; nothing was marked
        return fail(str(error))
    logger.info("%s: %s", group_dir, report.summary())
    for stage in report.stages:
        logger.info("cancelled %s", stage)
    publish_status(group, sync_jobs(group, backend))
    return report.model_dump()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """cancel-runs' options."""
    parser.add_argument("group_dir", help="the run group folder")
    parser.add_argument("runs", nargs="*", help="names of the runs to cancel (default: every run of the group)")
    parser.add_argument("--reason", default="", help="why; recorded in runs_status.yaml and the logs")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """cancel-runs' parameters from the options."""
    return {"group_dir": absolute(args.group_dir), "runs": args.runs or None, "reason": args.reason}


COMMAND = FlowCommand(
    flow=cancel_runs,
    summary="Cancel a run group's queued and running jobs (or only some runs'): every unfinished stage is marked "
    "cancelled with your reason and never retried; finished stages keep their results.",
    add_arguments=add_arguments,
    parameters=parameters,
    details="To run the cancelled work later: launch --rerun-failed-finetunes.",
)


def main(argv: list[str] | None = None) -> int:
    """Cancel from a shell (`python -m flows.cancel_runs GROUP_DIR [RUN ...]`); exit 0 done, 1 failed."""
    return COMMAND.main("python -m flows.cancel_runs", argv)


if __name__ == "__main__":
    sys.exit(main())
