"""What every flow shares: task options, the flow decorator that ends a flow on a domain error, artifacts, run groups.

Flows are thin: each step is a Prefect task around a plain function of `tasks/`, and a step
raises what goes wrong. `domain_flow` is the one place a domain error (`SweepflowError`: a bad
design, a missing file, a refused job; or an OSError / pydantic ValidationError, said plainly by
`tasks.core.domain_error`) becomes the flow's end: logged once as the researcher-readable
message, the flow run Failed with it. Prefect's own log lines for that error (the task's
"Task run failed with exception" and a deployment runner's repeat) carry a traceback that says
nothing more, so the flows' `DomainErrorFilter` drops them; any other exception (a bug) keeps
its traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Flow, flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from blocks.resolve import resolve_site
from tasks.backends import Backend, backend_for, backend_kind, select_backend
from tasks.core import SweepflowError, domain_error
from tasks.execution import GroupScan, SyncReport, scan_groups, sync_jobs
from tasks.model import DesignInput, Plan, RunGroup, SiteCheckLayout, SiteCheckReport, cluster_settings, read_design
from tasks.planning import build_plan, deliver_plan
from tasks.setup import recent_pass, run_site_check

P = ParamSpec("P")
R = TypeVar("R")

# Steps pass large in-memory objects (a Plan of 1,000 runs, a backend): nothing is cached or
# persisted, so no input hashing and no result files.
TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


class FlowFailed(SweepflowError):
    """The flow cannot go on, though its input was fine (a stage or a check failed): exit 1, not 2."""


class DomainErrorFilter(logging.Filter):
    """Drop Prefect's log records of a domain error: the flow logs its message once, without a traceback.

    Prefect logs a task's exception ("Task run failed with exception ...") and, in a deployment's
    runner, the flow's exception again, each with a traceback. For a domain error that traceback
    says nothing the message does not; an unexpected exception (a bug) keeps its record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or domain_error(error) is None


DOMAIN_ERROR_FILTER = DomainErrorFilter()
PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


def fail(message: str, error: BaseException | None = None) -> State:
    """Log `message` as the flow's one error line and return the Failed state that ends the flow."""
    get_run_logger().error(message)
    return Failed(message=message, data=error) if error is not None else Failed(message=message)


def domain_flow(name: str, **options: Any) -> Callable[[Callable[P, R]], Flow[P, R | State]]:
    """`prefect.flow(name=...)` for a sweepflow flow: a domain error raised in it ends the run Failed with its message.

    The message is logged once (`fail`); the Failed state carries the error, so a plain call
    raises it and the command line exits 2 (bad input), or 1 for a `FlowFailed`. Any other
    exception propagates as Prefect handles it (traceback logged, run Failed).
    """

    def decorate(fn: Callable[P, R]) -> Flow[P, R | State]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R | State:
            for logger in PREFECT_RUN_LOGGERS:
                logging.getLogger(logger).addFilter(DOMAIN_ERROR_FILTER)  # once: a filter is added only once
            try:
                return fn(*args, **kwargs)
            except Exception as raised:
                error = domain_error(raised)
                if error is None:
                    raise
                return fail(str(error), None if isinstance(error, FlowFailed) else error)

        return flow(name=name, persist_result=False, log_prints=True, **options)(run)

    return decorate


@contextmanager
def reworded(template: str) -> Iterator[None]:
    """A domain error raised inside is raised again with its message put into `template` at "{}"."""
    try:
        yield
    except Exception as raised:
        error = domain_error(raised)
        if error is None:
            raise
        raise SweepflowError(template.format(error)) from raised


def subflow_result(state: State, said: str) -> Any:
    """A subflow's result (run with `return_state=True`); raises FlowFailed "`said` ended <state>: <why>" else."""
    if not state.is_completed():
        raise FlowFailed(f"{said} ended {state.name}: {state.message}")
    return state.result()


def artifact_slug(run_group: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", run_group.lower()).strip("-") or "plan"


def open_group(group_dir: str | Path) -> tuple[RunGroup, Backend]:
    """The run group (plan read once) and the job backend its cluster settings select."""
    group = RunGroup(Path(group_dir))
    return group, backend_for(group)


sync_jobs_task = task(name="sync-jobs", **TASK_OPTIONS)(sync_jobs)
check_site_task = task(name="check-site", **TASK_OPTIONS)(run_site_check)
load_design_task = task(name="load-design", **TASK_OPTIONS)(read_design)
resolve_site_task = task(name="resolve-site", **TASK_OPTIONS)(resolve_site)
build_plan_task = task(name="build-plan", **TASK_OPTIONS)(build_plan)


def deliver_now(plan: Plan) -> Path:
    """Write `plan`'s run group (experiment.yaml, runs_plan.md, runs_status.yaml), stamped with the time now."""
    return deliver_plan(plan, now=datetime.now(UTC).isoformat(timespec="seconds"))


def plan_design(design: DesignInput, date: str | None = None) -> Plan:
    """load-design, resolve-site, build-plan: the plan in memory (each step raises what is wrong)."""
    return build_plan_task(resolve_site_task(load_design_task(design)), date=date)


def site_check_step(plan: Plan, wanted: bool | None, timeout_s: float = 900) -> SiteCheckReport | None:
    """Run (or reuse) the site check of `plan`: None when it is skipped.

    `wanted` None: check on a backend whose jobs run on other machines (`BackendKind.remote`)
    unless the same shapes passed within the last days (that pass is reused and says so); True:
    always check anew; False: skip.
    """
    logger = get_run_logger()
    cluster = cluster_settings(plan.design)
    if wanted is False:
        return None
    if wanted is None:
        kind = backend_kind(cluster)
        if not kind.remote:
            logger.info("Site check skipped on the %s backend, whose jobs run here (pass check_site=true to run it)",
                        kind.name)
            return None
        earlier = recent_pass(plan, cluster, kind.name)
        if earlier is not None:
            logger.info("Site check: the same site, job environment and models passed at %s; not repeated "
                        "(check_site=true repeats it)", earlier.checked_at)
            return earlier
    backend = select_backend(cluster, SiteCheckLayout(plan.group_dir.parent).local_jobs)
    report = check_site_task(plan, cluster, backend, timeout_s=timeout_s, log=logger.info)
    for line in report.failures():
        logger.error("Site check: %s", line)
    if report.passed:
        logger.info("Site check passed: %d job shape(s) on the %s backend", len(report.shapes), backend.name)
    return report


def scan_to_visit(flow_name: str, group_dir: str | None, output_dir: str | None) -> GroupScan:
    """[group_dir], or every run group under output_dir ($SWEEPFLOW_OUTPUT_DIR): unfinished ones, broken ones."""
    if group_dir:
        return GroupScan(unfinished=[Path(group_dir)])
    root = output_dir or os.environ.get("SWEEPFLOW_OUTPUT_DIR")
    if not root:
        raise FlowFailed(f"{flow_name} needs group_dir, or output_dir (or $SWEEPFLOW_OUTPUT_DIR) "
                         "to scan for run groups")
    scan = scan_groups(root)
    get_run_logger().info("%d run group(s) with unfinished stages under %s%s", len(scan.unfinished), root,
                          f", {len(scan.broken)} that cannot be read" if scan.broken else "")
    return scan


def groups_to_visit(flow_name: str, group_dir: str | None, output_dir: str | None) -> list[Path]:
    """[group_dir], or every run group with unfinished stages under output_dir; unreadable ones logged as errors."""
    scan = scan_to_visit(flow_name, group_dir, output_dir)
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
