"""Retries of failed fine-tunes: decide by cause, apply the remedy, resubmit, re-chain evaluations.

Reads: the run group's plan and `runs_status.yaml`, the scheduler (the duplicate guard).
Writes: `runs_status.yaml` (the remedy on the failed attempt, the new attempt with its job id,
in one write), the run's torchtune files (`retry_policy.apply_remedy`), provenance.
The decision itself is the pure table in `retry_policy.decide`. Applying a remedy rewrites the
run's `finetune.yaml` and `setup_finetune.yaml` (atomically, with `.sweepflow/manifest.yaml`
updated so setup-experiment does not take them for user edits; a user-edited file is backed up
first) and the run's `finetune.overrides` in runs_status.yaml, so a later setup-experiment
renders the same values.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from tasks.backends import Backend, JobInfo, SubmitError, job_naming
from tasks.core._errors import SweepflowError
from tasks.core._files import format_gib, read_yaml
from tasks.execution._provenance import record_provenance
from tasks.execution._retry_policy import DEFAULT_MAX_ATTEMPTS, Remedy, RetryContext, attempts_counted, decide
from tasks.execution._submit import (
    Sleep,
    adoptable,
    record_refusal,
    record_submission,
    script_args,
    stage_keys,
    submit_with_retry,
)
from tasks.model._cluster import ClusterSettings
from tasks.model._group import GroupRef, RunGroup
from tasks.model._job_naming import JobNaming
from tasks.model._layout import FINETUNE_CONFIG, SETUP_RECORD, GroupLayout, eval_job_name
from tasks.model._plan import CheckpointJob, Plan, Run
from tasks.model._status import FINETUNE, Attempt, FinetuneOverrides, RunsStatus, utc_now
from tasks.planning._time_limits import finetune_time_limit
from tasks.setup import FileChange, finetune_files, materialize
from tasks.training._overrides import resumable_epoch

# ---------------------------------------------------------------------------- the remedy, applied


def _cluster_for(group: RunGroup, run_name: str, cluster: ClusterSettings | None) -> ClusterSettings:
    """The given settings, or the design's, or (a block name) the device recorded in setup_finetune.yaml."""
    if cluster is not None:
        return cluster
    if not isinstance(group.plan.design.cluster, str):
        return group.cluster
    setup = read_yaml(group.layout.run_dir(run_name) / SETUP_RECORD)
    return ClusterSettings(device=setup.get("device", "cuda") if isinstance(setup, dict) else "cuda")


def retry_context(
    plan: Plan, status: RunsStatus, run_name: str, cluster: ClusterSettings
) -> RetryContext:
    """The settings the last attempt ran with (else the plan's with the run's overrides).

    Read from the attempt, not from the current overrides, so deciding again after a retry that
    was applied but not submitted (sbatch unreachable) gives the same remedy.
    """
    run = plan.run(run_name)
    stage = status.stage(run_name)
    overrides = stage.overrides or FinetuneOverrides()
    last = stage.attempts[-1] if stage.attempts else None
    if last is not None and last.batch_size is not None:
        overrides = FinetuneOverrides(
            batch_size=last.batch_size, gradient_accumulation_steps=last.gradient_accumulation_steps,
            resume_epoch=last.resume_epoch,
        )
    excluded: list[str] = []
    for attempt in stage.attempts:
        for node in (attempt.exclude or "").split(","):
            if node and node not in excluded:
                excluded.append(node)
    script_limit = finetune_time_limit(plan, run, cluster).limit  # the #SBATCH --time setup wrote
    return RetryContext(
        batch_size=overrides.batch_size or run.params.batch_size or 1,
        gradient_accumulation_steps=overrides.gradient_accumulation_steps or run.params.gradient_accumulation_steps,
        time_limit=(last.time_limit if last and last.time_limit else script_limit),
        default_time_limit=script_limit,
        max_time_limit=cluster.max_time_limit,
        node=last.node if last else None,
        excluded_nodes=excluded,
        resume_epoch=overrides.resume_epoch,
        resumable_epoch=resumable_epoch(GroupLayout(plan.group_dir).run_dir(run_name)),
        epochs=run.params.epochs,
    )


def plan_retry(
    group: GroupRef, run_name: str, cluster: ClusterSettings | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> Remedy:
    """`decide` for a failed fine-tune, from its last attempt's cause (set by sync-status)."""
    group = RunGroup.of(group)
    plan = group.plan
    status = group.status.read()
    stage = status.stage(run_name)
    if stage.status != "failed":
        return Remedy(kind="none", description=f"fine-tune is {stage.status}, not failed: nothing to retry")
    cause = stage.attempts[-1].cause if stage.attempts else None
    ctx = retry_context(plan, status, run_name, _cluster_for(group, run_name, cluster))
    return decide(cause, max(attempts_counted(stage), 1), max_attempts, ctx)


def remedy_overrides(plan: Plan, run_name: str, remedy: Remedy) -> FinetuneOverrides | None:
    """The overrides a remedy leaves the run with (None when it runs exactly as planned)."""
    params = plan.run(run_name).params
    overrides = FinetuneOverrides(
        batch_size=remedy.batch_size if remedy.batch_size not in (None, params.batch_size) else None,
        gradient_accumulation_steps=(
            remedy.gradient_accumulation_steps
            if remedy.gradient_accumulation_steps not in (None, params.gradient_accumulation_steps) else None
        ),
        resume_epoch=remedy.resume_epoch,
    )
    return overrides if overrides.model_dump() else None


def apply_remedy(
    group: GroupRef, run_name: str, remedy: Remedy, cluster: ClusterSettings | None = None
) -> list[FileChange]:
    """Re-render the run's finetune.yaml / setup_finetune.yaml for the remedy; record the overrides.

    Returns what happened to each file (`overwrite-edit` with a backup when a user had edited it).
    """
    if not remedy.retry:
        raise SweepflowError(f"{run_name}: remedy {remedy.kind!r} changes nothing ({remedy.description})")
    group = RunGroup.of(group)
    plan = group.plan
    run = plan.run(run_name)
    overrides = remedy_overrides(plan, run_name, remedy)
    rendered = finetune_files(plan, run, _cluster_for(group, run_name, cluster), overrides)
    wanted = {f"{run_name}/{FINETUNE_CONFIG}", f"{run_name}/{SETUP_RECORD}"}
    changes = materialize(group.root, {k: v for k, v in rendered.items() if k in wanted}, overwrite_edits=True)

    def record(status: RunsStatus) -> None:
        status.stage(run_name).overrides = overrides

    group.status.update(record)
    return changes


# ---------------------------------------------------------------------------- resubmission


class RetryOutcome(BaseModel):
    """One failed fine-tune's retry decision: the remedy, the new job (if any), and sbatch's error."""

    run: str
    remedy: Remedy
    job_id: str | None = None  # the new fine-tune job (None: not retried, or sbatch refused)
    error: str | None = None


def _rechained(run: Run, status: RunsStatus, remedy: Remedy) -> list[tuple[CheckpointJob, list[str] | None]]:
    """Evaluation jobs to submit again, each with `None` (chain to the new fine-tune) or [] (no dependency).

    A restart from scratch rewrites every checkpoint, so every evaluation is run again (but not
    one running now). A resume keeps the saved epochs: finished evaluations stay, and those of
    epochs already saved start at once. Each checkpoint's chosen tasks run in one job.
    """
    chosen: list[tuple[CheckpointJob, list[str] | None]] = []
    for job in run.checkpoint_jobs:
        tasks = []
        for evaluation in job.evaluations:
            stage = status.stage(run.name, evaluation.key)
            if stage.status == "running" or (remedy.resume_epoch is not None and stage.status == "completed"):
                continue
            tasks.append(evaluation.task)
        if tasks:
            saved = remedy.resume_epoch is not None and isinstance(job.epoch, int) and job.epoch <= remedy.resume_epoch
            chosen.append((job.only(tasks), [] if saved else None))
    return chosen


Live = Callable[[str, Path], JobInfo | None]  # the adoptable job of this name submitted from this folder


def _record_refused(group: RunGroup, run_name: str, remedy: Remedy, message: str) -> None:
    """Record on the failed attempt that sbatch refused its retry for good (the run stops there)."""

    def refused(current: RunsStatus) -> None:
        stage = current.stage(run_name)
        stage.reason = f"{stage.reason or 'failed'}; retry refused by sbatch: {message}"
        if stage.attempts:
            stage.attempts[-1].remedy = f"{remedy.description} (refused by sbatch)"

    group.status.update(refused)


def _record_restart(group: RunGroup, run_name: str, remedy: Remedy, job_id: str, adopted: bool, stamp: str) -> None:
    """The remedy on the failed attempt and the new attempt with its job id, in one status write."""
    attempt = Attempt(
        job_id=job_id, submitted=stamp, batch_size=remedy.batch_size,
        gradient_accumulation_steps=remedy.gradient_accumulation_steps, time_limit=remedy.time_limit,
        exclude=",".join(remedy.exclude_nodes) or None, resume_epoch=remedy.resume_epoch,
        reason="adopted: found in the scheduler by job name" if adopted else None,
    )

    def restart(current: RunsStatus) -> None:
        stage = current.stage(run_name)
        if stage.attempts:
            stage.attempts[-1].remedy = remedy.description
        stage.mark("submitted", now=stamp, job_id=job_id, reason=None, scheduler_state=None, exit_code=None,
                   output=None)
        stage.attempts.append(attempt)

    record_provenance(group, run_name, job_id, group.status.update(restart, force=True, now=stamp))


def _rechain(group: RunGroup, backend: Backend, run_name: str, job_id: str,
             chosen: list[tuple[CheckpointJob, list[str] | None]], live: Live, now: Callable[[], str],
             sleep: Sleep, naming: JobNaming) -> None:
    """Submit (or adopt) the chosen evaluation jobs again, chained to the new fine-tune job where they must wait."""
    for job, after in chosen:
        script, cwd = group.layout.job_files(run_name, job, naming)
        found = live(eval_job_name(job), cwd)
        try:
            eval_id = found.job_id if found else submit_with_retry(
                backend, script, cwd, [job_id] if after is None else [], None, sleep, args=script_args(job))
        except SubmitError as error:
            record_refusal(group.status, run_name, stage_keys(job),
                           f"sbatch refused the re-chained evaluation: {error}", now(), force=True)
            continue
        record_submission(group, run_name, stage_keys(job), Attempt(job_id=eval_id, submitted=now()), "submitted",
                          force=True, reason=None, scheduler_state=None, exit_code=None, output=None)


def resubmit_finetune(
    group: GroupRef,
    run_name: str,
    backend: Backend,
    cluster: ClusterSettings,
    remedy: Remedy,
    now: Callable[[], str] = utc_now,
    sleep: Sleep = time.sleep,
) -> str:
    """Apply the remedy, submit the fine-tune again and re-chain its evaluations to the new job.

    Waiting evaluation jobs of the failed attempt are cancelled first. The remedy is written on
    the failed attempt and a new attempt (batch size, accumulation, time limit, excluded nodes,
    resume epoch) is added in the same status write as the new job id. A job of the same name
    that the scheduler holds or runs and that no attempt knows (a crash after sbatch) is adopted.
    Raises `SubmitError` when sbatch refuses the fine-tune; a refusal for good is recorded (the
    run stops), a transient one is not (a later call decides and tries again, identically).
    """
    group = RunGroup.of(group)
    run = group.plan.run(run_name)
    status = group.status.read()
    entry = status.runs[run_name]
    if entry.finetune.status != "failed" or not remedy.retry:
        raise SweepflowError(
            f"{run_name}: fine-tune is {entry.finetune.status}; remedy {remedy.kind}: nothing to resubmit"
        )
    waiting = [s.job_id for s in entry.evaluations.values() if s.status == "submitted" and s.job_id]
    if waiting:
        backend.cancel(waiting)  # afterok on the failed job can never be satisfied
    apply_remedy(group, run_name, remedy, cluster)
    chosen = _rechained(run, status, remedy)
    known = {a.job_id for s in [entry.finetune, *entry.evaluations.values()] for a in s.attempts}
    named = backend.jobs_named([run_name] + [eval_job_name(j) for j, _ in chosen])

    def live(name: str, cwd: Path) -> JobInfo | None:
        return adoptable([j for j in named.get(name, []) if j.status in ("pending", "running")], cwd, known, naming)

    naming = job_naming(cluster)
    script, cwd = group.layout.job_files(run_name, None, naming)
    found = live(run_name, cwd)
    try:
        job_id = found.job_id if found else submit_with_retry(backend, script, cwd, None, remedy.overrides(), sleep)
    except SubmitError as error:
        if not error.transient:
            _record_refused(group, run_name, remedy, str(error))
        raise
    _record_restart(group, run_name, remedy, job_id, found is not None, now())
    _rechain(group, backend, run_name, job_id, chosen, live, now, sleep, naming)
    return job_id


MIN_FREE_GIB = 1.0  # what a disk-full retry waits for when the plan has no disk estimate for the run


def space_shortfall(group: RunGroup, run: str) -> str | None:
    """Why the run's folder has too little free space for a retry (real numbers); None when it has enough."""
    folder = group.layout.run_dir(run)
    estimate = group.plan.estimates.runs.get(run)
    needed = estimate.disk_gib if estimate else MIN_FREE_GIB
    free = shutil.disk_usage(folder).free / 2**30
    if free >= needed:
        return None
    return f"{folder} has {format_gib(free)} free, the run needs about {format_gib(needed)}"


def failed_awaiting_decision(status: RunsStatus) -> list[str]:
    """Failed fine-tunes whose last attempt has no remedy recorded yet (retry not decided)."""
    return [
        run for run, key, s in status.stages()
        if key == FINETUNE and s.status == "failed" and s.attempts and s.attempts[-1].remedy is None
    ]


def retry_run(
    group: GroupRef,
    run: str,
    backend: Backend,
    cluster: ClusterSettings,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: Callable[[], str] = utc_now,
    sleep: Sleep = time.sleep,
) -> RetryOutcome:
    """Decide by cause for one failed fine-tune and act: resubmit with the remedy, or record why not."""
    group = RunGroup.of(group)
    store = group.status
    remedy = plan_retry(group, run, cluster, max_attempts)
    if remedy.kind == "resubmit_after_space":
        short = space_shortfall(group, run)
        if short is not None:  # decided again at the next advance step: nothing recorded
            return RetryOutcome(run=run, remedy=remedy, error=f"waiting for disk space: {short}")
    if not remedy.retry:

        def no_retry(current: RunsStatus) -> None:
            stage = current.stage(run)
            stage.attempts[-1].remedy = "not retried: " + remedy.description
            if remedy.description not in (stage.reason or ""):
                stage.reason = f"{stage.reason}; {remedy.description}" if stage.reason else remedy.description

        store.update(no_retry)
        return RetryOutcome(run=run, remedy=remedy)
    try:
        job_id = resubmit_finetune(group, run, backend, cluster, remedy, now, sleep)
    except SubmitError as error:
        return RetryOutcome(run=run, remedy=remedy, error=str(error))
    return RetryOutcome(run=run, remedy=remedy, job_id=job_id)


def retry_failed(
    group: GroupRef,
    backend: Backend,
    cluster: ClusterSettings,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: Callable[[], str] = utc_now,
    sleep: Sleep = time.sleep,
) -> list[RetryOutcome]:
    """Decide and act for every failed fine-tune not yet decided; each decision is recorded once."""
    group = RunGroup.of(group)
    return [
        retry_run(group, run, backend, cluster, max_attempts, now, sleep)
        for run in failed_awaiting_decision(group.status.read())
    ]
