"""advance-runs: the scheduled flow that keeps every sweep moving with no launcher alive.

What it does
------------
Every run (prefect.yaml schedules it every 2 minutes), for each run group under output_dir
with unfinished stages (or the one group_dir given), ONE advance step, the same as
launch-runs takes each poll (`tasks.execution._advance`):
1. sync runs_status.yaml with the scheduler (one query);
2. retry failed fine-tunes by cause within max_attempts (each decision the task
   `retry-<run>-<cause>-attempt<N>`), re-chaining their evaluations;
3. cancel, with the reason, evaluations that can no longer run;
4. submit what the queue cap now allows.
Each fine-tune attempt that ended is the task `finetune-<run>-attempt<N>`; the group's progress
and runs table artifacts are published. A group that a launcher (or another advance-runs run)
is advancing at that moment is skipped: the holder of the group's lock does the same work.
Each group is advanced in isolation: any error in one (a damaged or missing runs_status.yaml,
an unwritable file, a bad journal line, ...) is logged naming the group and the file, sent
through the group's notification block, and ends this run Failed, after every other group
was advanced.

So `launch-runs --param wait=false` may return after the first submission, the laptop may
close, and the sweep still finishes.

How to run it
-------------
    prefect deployment run advance-runs/advance-runs                   # every group, now
    prefect deployment run advance-runs/advance-runs --param group_dir=/abs/path/<run group>

As Python: `from flows.advance_runs import advance_runs; advance_runs(output_dir="demo/experiments")`;
from a shell: `sweepflow advance [GROUP_DIR] [--output-dir DIR]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.states import Failed, State

from flows._advance import GroupArtifacts, advance_group
from flows._cli import FlowCommand, absolute
from flows._common import domain_flow, open_group, scan_to_visit
from flows._notify import notify_group_error
from tasks.core import domain_error
from tasks.execution import DEFAULT_MAX_ATTEMPTS


@domain_flow("advance-runs")
def advance_runs(
    group_dir: str | None = None, output_dir: str | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> dict[str, int] | State:
    """One advance step for each run group with unfinished work.

    Args:
        group_dir: one run group folder; without it, every group under output_dir.
        output_dir: where run groups are (default: $SWEEPFLOW_OUTPUT_DIR).
        max_attempts: submissions per fine-tune, the first included (as launch-runs').

    Returns:
        How many stages are in each state, over all groups advanced.
    """
    logger = get_run_logger()
    scan = scan_to_visit("advance-runs", group_dir, output_dir)
    failures = dict(scan.broken)
    totals: dict[str, int] = {}
    for folder in scan.unfinished:
        try:
            group, backend = open_group(folder)
            report = advance_group(group, backend, max_attempts, GroupArtifacts(group))
            if report.skipped:
                continue
            group.status.flush()
        except Exception as error:  # any error of one group is reported; the others still advance
            failures[str(folder)] = str(domain_error(error) or f"{type(error).__name__}: {error}")
            continue
        logger.info("%s: %d/%d stages finished (%s)", group.name, report.status.done, report.status.total,
                    ", ".join(f"{n} {s}" for s, n in sorted(report.status.counts.items())))
        for state, count in report.status.counts.items():
            totals[state] = totals.get(state, 0) + count
    for broken, message in failures.items():
        logger.error("%s (%s): %s", Path(broken).name, broken, message)
        notify_group_error(broken, message)
    if failures:
        names = ", ".join(Path(f).name for f in failures)
        return Failed(message=f"{len(failures)} run group(s) could not be advanced ({names}); the others were")
    return totals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """advance-runs' options."""
    parser.add_argument("group_dir", nargs="?", help="one run group folder (default: every group under --output-dir)")
    parser.add_argument("--output-dir", help="where run groups are (default: $SWEEPFLOW_OUTPUT_DIR)")
    parser.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS,
                        help="submissions per fine-tune, the first included (default: %(default)s)")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """advance-runs' parameters from the options."""
    return {"group_dir": absolute(args.group_dir) if args.group_dir else None,
            "output_dir": absolute(args.output_dir) if args.output_dir else None, "max_attempts": args.max_attempts}


COMMAND = FlowCommand(
    flow=advance_runs,
    summary="Move every unfinished sweep one step now: check the jobs' states, retry failed fine-tunes by cause, "
    "submit what the queue cap allows. The advance-runs deployment does this every 2 minutes on its own.",
    add_arguments=add_arguments,
    parameters=parameters,
    details="Prints how many stages are in each state, over the groups advanced (exit 0); "
    "a group that could not be advanced: exit 1.",
)


def main(argv: list[str] | None = None) -> int:
    """Advance from a shell (`python -m flows.advance_runs [GROUP_DIR]`); exit 0 done, 1 a group failed."""
    return COMMAND.main("python -m flows.advance_runs", argv)


if __name__ == "__main__":
    sys.exit(main())
