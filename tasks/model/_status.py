"""runs_status.yaml's content: every run's stages, their status, job ids and attempts (the seed's schema).

Reads and writes nothing: `tasks.model._status_file` reads and writes the file (`StatusStore`).
A terminal stage (completed/failed/cancelled/skipped/dropped) is final: the store never moves one back
unless its caller says `force=True`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, model_serializer

from tasks.core._errors import SweepflowError
from tasks.model._plan import Plan

log = logging.getLogger(__name__)

Status = Literal["pending", "submitted", "running", "completed", "failed", "skipped", "cancelled", "dropped"]
# dropped: an extension took the run (or evaluation) out of the design; its files and attempts are kept
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled", "skipped", "dropped"})
BASE_NOTE = "Base model - no fine-tuning required"
FINETUNE = "finetune"


class StatusError(SweepflowError):
    """The status file cannot be updated (lock not obtained, or a refused regression)."""


def utc_now() -> str:
    """The current UTC time as an ISO 8601 timestamp, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _str_or_none(value: Any) -> Any:
    # job ids are written as strings; accept a bare number typed by hand
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


JobId = Annotated[str, BeforeValidator(_str_or_none)]
# The job's state in the backend's own words. Files written before the backend seam call it
# `slurm_state`: that key is still read, and written back as `scheduler_state`.
SchedulerState = Annotated[str | None, Field(validation_alias=AliasChoices("scheduler_state", "slurm_state"))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _OmitUnset(_Model):
    """A record whose unset (None) fields are left out of runs_status.yaml."""

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class Attempt(_OmitUnset):
    """One submission of a stage; kept when a job is resubmitted (OOM, timeout, node failure)."""

    job_id: JobId
    submitted: str | None = None
    finished: str | None = None
    scheduler_state: SchedulerState = None  # the backend's raw state, e.g. OUT_OF_MEMORY, CANCELLED by 1000
    exit_code: str | None = None  # the backend's raw exit status, e.g. "rc:signal"
    reason: str | None = None
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    cause: str | None = None  # FailureCause of this attempt's failure (oom, timeout, node, ...)
    remedy: str | None = None  # what was done about it, e.g. "OOM: batch 16→8, ..." or "not retried: ..."
    node: str | None = None
    elapsed_s: float | None = None
    time_limit: str | None = None  # sbatch --time given on the command line (a retry after TIMEOUT)
    exclude: str | None = None  # sbatch --exclude nodes (a retry after a node failure)
    resume_epoch: int | None = None  # resumed from epoch_N (torchtune resume_from_checkpoint)
    reopened: bool | None = None  # the researcher reopened the stage after this attempt (execution/reopen.py)


class FinetuneOverrides(_OmitUnset):
    """Per-run changes made by a retry, kept so a later setup-experiment re-renders them too."""

    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    resume_epoch: int | None = None  # finetune.yaml resumes from epoch_N/ (after a TIMEOUT)


# Fields beyond the seed's schema: written only when set, so a fresh file is exactly the seed's.
_OPTIONAL = ("note", "reason", "scheduler_state", "exit_code", "attempts", "overrides")


class StageStatus(_Model):
    """One fine-tune or one evaluation: the seed's four fields, plus optional later ones."""

    status: Status = "pending"
    job_id: JobId | None = None
    output: str | None = None
    last_updated: str | None = None
    note: str | None = None
    reason: str | None = None  # why it failed / was skipped / was cancelled
    scheduler_state: SchedulerState = None
    exit_code: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    overrides: FinetuneOverrides | None = None  # fine-tunes only: set by a retry's remedy

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if k not in _OPTIONAL or v not in (None, [])}

    @property
    def is_terminal(self) -> bool:
        """Whether the stage has finished: completed, failed, cancelled, skipped or dropped."""
        return self.status in TERMINAL

    def mark(self, status: Status, now: str | None = None, **fields: Any) -> StageStatus:
        """Set the status (and any other fields), stamping last_updated. Returns self."""
        self.status = status
        for name, value in fields.items():
            setattr(self, name, value)
        self.last_updated = now or utc_now()
        return self


class RunStatus(_Model):
    """One run's stages: its fine-tune, and its evaluations by key."""

    finetune: StageStatus
    evaluations: dict[str, StageStatus] = Field(default_factory=dict)


class RunsStatus(_Model):
    """The content of runs_status.yaml: the run group's name and every run's stages."""

    run_group: str
    runs: dict[str, RunStatus] = Field(default_factory=dict)

    def stage(self, run: str, key: str = FINETUNE) -> StageStatus:
        """`key` is 'finetune' or an evaluation key (`task_epoch_N`, or `task` for base models)."""
        entry = self.runs.get(run)
        if entry is None or (key != FINETUNE and key not in entry.evaluations):
            what = f"run {run}" if entry is None else f"stage {run}/{key}"
            raise StatusError(f"runs_status.yaml of {self.run_group}: {what} is missing; "
                              "run setup-experiment to restore it")
        return entry.finetune if key == FINETUNE else entry.evaluations[key]

    def stages(self) -> Iterator[tuple[str, str, StageStatus]]:
        """(run, key, stage) for every fine-tune and evaluation, in file order."""
        for name, entry in self.runs.items():
            yield name, FINETUNE, entry.finetune
            for key, stage in entry.evaluations.items():
                yield name, key, stage


def initial_status(plan: Plan) -> RunsStatus:
    """Every stage pending; base-model runs skip fine-tuning and are evaluated once per task."""
    runs: dict[str, RunStatus] = {}
    for run in plan.runs:
        finetune = StageStatus(status="skipped", note=BASE_NOTE) if run.is_control else StageStatus()
        runs[run.name] = RunStatus(finetune=finetune, evaluations={job.key: StageStatus() for job in run.evaluations})
    return RunsStatus(run_group=plan.run_group, runs=runs)
