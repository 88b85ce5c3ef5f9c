"""The launch-runs flow itself (reopen on request, then advance steps until every stage ends).

A helper module so that the flows that run it as a subflow (pilot-runs, rerun-runs) import a
shared helper, not another flow. What it does and how to run it: flows/launch_runs.py.
"""

from __future__ import annotations

import time

from prefect import get_run_logger

from flows._advance import GroupArtifacts, advance_group
from flows._common import domain_flow, open_group
from tasks.execution import (
    DEFAULT_MAX_ATTEMPTS,
    AdvanceReport,
    reopen_failed_evaluations,
    reopen_failed_finetunes,
    tally,
)


def _can_move(report: AdvanceReport) -> bool:
    """Whether a later step may still change something (a job waits or runs, or a stage waits for room)."""
    launch = report.launch
    return report.skipped or report.in_flight > 0 or (launch is not None and not launch.complete)


@domain_flow("launch-runs")
def launch_runs(
    group_dir: str,
    wait: bool = True,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    poll_seconds: float = 10.0,
    max_wait_hours: float = 72.0,
    rerun_failed_evaluations: bool = False,
    rerun_failed_finetunes: bool = False,
) -> dict[str, int]:
    """Submit pending jobs of a set-up run group; with `wait`, advance it until every stage ends.

    Args:
        group_dir: the run group folder (set up by setup-experiment).
        wait: keep advancing until done; false: one step (submit), then return (the scheduled
            advance-runs deployment carries the sweep on).
        max_attempts: submissions per fine-tune, the first included.
        poll_seconds: time from one step's start to the next (one scheduler query each).
        max_wait_hours: stop waiting after this long (jobs keep running; advance-runs goes on).
        rerun_failed_evaluations: submit again the failed or cancelled evaluations whose model
            exists (a completed fine-tune, or a base model); earlier attempts stay on record.
        rerun_failed_finetunes: submit again, with their unfinished evaluations, the fine-tunes
            that failed for good (a code or data error you have fixed since, or out of
            attempts) or were cancelled; each gets a fresh `max_attempts`. Fine-tunes whose
            failure has a remedy (OOM, TIMEOUT, node failure) are retried with it first.

    Returns:
        How many stages are in each state at the end.
    """
    logger = get_run_logger()
    group, backend = open_group(group_dir)
    logger.info("Backend: %s", backend.name)
    if rerun_failed_finetunes:
        logger.info("Fine-tunes to run again: %s", ", ".join(reopen_failed_finetunes(group)) or "none")
    if rerun_failed_evaluations:
        logger.info("Evaluations to run again: %s", ", ".join(reopen_failed_evaluations(group)) or "none")
    artifacts = GroupArtifacts(group)
    deadline = time.monotonic() + max_wait_hours * 3600
    while True:
        started = time.monotonic()
        report = advance_group(group, backend, max_attempts, artifacts, lock_wait_s=min(poll_seconds, 30.0))
        if not wait or not _can_move(report):
            break
        if time.monotonic() > deadline:
            logger.warning("Stopped waiting after %.1f h; advance-runs carries the group on", max_wait_hours)
            break
        time.sleep(max(0.0, poll_seconds - (time.monotonic() - started)))
    group.status.flush()
    status = group.status.read()
    for run, key, stage in status.stages():
        if key == "finetune" and stage.status in ("failed", "cancelled"):
            logger.error("%s: fine-tune %s: %s", run, stage.status, stage.reason or stage.scheduler_state)
    counts = tally(status).counts
    logger.info("Done: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return dict(counts)
