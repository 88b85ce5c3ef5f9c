"""Submit a run group's jobs: fine-tunes, their evaluations chained to them, control evaluations.

Reads: `{group}/experiment.yaml` (the plan), `{group}/runs_status.yaml`, the scheduler (through
a `Backend`: at most one `jobs_named` call per pass for the duplicate guard, for the names of
the stages that fit under the queue cap).
Writes: `runs_status.yaml`, through one `StatusStore.batch` per pass: each job id is journaled
(fsynced) right after the scheduler returned it, before the next sbatch, without rewriting the
file; retries also rewrite the run's torchtune config
(`tasks.execution._retry_policy.apply_remedy`, through `tasks.execution._retries`).

Evaluations are submitted as one job per evaluated checkpoint (all its tasks, one model load;
`Plan.checkpoint_jobs`); each task keeps its own stage in runs_status.yaml, and the stages of
one job share its job id. The job script is given the names of the tasks it runs, so a
checkpoint whose tasks only partly need a job (one reopened after it failed) gets a job for
those tasks alone.
Each evaluation job of a fine-tuned run depends on its own fine-tune only (`afterok` +
kill-on-invalid-dep: it starts when that checkpoint exists, never after a failed fine-tune);
control-run (base model) evaluations have no dependency. At most `max_queued_jobs` of the
group's jobs wait or run at once: what does not fit is reported as deferred and the flow calls
again later. `submit_stagger_seconds` separates submissions of jobs that can start at once
(fine-tunes, control evaluations); dependent evaluations start when their fine-tune ends, so
they are not staggered. Re-running after a crash never submits a duplicate: stages the status
file shows as submitted are skipped, and a job the scheduler knows by the stage's job name is
adopted instead of submitted again, when it was submitted from the stage's own folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from pathlib import Path

from pydantic import BaseModel, Field

from tasks.backends import Backend, JobInfo, JobOverrides, SubmitError, job_naming
from tasks.core._errors import SweepflowError
from tasks.execution._provenance import record_provenance
from tasks.model._cluster import ClusterSettings
from tasks.model._group import GroupRef, RunGroup
from tasks.model._job_naming import JobNaming
from tasks.model._layout import eval_job_name, job_log
from tasks.model._plan import CheckpointJob, Plan, Run
from tasks.model._status import FINETUNE, Attempt, FinetuneOverrides, RunsStatus, StageStatus, utc_now
from tasks.model._status_file import StatusBatch, StatusStore
from tasks.training._overrides import apply_overrides, overrides_from_status

Sleep = Callable[[float], None]
QUEUED = ("submitted", "running")
SUBMIT_TRIES = 4  # transient sbatch errors: 4 tries, 2 s, 4 s, 8 s apart
BACKOFF_S = 2.0


Unit = CheckpointJob | None  # what one job runs: a fine-tune (None) or a checkpoint's evaluation tasks


class SubmittedJob(BaseModel):
    """One submitted job: run, stage, job id, the jobs it waits for, and whether it was adopted."""

    run: str
    stage: str  # "finetune" or an evaluation key (a checkpoint's job: one entry per task, one job id)
    job_id: str
    after_ok: list[str] = Field(default_factory=list)
    adopted: bool = False  # found in the scheduler by name, not submitted again


class StageProblem(BaseModel):
    """A stage that sbatch refused for good, and the reason recorded for it."""

    run: str
    stage: str
    reason: str


class LaunchReport(BaseModel):
    """What one submit_pending call did: jobs submitted, adopted, deferred, failed, withdrawn; queue counts."""

    submitted: list[SubmittedJob] = Field(default_factory=list)
    adopted: list[SubmittedJob] = Field(default_factory=list)
    already_submitted: int = 0
    deferred: list[str] = Field(default_factory=list)  # "run/stage" waiting for queue space (or sbatch)
    failed: list[StageProblem] = Field(default_factory=list)  # sbatch refused them for good
    withdrawn: list[SubmittedJob] = Field(default_factory=list)  # cancelled (cancel-runs) while being submitted
    transient_errors: int = 0
    queued: int = 0  # the group's jobs waiting or running after this call
    max_queued_jobs: int = 0

    @property
    def complete(self) -> bool:
        """Nothing left to submit (the flow stops calling)."""
        return not self.deferred


def needs_submit(stage: StageStatus) -> bool:
    """Whether the stage still needs a job: pending, or marked submitted without a job id."""
    return stage.status == "pending" or (stage.status == "submitted" and not stage.job_id)


def _id_key(job_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in job_id.replace("_", ".").split(".") if p.isdigit())


def _submitted_from(job: JobInfo, cwd: Path, naming: JobNaming) -> bool:
    """Whether `job` is this stage's.

    Run names repeat across run groups, so a job submitted from another folder never is. A job
    that ended must also have left its log in `cwd`: the folder may have been deleted and made
    again (a new clone, a re-planned group) since an old job with the same name ran there. A job
    still waiting or running is this folder's.
    """
    if job.work_dir and os.path.realpath(job.work_dir) != os.path.realpath(cwd):
        return False
    if job.status == "pending" or (job.status == "running" and job.work_dir):
        return True
    return job_log(cwd, job.job_id, naming).exists()


def adoptable(found: list[JobInfo], cwd: Path, known: Collection[str], naming: JobNaming) -> JobInfo | None:
    """The newest job of this name that is ours (see `_submitted_from`) and no attempt knows.

    `naming`: the backend's job file names (an ended job of ours left its log in `cwd`).
    """
    mine = [j for j in found if j.job_id not in known and _submitted_from(j, cwd, naming)]
    live = [j for j in mine if j.status in ("pending", "running")]
    pool = live or mine
    return max(pool, key=lambda j: _id_key(j.job_id)) if pool else None


def stage_keys(job: Unit) -> list[str]:
    """The status keys a job's id is recorded under: `finetune`, or each task's evaluation key."""
    return [FINETUNE] if job is None else [e.key for e in job.evaluations]


def script_args(job: Unit) -> list[str]:
    """The job script's arguments: the names of the tasks an evaluation job runs (none for a fine-tune).

    Named always, not only for a retry: a job runs exactly the stages it was submitted for even
    when setup renders its checkpoint's tasks file again (a task added by an extension) meanwhile.
    """
    return [] if job is None else list(job.tasks)


def pending_jobs(run: Run, status: RunsStatus) -> list[CheckpointJob]:
    """The run's checkpoint jobs for the tasks that still need a job (a checkpoint with none: left out)."""
    jobs = []
    for job in run.checkpoint_jobs:
        todo = [e.task for e in job.evaluations if needs_submit(status.stage(run.name, e.key))]
        if todo:
            jobs.append(job.only(todo))
    return jobs


def submit_with_retry(
    backend: Backend, script: Path, cwd: Path, after_ok: list[str] | None, overrides: JobOverrides | None,
    sleep: Sleep, report: LaunchReport | None = None, args: list[str] | None = None,
) -> str:
    """`backend.submit`, retrying transient errors with exponential backoff; the last error is raised."""
    for attempt in range(SUBMIT_TRIES):
        try:
            return backend.submit(script, cwd, after_ok=after_ok or None, overrides=overrides,
                                  script_args=args or None)
        except SubmitError as error:
            if not error.transient or attempt == SUBMIT_TRIES - 1:
                raise
            if report is not None:
                report.transient_errors += 1
            sleep(BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")


def record_submission(group: RunGroup, run: str, key: str | list[str], info: Attempt, status: str,
                      force: bool = False, **fields: object) -> bool:
    """One status write: the stage's (or a checkpoint job's stages') new job id and state, and the new attempt.

    False, and nothing written, when the stages finished meanwhile (cancel-runs while sbatch ran).
    """
    keys = [key] if isinstance(key, str) else key
    accepted = True

    def change(current: RunsStatus) -> None:
        nonlocal accepted
        stages = [current.stage(run, k) for k in keys]
        accepted = force or any(not stage.is_terminal for stage in stages)
        for stage in stages if accepted else []:
            if force or not stage.is_terminal:
                stage.mark(status, now=info.submitted, job_id=info.job_id, **fields)  # type: ignore[arg-type]
                stage.attempts.append(info.model_copy())

    written = group.status.update(change, force=force, now=info.submitted)
    if accepted:
        record_provenance(group, run, info.job_id, written)
    return accepted


def record_refusal(store: StatusStore, run: str, key: str | list[str], reason: str, now: str,
                   force: bool = False) -> None:
    """One status write: the stage (or a checkpoint job's stages) failed, with sbatch's refusal as the reason."""
    keys = [key] if isinstance(key, str) else key

    def refuse(current: RunsStatus) -> None:
        for k in keys:
            current.stage(run, k).mark("failed", now=now, reason=reason)

    store.update(refuse, force=force, now=now)


class _Names:
    """The duplicate guard's answers: `jobs_named` asked once, for the next names that can be submitted.

    A name not asked yet (more stages fitted than foreseen) is asked then, with the ones after it:
    no stage is ever submitted without its name having been looked up.
    """

    def __init__(self, backend: Backend, order: list[str], first: int):
        self.backend, self.order, self.first = backend, order, first
        self.answers: dict[str, list[JobInfo]] = {}
        self.asked: set[str] = set()

    def get(self, name: str) -> list[JobInfo]:
        if name not in self.asked:
            start = self.order.index(name) if name in self.order else len(self.order)
            wanted = [name, *[n for n in self.order[start:start + max(self.first, 1)] if n not in self.asked]]
            self.answers.update(self.backend.jobs_named(list(dict.fromkeys(wanted))))
            self.asked.update(wanted)
        return self.answers.get(name, [])


class _Launcher:
    """One submit_pending call: queue accounting, stagger, duplicate guard, per-job status writes."""

    def __init__(self, group: RunGroup, backend: Backend, cluster: ClusterSettings, batch: StatusBatch,
                 now: Callable[[], str], sleep: Sleep, named: _Names, queued: int):
        self.group, self.layout, self.batch, self.backend, self.cluster = (
            group, group.layout, batch, backend, cluster
        )
        self.now, self.sleep, self.named = now, sleep, named
        self.naming = job_naming(cluster)
        self.report = LaunchReport(queued=queued, max_queued_jobs=cluster.max_queued_jobs)
        self.started = False  # a job that can start at once was submitted in this call
        self.ended: set[str] = set()  # adopted jobs that already failed or were cancelled
        self.overrides: dict[str, FinetuneOverrides] = {}
        self.known: set[str] = set()  # job ids some attempt already records: never adopted again

    def free(self) -> int:
        return self.cluster.max_queued_jobs - self.report.queued

    def one(self, run: Run, job: Unit, after_ok: list[str]) -> str | None:
        """Adopt or submit one job (a fine-tune, or a checkpoint's tasks); its job id, or None (deferred or failed)."""
        keys = stage_keys(job)
        name = run.name if job is None else eval_job_name(job)
        script, cwd = self.layout.job_files(run.name, job, self.naming)
        if self.free() < 1:  # before the duplicate guard: only names that can be submitted are looked up
            self.report.deferred += [f"{run.name}/{key}" for key in keys]
            return None
        found = adoptable(self.named.get(name), cwd, self.known, self.naming)
        if found is not None:
            state = "running" if found.status == "running" else "submitted"
            # the job's own submit time (not now): its artifacts are checked against it
            if not self._record(run.name, keys, Attempt(
                job_id=found.job_id, submitted=found.submitted or found.started,
                reason="adopted: found in the scheduler by job name",
            ), state):
                self._withdraw(run, keys[0], found.job_id)
                return None
            self.report.adopted += [SubmittedJob(run=run.name, stage=k, job_id=found.job_id, adopted=True)
                                    for k in keys]
            self.report.queued += found.status in ("pending", "running")
            if found.status in ("failed", "cancelled"):
                self.ended.add(found.job_id)  # sync-status records the failure; a retry re-chains
            return found.job_id
        if not after_ok and self.started and self.cluster.submit_stagger_seconds:
            self.sleep(self.cluster.submit_stagger_seconds)
        try:
            job_id = submit_with_retry(self.backend, script, cwd, after_ok, None, self.sleep, self.report,
                                       script_args(job))
        except SubmitError as error:
            if error.transient:
                self.report.deferred += [f"{run.name}/{key}" for key in keys]
            else:
                reason = f"sbatch refused the job: {error}"
                stamp = self.now()
                for key in keys:
                    self.batch.change(run.name, key, lambda s: s.mark("failed", now=stamp, reason=reason))
                    self.report.failed.append(StageProblem(run=run.name, stage=key, reason=reason))
            return None
        self.started = self.started or not after_ok
        params = apply_overrides(run, self.overrides.get(run.name)).params if job is None else None
        if not self._record(run.name, keys, Attempt(
            job_id=job_id, submitted=self.now(),
            batch_size=params.batch_size if params else None,
            gradient_accumulation_steps=params.gradient_accumulation_steps if params else None,
        ), "submitted"):
            self._withdraw(run, keys[0], job_id)
            return None
        self.report.submitted += [SubmittedJob(run=run.name, stage=k, job_id=job_id, after_ok=after_ok) for k in keys]
        self.report.queued += 1
        return job_id

    def _record(self, run: str, keys: list[str], info: Attempt, status: str) -> bool:
        """Journal the stages' new job id and attempt; False when all finished meanwhile (cancel-runs)."""
        stamp = self.now()

        def change(stage: StageStatus) -> None:
            if not stage.is_terminal:
                stage.mark(status, now=stamp, job_id=info.job_id)  # type: ignore[arg-type]
                stage.attempts.append(info.model_copy())

        open_keys = [key for key in keys if not self.batch.status.stage(run, key).is_terminal]
        for key in open_keys:
            self.batch.change(run, key, change)
        if open_keys:
            record_provenance(self.group, run, info.job_id, self.batch.status)
        return bool(open_keys)

    def _withdraw(self, run: Run, key: str, job_id: str) -> None:
        """The stage was cancelled (cancel-runs) while its job was being submitted: cancel the job too."""
        self.backend.cancel([job_id])  # an id that already ended is no error
        self.report.withdrawn.append(SubmittedJob(run=run.name, stage=key, job_id=job_id))


def _queued(status: RunsStatus) -> int:
    """The group's jobs waiting or running (a checkpoint's tasks share one job: counted once)."""
    return len({s.job_id for _, _, s in status.stages() if s.status in QUEUED and s.job_id})


def _todo(plan: Plan, status: RunsStatus, store: StatusStore) -> list[tuple[Run, Unit]]:
    """The jobs still needed, in submission order (each fine-tune before its checkpoints' evaluation jobs)."""
    todo: list[tuple[Run, Unit]] = []
    for run in plan.finetune_runs + plan.control_runs:
        if run.name not in status.runs:
            raise SweepflowError(f"{store.path}: run {run.name} is missing; run setup-experiment first")
        if not run.is_control and needs_submit(status.stage(run.name)):
            todo.append((run, None))
        todo += [(run, job) for job in pending_jobs(run, status)]
    return todo


def _keys(run: Run, job: Unit) -> list[str]:
    return [f"{run.name}/{key}" for key in stage_keys(job)]


def _submit_todo(launcher: _Launcher, todo: list[tuple[Run, Unit]], status: RunsStatus) -> None:
    """Each fine-tune with its evaluation jobs chained to it (the run waits as a whole for room), then the rest."""
    evals: dict[str, list[CheckpointJob]] = {}
    for run, job in todo:
        if job is not None:
            evals.setdefault(run.name, []).append(job)
    chain: dict[str, str | None] = {}  # fine-tunes handled in this call: job id to chain to, or None
    for run, job in todo:
        if job is None:
            waiting = evals.get(run.name, [])
            if launcher.free() < 1 + len(waiting) and launcher.report.queued > 0:
                launcher.report.deferred += _keys(run, None) + [k for j in waiting for k in _keys(run, j)]
                chain[run.name] = None
                continue
            job_id = launcher.one(run, None, [])
            if job_id is None and _keys(run, None)[0] in launcher.report.deferred:
                launcher.report.deferred += [k for j in waiting for k in _keys(run, j)]
            chain[run.name] = None if job_id in launcher.ended else job_id
            continue
        if run.is_control:
            launcher.one(run, job, [])
        elif run.name in chain:
            if chain[run.name] is not None:
                launcher.one(run, job, [chain[run.name]])  # type: ignore[list-item]
        else:  # fine-tune submitted earlier: chain to it while it waits or runs; finished: no dependency
            ft = status.stage(run.name)
            if ft.status in QUEUED and ft.job_id:
                launcher.one(run, job, [ft.job_id])
            elif ft.status == "completed":
                launcher.one(run, job, [])


def submit_pending(
    group: GroupRef,
    backend: Backend,
    cluster: ClusterSettings | None = None,
    now: Callable[[], str] = utc_now,
    sleep: Sleep = time.sleep,
) -> LaunchReport:
    """Submit every pending fine-tune with its chained evaluations, then control evaluations.

    With the queue already at its cap, nothing is locked or asked of the scheduler.
    """
    group = RunGroup.of(group)
    plan, store = group.plan, group.status
    cluster = cluster or group.cluster
    status = store.read()
    todo = _todo(plan, status, store)
    queued = _queued(status)
    if not todo or queued >= cluster.max_queued_jobs:
        return LaunchReport(
            queued=queued, max_queued_jobs=cluster.max_queued_jobs, deferred=[k for r, j in todo for k in _keys(r, j)],
            already_submitted=sum(1 for _, _, s in status.stages() if s.job_id and not needs_submit(s)),
        )
    with store.batch() as batch:
        status = batch.status  # again, under the lock
        todo = _todo(plan, status, store)
        queued = _queued(status)
        names = _Names(backend, [r.name if j is None else eval_job_name(j) for r, j in todo],
                       cluster.max_queued_jobs - queued)
        launcher = _Launcher(group, backend, cluster, batch, now, sleep, names, queued)
        launcher.overrides = overrides_from_status(status)
        launcher.known = {a.job_id for _, _, s in status.stages() for a in s.attempts if a.job_id}
        launcher.report.already_submitted = sum(1 for _, _, s in status.stages() if s.job_id and not needs_submit(s))
        _submit_todo(launcher, todo, status)
    return launcher.report
