"""What every flow shares: task options, the one error-returning task wrapper, artifacts, run groups.

Flows are thin: each step is a Prefect task around a plain function of `tasks/`. A domain
error (`SweepflowError`: a bad design, a missing file, a refused job) is returned by the task
rather than raised, so the flow logs it as one readable message and ends Failed with it;
Prefect would otherwise log it again with a traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State
from pydantic import ValidationError

from blocks.resolve import resolve_site
from tasks.backends import Backend, backend_for, backend_name, select_backend
from tasks.core import SweepflowError, domain_error
from tasks.execution import GroupScan, SyncReport, scan_groups, sync_jobs
from tasks.model import DesignInput, Plan, RunGroup, SiteCheckLayout, SiteCheckReport, cluster_settings, read_design
from tasks.planning import build_plan
from tasks.setup import recent_pass, run_site_check

T = TypeVar("T")

# Steps pass large in-memory objects (a Plan of 1,000 runs, a backend): nothing is cached or
# persisted, so no input hashing and no result files.
TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def domain_task(name: str, fn: Callable[..., T]) -> Any:
    """A Prefect task named `name` that runs `fn` and returns, not raises, the SweepflowError it meets.

    An OSError (full disk, permission, missing file) or a pydantic ValidationError becomes a
    SweepflowError naming the file and what to do (`tasks.core.domain_error`).
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> T | SweepflowError:
        try:
            return fn(*args, **kwargs)
        except SweepflowError as error:
            return error
        except (OSError, ValidationError) as error:  # a full disk, a permission, a bad record: said plainly
            return domain_error(error) or SweepflowError(str(error))

    return task(name=name, **TASK_OPTIONS)(run)


def fail(message: str, error: BaseException | None = None) -> State:
    """Log `message` as the flow's one error line and return the Failed state that ends the flow."""
    get_run_logger().error(message)
    return Failed(message=message, data=error) if error is not None else Failed(message=message)


def artifact_slug(run_group: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", run_group.lower()).strip("-") or "plan"


def open_group(group_dir: str | Path) -> tuple[RunGroup, Backend]:
    """The run group (plan read once) and the job backend its cluster settings select."""
    group = RunGroup(Path(group_dir))
    return group, backend_for(group)


sync_jobs_task = task(name="sync-jobs", **TASK_OPTIONS)(sync_jobs)
check_site_task = domain_task("check-site", run_site_check)
load_design_task = domain_task("load-design", read_design)
resolve_site_task = domain_task("resolve-site", resolve_site)
build_plan_task = domain_task("build-plan", build_plan)


def plan_design(design: DesignInput, date: str | None = None) -> Plan | State:
    """load-design, resolve-site, build-plan: the plan in memory, or the Failed state naming the problem."""
    loaded = load_design_task(design)
    if isinstance(loaded, SweepflowError):
        return fail(str(loaded), loaded)
    resolved = resolve_site_task(loaded)
    if isinstance(resolved, SweepflowError):
        return fail(str(resolved), resolved)
    plan = build_plan_task(resolved, date=date)
    if isinstance(plan, SweepflowError):
        return fail(str(plan), plan)
    return plan


def site_check_step(plan: Plan, wanted: bool | None, timeout_s: float = 900) -> SiteCheckReport | SweepflowError | None:
    """Run (or reuse) the site check of `plan`: None when it is skipped.

    `wanted` None: check on the SLURM backend unless the same shapes passed within the last
    days (that pass is reused and says so); True: always check anew; False: skip.
    """
    logger = get_run_logger()
    cluster = cluster_settings(plan.design)
    if wanted is False:
        return None
    if wanted is None:
        name = backend_name(cluster)
        if name != "slurm":
            logger.info("Site check skipped on the %s backend (pass check_site=true to run it)", name)
            return None
        earlier = recent_pass(plan, cluster, name)
        if earlier is not None:
            logger.info("Site check: the same site, job environment and models passed at %s; not repeated "
                        "(check_site=true repeats it)", earlier.checked_at)
            return earlier
    backend = select_backend(cluster, SiteCheckLayout(plan.group_dir.parent).local_jobs)
    report = check_site_task(plan, cluster, backend, timeout_s=timeout_s, log=logger.info)
    if isinstance(report, SiteCheckReport):
        for line in report.failures():
            logger.error("Site check: %s", line)
        if report.passed:
            logger.info("Site check passed: %d job shape(s) on the %s backend", len(report.shapes), backend.name)
    return report


def scan_to_visit(flow_name: str, group_dir: str | None, output_dir: str | None) -> GroupScan | State:
    """[group_dir], or every run group under output_dir ($SWEEPFLOW_OUTPUT_DIR): unfinished ones, broken ones."""
    if group_dir:
        return GroupScan(unfinished=[Path(group_dir)])
    root = output_dir or os.environ.get("SWEEPFLOW_OUTPUT_DIR")
    if not root:
        return fail(f"{flow_name} needs group_dir, or output_dir (or $SWEEPFLOW_OUTPUT_DIR) to scan for run groups")
    scan = scan_groups(root)
    get_run_logger().info("%d run group(s) with unfinished stages under %s%s", len(scan.unfinished), root,
                          f", {len(scan.broken)} that cannot be read" if scan.broken else "")
    return scan


def groups_to_visit(flow_name: str, group_dir: str | None, output_dir: str | None) -> list[Path] | State:
    """[group_dir], or every run group with unfinished stages under output_dir; unreadable ones logged as errors."""
    scan = scan_to_visit(flow_name, group_dir, output_dir)
    if isinstance(scan, State):
        return scan
    for folder, error in scan.broken.items():
        get_run_logger().error("%s: %s", Path(folder).name, error)
    return scan.unfinished


def publish_status(group: RunGroup, report: SyncReport) -> None:
    """Keyed progress + runs table artifacts (the same keys every sync: the UI shows the latest)."""
    slug = artifact_slug(group.name)
    create_progress_artifact(
        progress=round(report.progress, 1), key=f"progress-{slug}",
        description=f"{report.done} of {report.total} stages finished in {group.name}",
    )
    create_table_artifact(
        table=report.table(), key=f"status-{slug}",
        description=f"Runs of {group.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())),
    )


class _DomainErrorsOnce(logging.Filter):
    """Keep a domain error to one log message.

    When a deployed flow run fails, Prefect's runner logs the flow's exception again with a
    traceback ("Engine execution exited with unexpected exception"). For a SweepflowError
    the flow has already logged the whole message, so that repeat is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, SweepflowError)


_FILTER = _DomainErrorsOnce()
logging.getLogger("prefect.flow_runs").addFilter(_FILTER)
