"""check-site's domain: one short job per resource shape of a plan, before the sweep spends GPU-hours.

For each distinct request the plan's jobs make (partition, constraint, GPUs, memory; the one
job environment), a job is submitted through the real backend. It runs the jobs' own
preflight (`tasks/core/preflight.py`: packages, versions, CUDA, GPU count) and then
`tasks/core/site_probe.py` (each planned model's config.json, torchtune and HF tokenizers,
checkpoint files; free space on output and scratch), and ends within minutes.

Reads: the plan (not yet delivered), the cluster settings, the check jobs' logs and records.
Writes, under `{output_dir}/.site_checks/` (`SiteCheckLayout`): one folder per check job, and
`passed.yaml`, the last pass of each shape fingerprint (site, environment, models), which
lets plan-runs skip a check that passed within `RECENT_DAYS`. Nothing in the run group.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock

from tasks.backends import Backend, JobInfo, JobSpec, SubmitError, script_kind
from tasks.core import preflight, site_probe
from tasks.core._files import atomic_write_text, dump_yaml, read_log_tail, read_yaml
from tasks.core._templating import render_template
from tasks.model._cluster import ClusterSettings
from tasks.model._job_naming import JobNaming
from tasks.model._layout import SITE_CHECK_STEM, SiteCheckLayout, job_log
from tasks.model._plan import Plan
from tasks.model._site_check import ShapeCheck, SiteCheckReport, SiteShape, Stage
from tasks.model._status import utc_now
from tasks.setup._files import SWEEPFLOW_HOME, environment_context, job_environment, job_requirements
from tasks.training._registry import lookup

RECENT_DAYS = 7
CHECK_TIME_LIMIT = "10"  # minutes: the check itself takes well under one
_FINISHED = ("completed", "failed", "cancelled")


def site_shapes(plan: Plan, cluster: ClusterSettings) -> list[SiteShape]:
    """The distinct requests of the plan's fine-tunes and evaluations (one shape when they agree)."""
    cuda = cluster.device == "cuda"
    finetune = SiteShape(
        stages=["finetune"], partition=cluster.partition, constraint=cluster.constraint,
        gpus=plan.design.gpu.count if cuda else 0, gpu_type=plan.design.gpu.type if cuda else None,
        mem=cluster.mem, cpus=cluster.cpus_per_task,
    )
    evaluation = SiteShape(
        stages=["eval"], partition=cluster.eval_partition or cluster.partition,
        constraint=cluster.eval_constraint or cluster.constraint, gpus=1 if cuda else 0,
        gpu_type=(cluster.eval_gpu_type or plan.design.gpu.type) if cuda else None,
        mem=cluster.eval_mem, cpus=cluster.cpus_per_task,
    )
    wanted: list[SiteShape] = []
    if plan.finetune_runs:
        wanted.append(finetune)
    if plan.eval_jobs:
        wanted.append(evaluation)
    shapes: dict[str, SiteShape] = {}
    for shape in wanted:
        key = shape.model_dump_json(exclude={"stages"})
        if key in shapes:
            merged: list[Stage] = [*shapes[key].stages, *shape.stages]
            shapes[key] = shape.model_copy(update={"stages": merged})
        else:
            shapes[key] = shape
    return list(shapes.values())


def _models_spec(plan: Plan) -> list[dict[str, Any]]:
    models = []
    for info in plan.resources.models:
        spec = lookup(info.name)
        if spec is not None:  # verification refused the plan otherwise
            models.append({
                "name": info.name, "dir": str(info.path), "hidden_size": spec.hidden_size,
                "tokenizer": spec.tokenizer, "tokenizer_files": spec.tokenizer_files,
                "checkpoint_files": spec.checkpoint_files,
            })
    return models


def _folders(plan: Plan) -> dict[str, str]:
    folders = {"output_dir": str(plan.group_dir.parent)}
    scratch = getattr(plan.design.paths, "scratch_dir", None)
    if scratch:
        folders["scratch"] = str(scratch)
    return folders


def _registered_tasks(plan: Plan, shape: SiteShape) -> list[str]:
    """The registered inspect tasks (`package/task`) an evaluation shape must resolve in the job's Python."""
    if "eval" not in shape.stages:
        return []
    return sorted({t.inspect_task for t in plan.design.evaluation.tasks if t.inspect_task is not None})


def _requirements(shape: SiteShape) -> list[str]:
    found: dict[str, None] = {}
    for stage in shape.stages:
        found.update(dict.fromkeys(job_requirements(stage)))
    return list(found)


def fingerprint(plan: Plan, cluster: ClusterSettings, shape: SiteShape, backend: str) -> str:
    """What a pass vouches for: the backend, the site options, the job environment, the shape, the models."""
    what = {
        "backend": backend, "shape": shape.model_dump(mode="json"),
        "site": cluster.model_dump(mode="json", include={"account", "qos", "env_setup", "extra_sbatch", "device"}),
        "job_env": job_environment(cluster).model_dump(mode="json"), "requirements": _requirements(shape),
        "models": _models_spec(plan),
    }
    if _registered_tasks(plan, shape):  # only then: earlier passes of plans without one keep their fingerprint
        what["inspect_tasks"] = _registered_tasks(plan, shape)
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _slug(shape: SiteShape) -> str:
    return "-".join(shape.stages)


def check_files(plan: Plan, cluster: ClusterSettings, shape: SiteShape, folder: Path) -> dict[str, str]:
    """The check job's script and the probe's spec, as {file name: text}."""
    spec = JobSpec(
        name=f"sweepflow-site-check-{_slug(shape)}", time_limit=CHECK_TIME_LIMIT, mem=shape.mem, cpus=shape.cpus,
        gpus=shape.gpus, gpu_type=shape.gpu_type, account=cluster.account, partition=shape.partition,
        constraint=shape.constraint, qos=cluster.qos, extra=list(cluster.extra_sbatch),
    )
    context = environment_context(plan, cluster, "site-check", shape.gpus, folder)
    context["requirements"] = _requirements(shape)
    kind = script_kind(cluster)
    script = render_template(
        "jobs/site_check.sh.j2", shape=shape, cluster=cluster, directives=kind.render_header(spec), folder=str(folder),
        probe=str(SWEEPFLOW_HOME / "tasks" / "core" / "site_probe.py"), **context,
    )
    probe_spec = {
        "models": _models_spec(plan), "inspect_tasks": _registered_tasks(plan, shape), "folders": _folders(plan),
    }
    spec_text = json.dumps(probe_spec, indent=2) + "\n"
    return {kind.naming.script(SITE_CHECK_STEM): script, "site_check_spec.json": spec_text}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _finding(shape: SiteShape, folder: Path, job: JobInfo, naming: JobNaming) -> ShapeCheck:
    """What the finished check job of `shape` reported."""
    env = _read_json(folder / f"job_env-{job.job_id}.json")
    probe = _read_json(folder / "site_probe.json")
    path = job_log(folder, job.job_id, naming)
    log = read_log_tail(path) if path.exists() else ""
    passed = job.status == "completed" and probe.get("models") is not None
    if passed:
        message = "preflight and probe passed"
    else:
        said = preflight.failure_line(log) or preflight.failure_line(log, site_probe.FAILED_MARK)
        last = next((line for line in reversed(log.splitlines()) if line.strip()), "")
        message = said or f"the job ended {job.raw_state} (exit {job.exit_code}){f': {last}' if last else ''}"
    return ShapeCheck(
        shape=shape, outcome="passed" if passed else "failed", message=message, job_id=job.job_id, folder=folder,
        host=env.get("host") or job.node, python=env.get("python"),
        packages={**({"torch": env["torch"]} if "torch" in env else {}), **(env.get("packages") or {})},
        gpus=env.get("gpus") or [], models=probe.get("models") or [], free_gib=probe.get("free_gib") or {},
        elapsed_s=job.elapsed_s,
    )


def _submit(backend: Backend, plan: Plan, cluster: ClusterSettings, shape: SiteShape, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in check_files(plan, cluster, shape, folder).items():
        atomic_write_text(folder / name, text)
    script = folder / script_kind(cluster).naming.script(SITE_CHECK_STEM)
    script.chmod(0o755)
    return backend.submit(script, folder)


def _wait(backend: Backend, job_ids: list[str], timeout_s: float, poll_s: float) -> dict[str, JobInfo]:
    deadline = time.monotonic() + timeout_s
    seen: dict[str, JobInfo] = {}
    while True:
        seen.update(backend.query(job_ids))
        if all(j in seen and seen[j].status in _FINISHED for j in job_ids) or time.monotonic() >= deadline:
            return seen
        time.sleep(poll_s)


def run_site_check(
    plan: Plan, cluster: ClusterSettings, backend: Backend, timeout_s: float = 900, poll_s: float = 5,
    log: Callable[[str], None] = lambda _: None,
) -> SiteCheckReport:
    """Submit one check job per shape, wait for them (cancelling any still unfinished at `timeout_s`), report."""
    layout = SiteCheckLayout(plan.group_dir.parent)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    checks: dict[str, ShapeCheck] = {}
    submitted: dict[str, tuple[SiteShape, Path]] = {}
    for shape in site_shapes(plan, cluster):
        folder = layout.job_dir(stamp, _slug(shape))
        try:
            job_id = _submit(backend, plan, cluster, shape, folder)
        except (SubmitError, OSError) as error:
            checks[shape.label] = ShapeCheck(shape=shape, outcome="not submitted", message=str(error), folder=folder)
            continue
        log(f"Site check job {job_id} submitted for {shape.label} ({folder})")
        submitted[job_id] = (shape, folder)
    seen = _wait(backend, list(submitted), timeout_s, poll_s) if submitted else {}
    for job_id, (shape, folder) in submitted.items():
        job = seen.get(job_id)
        if job is None or job.status not in _FINISHED:
            backend.cancel([job_id])
            state = f"{job.raw_state}{f' ({job.reason})' if job.reason else ''}" if job else "unknown to the scheduler"
            checks[shape.label] = ShapeCheck(
                shape=shape, outcome="timed out", job_id=job_id, folder=folder,
                message=f"not finished within {timeout_s / 60:.0f} min, last seen {state}; cancelled",
            )
        else:
            checks[shape.label] = _finding(shape, folder, job, script_kind(cluster).naming)
    shapes = [checks[s.label] for s in site_shapes(plan, cluster)]
    report = SiteCheckReport(checked_at=utc_now(), backend=backend.name, shapes=shapes)
    _record_passes(layout, plan, cluster, report)
    return report


# ---------------------------------------------------------------- recent passes


def _passes(layout: SiteCheckLayout) -> dict[str, Any]:
    data = read_yaml(layout.passed_file) if layout.passed_file.exists() else {}
    return data if isinstance(data, dict) else {}


def _record_passes(layout: SiteCheckLayout, plan: Plan, cluster: ClusterSettings, report: SiteCheckReport) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(layout.passed_file) + ".lock"):
        passes = _passes(layout)
        for check in report.shapes:
            key = fingerprint(plan, cluster, check.shape, report.backend)
            if check.outcome == "passed":
                passes[key] = {"checked_at": report.checked_at, "check": check.model_dump(mode="json")}
            else:
                passes.pop(key, None)  # a failure voids an earlier pass of the same shape
        atomic_write_text(layout.passed_file, dump_yaml(passes))


def recent_pass(
    plan: Plan, cluster: ClusterSettings, backend: str, max_age_days: float = RECENT_DAYS, now: datetime | None = None
) -> SiteCheckReport | None:
    """The earlier passes of every shape of this plan when all are younger than `max_age_days`, else None."""
    layout = SiteCheckLayout(plan.group_dir.parent)
    try:
        passes = _passes(layout)
    except Exception:  # an unreadable record only means: check again
        return None
    oldest_allowed = (now or datetime.now(UTC)) - timedelta(days=max_age_days)
    found: list[ShapeCheck] = []
    times: list[str] = []
    for shape in site_shapes(plan, cluster):
        entry = passes.get(fingerprint(plan, cluster, shape, backend))
        try:
            checked_at = datetime.fromisoformat(str(entry["checked_at"]))  # type: ignore[index]
            check = ShapeCheck.model_validate(entry["check"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError):  # no pass of this shape (or an unreadable one)
            return None
        if checked_at < oldest_allowed:
            return None
        found.append(check)
        times.append(checked_at.isoformat())
    oldest = min(times)
    return SiteCheckReport(checked_at=oldest, backend=backend, shapes=found, reused_from=oldest)
