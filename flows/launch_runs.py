"""launch-runs: submit a run group's jobs, then (with `wait`) advance the group until every stage ends.

What it does
------------
1. **reopen** (on request): with `rerun_failed_evaluations`, failed or cancelled evaluations
   of an existing model go back to pending; with `rerun_failed_finetunes`, fine-tunes that
   failed for good or were cancelled (cancel-runs), with their unfinished evaluations.
2. **advance**, once per poll (`tasks.execution._advance`, the same step the scheduled
   advance-runs deployment takes, so the two never repeat each other's work):
   - sync: ONE scheduler query for every unfinished job;
   - retry failed fine-tunes by cause (OOM: half the batch, twice the gradient accumulation;
     TIMEOUT: resume from the last epoch with more time; NODE_FAIL / PREEMPTED / BOOT_FAIL:
     resubmit without that node; a code or data error or a user's cancel: no retry), each
     decision the task `retry-<run>-<cause>-attempt<N>`, re-chaining the run's evaluations;
   - end what can no longer run (evaluations of a fine-tune that failed for good: cancelled,
     with the reason);
   - submit what the queue cap allows: fine-tunes with their evaluations chained by
     `--dependency=afterok:<job> --kill-on-invalid-dep=yes`, base-model evaluations at once,
     each job id on disk before the next sbatch, jobs already known to SLURM by name adopted.
   Each fine-tune attempt that ends is the task `finetune-<run>-attempt<N>`; progress and the
   runs table are two artifacts, updated in place.
3. Without `wait`, it returns after the first step: with the advance-runs deployment
   scheduled (prefect.yaml), the sweep still finishes, retries included.

How to run it
-------------
    prefect deployment run launch-runs/launch-runs --param group_dir=/abs/path/<run group> --watch

As Python: `from flows.launch_runs import launch_runs; launch_runs(group_dir)`; from a shell:
`python -m flows.launch_runs GROUP_DIR [--no-wait]` or `sweepflow launch GROUP_DIR`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flows._cli import ADVANCE_HINT, FlowCommand, absolute
from flows._launch import launch_runs
from tasks.execution import DEFAULT_MAX_ATTEMPTS

__all__ = ["COMMAND", "launch_runs", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """launch-runs' options."""
    parser.add_argument("group_dir", help="the run group folder, set up by setup")
    parser.add_argument("--no-wait", action="store_true",
                        help=f"submit what can go now and return; {ADVANCE_HINT} (retries included)")
    parser.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS,
                        help="submissions per fine-tune, the first included (default: %(default)s)")
    parser.add_argument("--poll-seconds", type=float, default=10.0,
                        help="time between status checks while waiting (default: %(default)s)")
    parser.add_argument("--max-wait-hours", type=float, default=72.0,
                        help="stop waiting after this long; the jobs keep running (default: %(default)s)")
    parser.add_argument("--rerun-failed-evaluations", action="store_true",
                        help="submit again the failed or cancelled evaluations whose model exists")
    parser.add_argument("--rerun-failed-finetunes", action="store_true",
                        help="submit again the fine-tunes that failed for good or were cancelled, with their "
                        "evaluations (after you fixed the cause)")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """launch-runs' parameters from the options."""
    return {"group_dir": absolute(args.group_dir), "wait": not args.no_wait, "max_attempts": args.max_attempts,
            "poll_seconds": args.poll_seconds, "max_wait_hours": args.max_wait_hours,
            "rerun_failed_evaluations": args.rerun_failed_evaluations,
            "rerun_failed_finetunes": args.rerun_failed_finetunes}


COMMAND = FlowCommand(
    flow=launch_runs,
    summary="Submit a set-up run group's jobs (fine-tunes with their evaluations chained, under the queue cap, "
    "never twice) and follow them to the end, retrying failed fine-tunes by cause (OOM, time limit, node failure).",
    add_arguments=add_arguments,
    parameters=parameters,
    details="Prints how many stages ended in each state (exit 0), or why it failed (exit 1).",
)


def main(argv: list[str] | None = None) -> int:
    """Launch from a shell (`python -m flows.launch_runs GROUP_DIR`); exit 0 done, 1 failed, 2 bad input."""
    return COMMAND.main("python -m flows.launch_runs", argv)


if __name__ == "__main__":
    sys.exit(main())
