"""sync-status: keep a run group's runs_status.yaml true (a scheduled deployment).

What it does
------------
1. Asks the scheduler about every tracked job in ONE call (`sacct` for all ids; `squeue` /
   `scontrol` when accounting is down; the local backend reads its job records).
2. Updates `runs_status.yaml` under its lock (status, job id, output, attempts, last
   updated); a finished stage never goes back. COMPLETED is checked against artifacts: the
   fine-tune's `epoch_N/` checkpoints, the evaluation's `.eval` log with status success.
3. Publishes a keyed progress artifact (`progress-<group>`: done / total) and a keyed runs
   table (`status-<group>`: run x stage x state x attempts x elapsed) in the Prefect UI.

It is safe to run while launch-runs runs (both write through the same lock).

How to run it
-------------
    prefect deployment run sync-status/sync-status --param group_dir=/abs/path/<run group>

`prefect.yaml` also declares it with an interval schedule and no group_dir: each run then
syncs every run group with unfinished stages under $SWEEPFLOW_OUTPUT_DIR (set at deploy). As Python:
`from flows.sync_status import sync_status; sync_status(group_dir)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from flows.plan_runs import artifact_slug
from tasks.core.errors import SweepflowError
from tasks.backends.base import Backend
from tasks.backends.select import select_backend
from tasks.execution.sync import SyncReport
from tasks.execution.sync import sync_status as run_sync
from tasks.model.cluster import ClusterSettings, cluster_settings
from tasks.model.layout import PLAN_FILE, STATUS_FILE
from tasks.model.plan_file import load_plan
from tasks.model.status import StatusStore

_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def group_backend(group_dir: str | Path) -> tuple[ClusterSettings, Backend]:
    """The cluster settings recorded in the plan, and the backend they select."""
    plan = load_plan(group_dir)
    cluster = cluster_settings(plan.design)
    return cluster, select_backend(cluster, Path(group_dir) / ".sweepflow" / "local-jobs")


@task(name="sync-jobs", **_TASK_OPTIONS)
def sync_jobs_task(group_dir: str, backend: Backend) -> SyncReport:
    return run_sync(group_dir, backend)


def publish_status(group_dir: str | Path, report: SyncReport) -> None:
    """Keyed progress + runs table artifacts (the same keys every sync: the UI shows the latest)."""
    slug = artifact_slug(Path(group_dir).name)
    create_progress_artifact(
        progress=round(report.progress, 1), key=f"progress-{slug}",
        description=f"{report.done} of {report.total} stages finished in {Path(group_dir).name}",
    )
    create_table_artifact(
        table=report.table(), key=f"status-{slug}",
        description=f"Runs of {Path(group_dir).name}: " + ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())),
    )


def open_groups(output_dir: str | Path) -> list[Path]:
    """Run groups under `output_dir` that still have unfinished stages."""
    groups = []
    for status_file in sorted(Path(output_dir).glob(f"*/{STATUS_FILE}")):
        group = status_file.parent
        if not (group / PLAN_FILE).exists():
            continue
        try:
            status = StatusStore(status_file).read()
        except SweepflowError:
            continue
        if any(not stage.is_terminal for _, _, stage in status.stages()):
            groups.append(group)
    return groups


def _sync_one(group_dir: str) -> SyncReport:
    logger = get_run_logger()
    _, backend = group_backend(group_dir)
    report = sync_jobs_task.with_options(task_run_name=f"sync-{Path(group_dir).name}")(group_dir, backend)
    publish_status(group_dir, report)
    logger.info(
        "%s: %d/%d stages finished (%s); %d changed; %d scheduler call(s)",
        Path(group_dir).name, report.done, report.total,
        ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())), report.changed, report.backend_calls,
    )
    for failed in report.newly_failed:
        logger.warning("Fine-tune %s (job %s) failed: %s", failed.run, failed.job_id, failed.reason)
    return report


@flow(name="sync-status", persist_result=False, log_prints=True)
def sync_status(group_dir: Optional[str] = None, output_dir: Optional[str] = None) -> dict[str, int]:
    """Bring runs_status.yaml up to date with the scheduler and the files on disk.

    Args:
        group_dir: one run group folder (holds experiment.yaml and runs_status.yaml).
        output_dir: without group_dir, every run group under this folder that still has
            unfinished stages (default: $SWEEPFLOW_OUTPUT_DIR). This is what the scheduled
            deployment does.

    Returns:
        How many stages are in each state (over all groups synced).
    """
    logger = get_run_logger()
    if group_dir:
        groups = [Path(group_dir)]
    else:
        root = output_dir or os.environ.get("SWEEPFLOW_OUTPUT_DIR")
        if not root:
            message = "sync-status needs group_dir, or output_dir (or $SWEEPFLOW_OUTPUT_DIR) to scan for run groups"
            logger.error(message)
            return Failed(message=message)
        groups = open_groups(root)
        logger.info("%d run group(s) with unfinished stages under %s", len(groups), root)
    totals: dict[str, int] = {}
    for group in groups:
        for state, count in _sync_one(str(group)).counts.items():
            totals[state] = totals.get(state, 0) + count
    return totals
