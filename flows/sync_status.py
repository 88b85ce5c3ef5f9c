"""sync-status: bring a run group's runs_status.yaml up to date, and do nothing else.

What it does
------------
1. Asks the scheduler about every tracked job in ONE call (`sacct` for all ids; `squeue` /
   `scontrol` when accounting is down; the local backend reads its job records).
2. Updates `runs_status.yaml` under its lock (status, job id, output, attempts, last
   updated); a finished stage never goes back. COMPLETED is checked against artifacts: the
   fine-tune's `epoch_N/` checkpoints, the evaluation's `.eval` log with status success.
3. Publishes a keyed progress artifact (`progress-<group>`: done / total) and a keyed runs
   table (`status-<group>`: run x stage x state x attempts x elapsed) in the Prefect UI.

It is safe to run while launch-runs runs (both write through the same lock). It submits and
retries nothing: the scheduled deployment that keeps a sweep moving is advance-runs
(flows/advance_runs.py), which syncs too.

How to run it
-------------
    prefect deployment run sync-status/sync-status --param group_dir=/abs/path/<run group>

Without group_dir it syncs every run group with unfinished stages under output_dir
($SWEEPFLOW_OUTPUT_DIR, set at deploy). As Python:
`from flows.sync_status import sync_status; sync_status(group_dir)`. From a shell,
`sweepflow status GROUP_DIR` (or `python -m flows.sync_status GROUP_DIR`) syncs the group and
prints its progress and runs table (`--no-sync`: only prints what runs_status.yaml says).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from flows._cli import FlowCommand, UsageError, absolute
from flows._common import domain_flow, groups_to_visit, open_group, publish_status, sync_jobs_task
from flows._notify import notify_run_group
from tasks.execution import SyncReport, status_text


def _sync_one(group_dir: Path) -> SyncReport:
    logger = get_run_logger()
    group, backend = open_group(group_dir)
    report = sync_jobs_task.with_options(task_run_name=f"sync-{group.name}")(group, backend)
    publish_status(group, report)
    notify_run_group(group)
    group.status.flush()  # the YAML itself, not only its journal, is up to date
    logger.info(
        "%s: %d/%d stages finished (%s); %d changed; %d scheduler call(s)",
        group.name, report.done, report.total,
        ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())), report.changed, report.backend_calls,
    )
    for failed in report.newly_failed:
        logger.warning("Fine-tune %s (job %s) failed: %s", failed.run, failed.job_id, failed.reason)
    return report


@domain_flow("sync-status")
def sync_status(group_dir: str | None = None, output_dir: str | None = None) -> dict[str, int]:
    """Bring runs_status.yaml up to date with the scheduler and the files on disk.

    Args:
        group_dir: one run group folder (holds experiment.yaml and runs_status.yaml).
        output_dir: without group_dir, every run group under this folder that still has
            unfinished stages (default: $SWEEPFLOW_OUTPUT_DIR). This is what the scheduled
            deployment does.

    Returns:
        How many stages are in each state (over all groups synced).
    """
    groups = groups_to_visit("sync-status", group_dir, output_dir)
    totals: dict[str, int] = {}
    for group in groups:
        for state, count in _sync_one(group).counts.items():
            totals[state] = totals.get(state, 0) + count
    return totals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The status command's options."""
    parser.add_argument("group_dir", help="the run group folder (holds runs_status.yaml)")
    parser.add_argument("--no-sync", action="store_true",
                        help="only print what runs_status.yaml says now; ask the scheduler nothing")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """sync-status' parameters from the options."""
    if args.no_sync and args.on_server:
        raise UsageError("--no-sync only reads the file here; leave out --on-server")
    return {"group_dir": absolute(args.group_dir)}


def run_here(args: argparse.Namespace) -> int:
    """Sync the group in this process (unless --no-sync); the table is printed afterwards."""
    return 0 if args.no_sync else COMMAND.run_flow(args, show=lambda result: None)


def print_status(args: argparse.Namespace) -> None:
    """The group's progress and runs table, from runs_status.yaml."""
    print(status_text(absolute(args.group_dir)), end="")


COMMAND = FlowCommand(
    flow=sync_status,
    summary="Show a run group's progress and runs table: each run's fine-tune and evaluations, their state, "
    "attempts, time and job id, after bringing runs_status.yaml up to date with the scheduler.",
    add_arguments=add_arguments,
    parameters=parameters,
    run_here=run_here,
    after=print_status,
    details="It submits and retries nothing (`advance` and `launch` do).",
)


def main(argv: list[str] | None = None) -> int:
    """Sync and print a group's status (`python -m flows.sync_status GROUP_DIR`); exit 0 done, 1 failed, 2 bad input."""
    return COMMAND.main("python -m flows.sync_status", argv)


if __name__ == "__main__":
    sys.exit(main())
