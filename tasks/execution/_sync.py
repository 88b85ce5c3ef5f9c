"""Bring runs_status.yaml up to date with the scheduler: one batched query per sync.

Reads: `{group}/runs_status.yaml`, the scheduler (ONE `backend.query` of every job id whose
stage is not finished; a job submitted in the last minute that accounting does not list yet
stays as it was, without a second query), and, for jobs the scheduler says ended, the evidence on disk: the
fine-tune's `epoch_N/` checkpoints, each evaluation task's own inspect `.eval` log (header only)
in `evaluations/<task>/logs/`, the tail of a failed job's log (its backend names it). The tasks of one
evaluated checkpoint share one job (and its id): each task's stage is decided by its own log, so
a job that failed because one task failed completes the others. The plan
(`experiment.yaml`) is read only when some job finished or was lost.
Writes: `runs_status.yaml` in ONE locked update (a stage whose job id changed meanwhile, e.g.
resubmitted by launch-runs, is left alone; finished stages never go back: `StatusStore`).

State mapping (sweepflow keeps the seed's vocabulary; the backend's raw state goes to `scheduler_state`;
the states below are SLURM's, as its backend and the local one report them):
  PENDING (and the like)                     -> submitted
  RUNNING (and the like)                     -> running
  COMPLETED + artifacts present              -> completed
  COMPLETED, artifacts missing or .eval bad  -> failed, reason "COMPLETED but ..."
    (a fine-tune's epoch_N/ older than its submission: an earlier attempt's, e.g. before rerun-runs)
  FAILED (evaluation job), the task's .eval   -> completed (another task of the job failed)
    log successful
  FAILED (evaluation job), the task's .eval   -> failed, "task failed: .eval status error" (a log still
    log error or cancelled                         `started`: the job died during it, the job's cause)
  FAILED, OUT_OF_MEMORY, TIMEOUT, NODE_FAIL.. -> failed, reason from the cause (the backend's `classify_failure`)
  CANCELLED by <uid>                         -> cancelled, reason "cancelled by a user"
  CANCELLED by kill-on-invalid-dep           -> cancelled, reason "fine-tune failed"
  unknown to the scheduler                   -> unchanged, reason "lost: scheduler has no record"
                                                (completed when the artifacts prove it)
  no job, its fine-tune ended for good       -> cancelled, reason "not run: its fine-tune failed (...)"
      (cancelled, or failed with its retry decided against: the evaluation could never run;
      a fine-tune whose retry is not decided yet keeps its evaluations pending)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tasks.backends import Backend, JobInfo, failure_classifier, job_naming
from tasks.core._files import read_log_tail
from tasks.core.preflight import failure_line
from tasks.evaluation._eval_logs import EVAL_CLOCK_SLACK_S, EvalLogEntry, read_log_headers
from tasks.execution._provenance import refresh_job_environment
from tasks.model._group import GroupRef, RunGroup
from tasks.model._job_naming import JobNaming
from tasks.model._layout import epoch_dir_name
from tasks.model._plan import EvalJob
from tasks.model._status import FINETUNE, Attempt, RunsStatus, StageStatus, utc_now

LOST = "lost: scheduler has no record"
UNFINISHED = "started"  # inspect's status of a log whose process died during the task
ADOPTED = "adopted:"  # an attempt's note when its job was found in the scheduler, kept when it ends
ACCOUNTING_LAG_S = 60.0  # a job submitted this recently may be missing from sacct without being lost


class StageRow(BaseModel):
    """One line of the runs table artifact (run x stage x state x attempts x elapsed)."""

    run: str
    stage: str
    state: str
    attempts: int
    elapsed_s: float | None = None  # all attempts together
    job_id: str | None = None
    reason: str | None = None


class FailedFinetune(BaseModel):
    """A fine-tune this sync found failed: run, job id, failure cause and reason (the flow decides retries)."""

    run: str
    job_id: str
    cause: str | None
    reason: str


class SyncReport(BaseModel):
    """What one sync found and changed: progress counts, table rows, new failures, lost jobs, timings."""

    total: int = 0  # stages to do (skipped base-model fine-tunes not counted)
    done: int = 0  # completed, failed or cancelled
    counts: dict[str, int] = Field(default_factory=dict)
    rows: list[StageRow] = Field(default_factory=list)
    newly_failed: list[FailedFinetune] = Field(default_factory=list)  # fine-tunes: the flow decides retries
    finetunes_ended: list[tuple[str, str]] = Field(default_factory=list)  # (run, job id) that ended in this sync
    changed: int = 0
    lost: list[str] = Field(default_factory=list)
    not_run: list[str] = Field(default_factory=list)  # `run/stage`s cancelled: their fine-tune ended for good
    queried: int = 0
    backend_calls: int = 0  # status queries made by this sync (1, or 0 when nothing was queued)
    persist_s: float = 0.0

    @property
    def progress(self) -> float:
        """Percent of the stages to do that are done (100 when there are none)."""
        return 100.0 * self.done / self.total if self.total else 100.0

    def table(self) -> list[dict[str, Any]]:
        """Rows for Prefect's create_table_artifact."""
        return [
            {"run": r.run, "stage": r.stage, "state": r.state, "attempts": r.attempts,
             "elapsed": elapsed_clock(r.elapsed_s), "job": r.job_id or "", "reason": r.reason or ""}
            for r in self.rows
        ]


def elapsed_clock(seconds: float | None) -> str:
    """H:MM:SS of `seconds` (empty when unknown)."""
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


# ---------------------------------------------------------------------------- artifacts


def has_checkpoint(folder: Path) -> bool:
    """Torchtune wrote a model here: merged `*.safetensors` or an `adapter_model.*`."""
    return folder.is_dir() and (any(folder.glob("*.safetensors")) or any(folder.glob("adapter_model.*")))


def missing_checkpoints(run_dir: Path, epochs: int) -> list[int]:
    """The epochs among 0..epochs-1 with no checkpoint in `run_dir`."""
    return [n for n in range(epochs) if not has_checkpoint(run_dir / epoch_dir_name(n))]


def _newest_write(folder: Path) -> float:
    """When the checkpoint in `folder` was last written (0 when it has none)."""
    files = [*folder.glob("*.safetensors"), *folder.glob("adapter_model.*")] if folder.is_dir() else []
    return max((f.stat().st_mtime for f in files), default=0.0)


def stale_checkpoints(run_dir: Path, epochs: int, since: float, resumed_after: int | None) -> list[int]:
    """The epochs this attempt had to write whose checkpoint is older than `since` (an earlier attempt's).

    A resumed attempt writes only the epochs after `resumed_after`; the earlier ones are kept.
    """
    first = 0 if resumed_after is None else resumed_after + 1
    return [n for n in range(first, epochs) if _newest_write(run_dir / epoch_dir_name(n)) < since - EVAL_CLOCK_SLACK_S]


def _timestamp(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


class _EvalLogs:
    """Headers of the .eval logs in each evaluation folder, read once per sync."""

    def __init__(self) -> None:
        self.headers: dict[Path, list[EvalLogEntry]] = {}

    def find(self, logs: Path, job: EvalJob, since: float | None) -> tuple[Path, str] | None:
        """(path, status) of the newest log of this run and epoch written after `since`."""
        if logs not in self.headers:
            self.headers[logs] = read_log_headers(logs)
        mine = [
            (entry.mtime, entry.path, entry.status) for entry in self.headers[logs]
            if entry.is_for(job.run, job.epoch) and (since is None or entry.mtime >= since - EVAL_CLOCK_SLACK_S)
        ]
        if not mine:
            return None
        _, path, status = max(mine)
        return path, status


class _Verifier:
    """Checks finished jobs against their artifacts (the group's plan is read on first need)."""

    def __init__(self, group: RunGroup):
        self.group = group
        self.layout = group.layout
        self.logs = _EvalLogs()

    @cached_property
    def naming(self) -> JobNaming:
        """The group's backend's file names (read with the plan, on first need)."""
        return job_naming(self.group.cluster)

    def _task(self, run: str, key: str) -> str | None:
        return None if key == FINETUNE else self._eval(run, key).task

    def log_path(self, run: str, key: str, job_id: str) -> Path:
        return self.layout.job_log(run, self._task(run, key), job_id, self.naming)

    def _eval(self, run: str, key: str) -> EvalJob:
        return next(j for j in self.group.plan.run(run).evaluations if j.key == key)

    def _verify_finetune(self, run: str, stage: StageStatus, since: float | None) -> tuple[bool, str | None, None]:
        """Every epoch's checkpoint exists; those this attempt trains were written by it (not by an earlier one)."""
        run_dir, epochs = self.layout.run_dir(run), self.group.plan.run(run).params.epochs
        missing = missing_checkpoints(run_dir, epochs)
        if missing:
            return False, "COMPLETED but no " + ", ".join(epoch_dir_name(n) for n in missing) + " checkpoint", None
        resumed = [e for e in ((stage.attempts[-1].resume_epoch if stage.attempts else None),
                               (stage.overrides.resume_epoch if stage.overrides else None)) if e is not None]
        stale = stale_checkpoints(run_dir, epochs, since, max(resumed, default=None)) if since is not None else []
        if stale:
            return False, ("COMPLETED but " + ", ".join(epoch_dir_name(n) for n in stale)
                           + " not written by this job (older than its submission)"), None
        return True, None, None

    def verify(self, run: str, key: str, stage: StageStatus,
               info: JobInfo | None = None) -> tuple[bool, str | None, str | None]:
        """(complete, reason when not, output path); a log counts from the job's own submit time."""
        own = info.submitted if info is not None and info.job_id == stage.job_id else None
        since = _timestamp(own or (stage.attempts[-1].submitted if stage.attempts else None))
        if key == FINETUNE:
            return self._verify_finetune(run, stage, since)
        job = self._eval(run, key)
        found = self.logs.find(self.layout.eval_logs_dir(run, job.task), job, since)
        if found is None:
            return False, "COMPLETED but no .eval log", None
        path, status = found
        if status != "success":
            return False, f"COMPLETED but .eval status {status}", str(path)
        return True, None, str(path)


# ---------------------------------------------------------------------------- mapping


def _describe(cause: str | None, info: JobInfo, key: str, log: Path) -> tuple[str, str]:
    """(stage status, reason) of a job that failed or was cancelled."""
    where = f" on {info.node}" if info.node else ""
    if cause == "dependency":
        return "cancelled", "fine-tune failed" if key != FINETUNE else "dependency never satisfied"
    if cause == "cancelled":
        return "cancelled", f"cancelled by a user ({info.raw_state})"
    text = {
        "oom": f"out of memory ({info.raw_state}{where})",
        "timeout": f"time limit reached ({info.raw_state})",
        "node": f"node failure ({info.raw_state}{where})",
        "disk": f"disk full: no space left on the device{where} ({info.raw_state}); see {log}",
        "launch": f"job could not start ({info.reason or info.raw_state}, exit {info.exit_code})",
        "environment": f"job environment: {failure_line(read_log_tail(log)) or 'preflight failed'}; see {log}",
    }.get(cause or "", f"job failed ({info.raw_state}, exit {info.exit_code}); see {log}")
    return "failed", text


def _decide(run: str, key: str, stage: StageStatus, info: JobInfo | None, check: _Verifier,
            classify: Callable[[JobInfo, str], str | None]) -> dict[str, Any]:
    """The stage's new fields (status, reason, output, scheduler_state, exit_code, cause, ...)."""
    job_id = stage.job_id or ""
    if info is None:
        done, _, output = check.verify(run, key, stage)
        if done:
            return {"status": "completed", "reason": f"{LOST}; artifacts complete", "output": output}
        return {"status": stage.status, "reason": LOST}
    log = check.log_path(run, key, job_id) if info.status != "pending" else None
    fields: dict[str, Any] = {"scheduler_state": info.raw_state, "exit_code": info.exit_code, "info": info}
    if info.status == "pending":
        return {**fields, "status": "submitted", "reason": None}
    fields["output"] = str(log)
    if info.status == "running":
        return {**fields, "status": "running", "reason": None}
    if info.status == "completed":
        done, why, output = check.verify(run, key, stage, info)
        return {**fields, "status": "completed" if done else "failed", "reason": why,
                "output": output or str(log), "cause": None if done else "error"}
    assert log is not None  # the job started: it has a log path
    if key != FINETUNE and info.status == "failed":  # a checkpoint's job: this task's own log decides
        done, why, output = check.verify(run, key, stage, info)
        if done:
            return {**fields, "status": "completed", "reason": None, "output": output, "cause": None}
        unfinished = (why or "").endswith(f"status {UNFINISHED}")  # killed with its job mid-task: the job's cause
        if output is not None and not unfinished:  # the task ran and its log says it failed (the job went on)
            what = (why or "").removeprefix("COMPLETED but ")
            return {**fields, "status": "failed", "reason": f"task failed: {what}; see {log}", "output": output,
                    "cause": "error"}
    cause = classify(info, read_log_tail(log) if info.status == "failed" else "")
    status, reason = _describe(cause, info, key, log)
    return {**fields, "status": status, "reason": reason, "cause": cause}


def _apply(stage: StageStatus, change: dict[str, Any], now: str) -> None:
    """Set the stage's fields and its current attempt's (no timestamp: the caller stamps changes)."""
    info: JobInfo | None = change.pop("info", None)
    cause = change.pop("cause", None)
    for name, value in change.items():
        setattr(stage, name, value)
    if info is None and not stage.is_terminal:
        return
    if not stage.attempts or stage.attempts[-1].job_id != stage.job_id:
        stage.attempts.append(Attempt(job_id=stage.job_id or ""))
    attempt: Attempt = stage.attempts[-1]
    if info is not None:
        attempt.scheduler_state, attempt.exit_code = info.raw_state, info.exit_code
        attempt.node = info.node or attempt.node
        attempt.elapsed_s = info.elapsed_s if info.elapsed_s is not None else attempt.elapsed_s
    if stage.is_terminal:
        attempt.finished = attempt.finished or now
        attempt.cause = cause
        adopted = attempt.reason if attempt.reason and attempt.reason.startswith(ADOPTED) else None
        attempt.reason = f"{adopted}; {stage.reason}" if adopted and stage.reason else adopted or stage.reason


def finetune_ended_for_good(stage: StageStatus) -> bool:
    """A fine-tune that will not produce a checkpoint unless the researcher reruns it.

    Cancelled, or failed with its retry decided against (the last attempt records why it was not
    retried) or with no attempt at all (sbatch refused it). A failure still awaiting its retry
    decision is not final: its evaluations are re-chained to the retry.
    """
    if stage.status == "cancelled":
        return True
    return stage.status == "failed" and (not stage.attempts or stage.attempts[-1].remedy is not None)


def cancel_unrunnable(status: RunsStatus, now: str) -> list[str]:
    """Cancel, with the reason, every evaluation that has no job and whose fine-tune ended for good.

    Their job would wait forever on a checkpoint that will not exist; a queued one the scheduler
    cancels itself (`--kill-on-invalid-dep`) and a sync records. Returns the `run/stage`s cancelled.
    """
    cancelled = []
    for run, entry in status.runs.items():
        finetune = entry.finetune
        if not finetune_ended_for_good(finetune):
            continue
        why = f"not run: its fine-tune {finetune.status}" + (f" ({finetune.reason})" if finetune.reason else "")
        for key, stage in entry.evaluations.items():
            if not stage.is_terminal and not stage.job_id:
                stage.mark("cancelled", now=now, reason=why)
                cancelled.append(f"{run}/{key}")
    return cancelled


def _recent(stages: list[tuple[str, str, StageStatus]], now: float) -> set[str]:
    """Ids of jobs submitted under `ACCOUNTING_LAG_S` ago that no sync saw yet (the scheduler may not list them)."""
    recent = set()
    for _, _, stage in stages:
        if stage.status != "submitted" or stage.scheduler_state is not None:
            continue
        submitted = _timestamp(stage.attempts[-1].submitted) if stage.attempts else None
        if stage.job_id and submitted is not None and now - submitted < ACCOUNTING_LAG_S:
            recent.add(stage.job_id)
    return recent


def _rows(status: RunsStatus) -> list[StageRow]:
    rows = []
    for run, key, stage in status.stages():
        spent = [a.elapsed_s for a in stage.attempts if a.elapsed_s is not None]
        rows.append(StageRow(run=run, stage=key, state=stage.status, attempts=len(stage.attempts),
                             elapsed_s=sum(spent) if spent else None, job_id=stage.job_id, reason=stage.reason))
    return rows


def sync_jobs(
    group: GroupRef,
    backend: Backend,
    now: Callable[[], str] = utc_now,
    classify: Callable[[JobInfo, str], str | None] | None = None,
) -> SyncReport:
    """Query every unfinished job at once, verify finished ones, write the status once.

    `classify`: why a job failed (default: the group's backend's `classify_failure`).
    """
    group = RunGroup.of(group)
    store = group.status
    status = store.read()
    open_stages = [(run, key, s) for run, key, s in status.stages() if s.job_id and not s.is_terminal]
    ids = list(dict.fromkeys(s.job_id for _, _, s in open_stages if s.job_id))
    recent = _recent(open_stages, time.time())
    calls_before = backend.calls
    infos = backend.query(ids, recent=recent) if ids else {}
    check = _Verifier(group)
    classify = classify or (lambda info, tail: failure_classifier(group.cluster)(info, tail))
    changes = {
        (run, key): (s.job_id, _decide(run, key, s, infos.get(s.job_id or ""), check, classify))
        for run, key, s in open_stages
        if s.job_id in infos or s.job_id not in recent  # just submitted, not accounted yet: as it was
    }
    stuck = [i.job_id for i in infos.values() if i.held]
    if stuck:
        backend.cancel(stuck)  # waiting forever on a failed dependency (no kill-on-invalid-dep)
    report = SyncReport(queried=len(ids), backend_calls=backend.calls - calls_before)
    stamp = now()

    def update(current: RunsStatus) -> None:
        for (run, key), (job_id, change) in changes.items():
            entry = current.runs.get(run)
            stage = None if entry is None else (entry.finetune if key == FINETUNE else entry.evaluations.get(key))
            if stage is None or stage.job_id != job_id or stage.is_terminal:
                continue  # resubmitted, removed or finished meanwhile
            before = stage.model_dump()
            was = stage.status
            _apply(stage, dict(change), stamp)
            if stage.model_dump() != before:
                stage.last_updated = stamp
                report.changed += 1
            if change.get("reason", "") and str(change.get("reason")).startswith(LOST):
                report.lost.append(f"{run}/{key}")
            if key == FINETUNE and stage.is_terminal and job_id:
                report.finetunes_ended.append((run, job_id))
            if key == FINETUNE and stage.status == "failed" and was != "failed":
                report.newly_failed.append(FailedFinetune(
                    run=run, job_id=job_id or "", cause=change.get("cause"), reason=stage.reason or ""
                ))
        report.not_run = cancel_unrunnable(current, stamp)
        report.changed += len(report.not_run)

    started = time.perf_counter()
    unrunnable = any(finetune_ended_for_good(e.finetune) and any(not s.is_terminal and not s.job_id
                     for s in e.evaluations.values()) for e in status.runs.values())
    final = store.update(update, now=stamp) if changes or unrunnable else status
    report.persist_s = time.perf_counter() - started
    for run, job_id in report.finetunes_ended:  # the job side's versions, from its preflight record
        refresh_job_environment(group, run, job_id)
    return tally(final, report)


def tally(status: RunsStatus, report: SyncReport | None = None) -> SyncReport:
    """`report` (or a new one) with the table rows, counts and progress of `status`."""
    report = report or SyncReport()
    report.rows = _rows(status)
    report.counts = {}
    for row in report.rows:
        report.counts[row.state] = report.counts.get(row.state, 0) + 1
    report.total = sum(1 for r in report.rows if r.state not in ("skipped", "dropped"))  # dropped: out of the design
    report.done = sum(1 for r in report.rows if r.state in ("completed", "failed", "cancelled"))
    return report
