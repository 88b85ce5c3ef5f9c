"""runs_status.yaml: the per-run, per-stage progress tracker, and safe concurrent updates to it.

Reads/writes: `<group>/runs_status.yaml` (the seed's schema; header from
`templates/runs_status.yaml.j2`, body dumped by PyYAML) and its lock file
`<group>/runs_status.yaml.lock`.
Every change goes through `StatusStore.update`: read-modify-write under a cross-process file
lock, then an atomic replace, so concurrent writers (flows, SLURM sync) never lose an update
and a reader never sees half a file. A terminal stage (completed/failed/cancelled/skipped) is
never moved back to a non-terminal one unless the caller says `force=True`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer

from tasks.design import problems_from_validation
from tasks.errors import SweepflowError
from tasks.fsio import FileFormatError, atomic_write_text, dump_yaml, read_yaml
from tasks.plan import Plan
from tasks.render import render_template

log = logging.getLogger(__name__)

Status = Literal["pending", "submitted", "running", "completed", "failed", "skipped", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled", "skipped"})
BASE_NOTE = "Base model - no fine-tuning required"
FINETUNE = "finetune"
POLL_SECONDS = 0.01  # how often a waiting writer retries the lock


class StatusError(SweepflowError):
    """The status file cannot be updated (lock not obtained, or a refused regression)."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _str_or_none(value: Any) -> Any:
    # SLURM job ids are written as strings; accept a bare number typed by hand
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Attempt(_Model):
    """One submission of a stage; kept when a job is resubmitted (OOM, timeout, node failure)."""

    job_id: str
    submitted: str | None = None
    finished: str | None = None
    slurm_state: str | None = None  # raw SLURM state, e.g. OUT_OF_MEMORY, CANCELLED by 1000
    exit_code: str | None = None  # raw SLURM "rc:signal"
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

    @field_validator("job_id", mode="before")
    @classmethod
    def _job_id(cls, value: Any) -> Any:
        return _str_or_none(value)

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class FinetuneOverrides(_Model):
    """Per-run changes made by a retry, kept so a later setup-experiment re-renders them too."""

    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    resume_epoch: int | None = None  # finetune.yaml resumes from epoch_N/ (after a TIMEOUT)

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


# Fields beyond the seed's schema: written only when set, so a fresh file is exactly the seed's.
_OPTIONAL = ("note", "reason", "slurm_state", "exit_code", "attempts", "overrides")


class StageStatus(_Model):
    """One fine-tune or one evaluation: the seed's four fields, plus optional later ones."""

    status: Status = "pending"
    job_id: str | None = None
    output: str | None = None
    last_updated: str | None = None
    note: str | None = None
    reason: str | None = None  # why it failed / was skipped / was cancelled
    slurm_state: str | None = None
    exit_code: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    overrides: FinetuneOverrides | None = None  # fine-tunes only: set by a retry's remedy

    @field_validator("job_id", mode="before")
    @classmethod
    def _job_id(cls, value: Any) -> Any:
        return _str_or_none(value)

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if k not in _OPTIONAL or v not in (None, [])}

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def mark(self, status: Status, now: str | None = None, **fields: Any) -> "StageStatus":
        """Set the status (and any other fields), stamping last_updated. Returns self."""
        self.status = status
        for name, value in fields.items():
            setattr(self, name, value)
        self.last_updated = now or utc_now()
        return self


class RunStatus(_Model):
    finetune: StageStatus
    evaluations: dict[str, StageStatus] = Field(default_factory=dict)


class RunsStatus(_Model):
    run_group: str
    runs: dict[str, RunStatus] = Field(default_factory=dict)

    def stage(self, run: str, key: str = FINETUNE) -> StageStatus:
        """`key` is 'finetune' or an evaluation key (`task_epoch_N`, or `task` for base models)."""
        entry = self.runs[run]
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


def dump_status(status: RunsStatus, now: str) -> str:
    """The file's text: the seed's header comments, then the YAML body from PyYAML."""
    return render_template("runs_status.yaml.j2", now=now, body=dump_yaml(status.model_dump(mode="json")))


def parse_status(data: Any, source: str | Path) -> RunsStatus:
    if not isinstance(data, dict):
        raise FileFormatError(source, "is not a runs_status.yaml mapping (expected run_group: and runs:)")
    try:
        return RunsStatus.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{p.field}: {p.message}" for p in problems_from_validation(error, str(source)))
        raise FileFormatError(source, f"does not match the runs_status.yaml schema: {problems}") from None


def load_status(path: str | Path) -> RunsStatus:
    """Read runs_status.yaml; `FileFormatError` naming the file when it is missing or invalid."""
    return parse_status(read_yaml(path), path)


def protect_terminal(old: RunsStatus, new: RunsStatus) -> list[str]:
    """Undo, in `new`, every move of a terminal stage back to a non-terminal one; say which."""
    refused: list[str] = []
    for run, key, before in old.stages():
        entry = new.runs.get(run)
        if entry is None:
            continue
        after = entry.finetune if key == FINETUNE else entry.evaluations.get(key)
        if after is not None and before.is_terminal and not after.is_terminal:
            refused.append(f"{run}/{key}: {before.status} -> {after.status}")
            restored = before.model_copy(deep=True)
            if key == FINETUNE:
                entry.finetune = restored
            else:
                entry.evaluations[key] = restored
    return refused


Updater = Callable[[RunsStatus], Any]  # mutate the status in place, or return a new RunsStatus


class StatusStore:
    """runs_status.yaml of one run group, safe for many concurrent writers (processes too)."""

    def __init__(self, path: str | Path, lock_timeout: float = 120.0):
        self.path = Path(path)
        self.lock_path = Path(f"{self.path}.lock")
        self.lock_timeout = lock_timeout

    def _lock(self) -> FileLock:
        return FileLock(str(self.lock_path), timeout=self.lock_timeout)

    def read(self) -> RunsStatus:
        """The current content (no lock needed: the file is only ever replaced atomically)."""
        return load_status(self.path)

    def write(self, status: RunsStatus, now: str | None = None) -> None:
        """Replace the whole file (creating it), under the lock. No terminal-state protection."""
        try:
            with self._lock().acquire(poll_interval=POLL_SECONDS):
                atomic_write_text(self.path, dump_status(status, now or utc_now()))
        except Timeout:
            raise StatusError(f"{self.path}: could not lock {self.lock_path} within {self.lock_timeout:g} s") from None

    def update(self, fn: Updater, *, force: bool = False, strict: bool = False, now: str | None = None) -> RunsStatus:
        """Read, apply `fn` (mutate the status, or return a new RunsStatus), write back atomically.

        Without `force`, terminal stages keep their state: such changes are dropped with a
        warning, or, with `strict`, raise `StatusError` and nothing is written.
        """
        try:
            with self._lock().acquire(poll_interval=POLL_SECONDS):
                raw = read_yaml(self.path)
                current = parse_status(raw, self.path)
                draft = parse_status(raw, self.path)  # a second copy: cheaper than a deep copy
                result = fn(draft)
                chosen = result if isinstance(result, RunsStatus) else draft  # fn may mutate and return anything
                new = parse_status(chosen.model_dump(mode="json"), self.path)
                if not force:
                    refused = protect_terminal(current, new)
                    if refused and strict:
                        raise StatusError(f"{self.path}: refused to reopen finished stages (use force=True): " + "; ".join(refused))
                    for item in refused:
                        log.warning("runs_status: kept terminal state of %s (use force=True to override)", item)
                atomic_write_text(self.path, dump_status(new, now or utc_now()))
                return new
        except Timeout:
            raise StatusError(f"{self.path}: could not lock {self.lock_path} within {self.lock_timeout:g} s") from None
