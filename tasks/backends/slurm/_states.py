"""SLURM's job states, and what each means to sweepflow: ONE table.

Reads and writes nothing. `STATES` maps every state `sacct` / `squeue` / `scontrol` print to
sweepflow's job status and, for states that end a job badly by themselves, the failure cause
the retry policy acts on. A state SLURM adds later is one row here; until then it reads as
`pending` (the job is left alone, never marked failed).

A job PENDING with Reason DependencyNeverSatisfied is `cancelled`: it will never run (SLURM
keeps it queued forever unless --kill-on-invalid-dep); its JobInfo keeps raw_state "PENDING"
and that reason and says `held`, so a caller knows it must still `cancel()` it.
"""

from __future__ import annotations

from typing import NamedTuple

from tasks.backends._base import FailureCause, JobStatus


class State(NamedTuple):
    """What one SLURM state means: the job's status, and the cause when it alone says why it failed."""

    status: JobStatus
    cause: FailureCause | None = None


STATES: dict[str, State] = {
    "PENDING": State("pending"),
    "CONFIGURING": State("pending"),
    "REQUEUED": State("pending"),
    "REQUEUE_FED": State("pending"),
    "REQUEUE_HOLD": State("pending"),
    "RESV_DEL_HOLD": State("pending"),
    "RUNNING": State("running"),
    "COMPLETING": State("running"),
    "RESIZING": State("running"),
    "SUSPENDED": State("running"),
    "STOPPED": State("running"),
    "SIGNALING": State("running"),
    "STAGE_OUT": State("running"),
    "COMPLETED": State("completed"),
    "FAILED": State("failed"),  # the cause comes from the log and the exit code
    "SPECIAL_EXIT": State("failed"),
    "OUT_OF_MEMORY": State("failed", "oom"),
    "TIMEOUT": State("failed", "timeout"),
    "DEADLINE": State("failed", "timeout"),
    "NODE_FAIL": State("failed", "node"),
    "PREEMPTED": State("failed", "node"),
    "BOOT_FAIL": State("failed", "node"),
    "CANCELLED": State("cancelled"),  # by a user, or by --kill-on-invalid-dep: see outcomes
    "REVOKED": State("cancelled"),
}
UNKNOWN = State("pending")
NEVER_RUNS = "DependencyNeverSatisfied"  # the Reason of a job whose dependency failed
FINISHED = frozenset(name for name, state in STATES.items() if state.status in ("completed", "failed", "cancelled"))


def base_state(raw: str) -> str:
    """`CANCELLED by 0` -> `CANCELLED`; `CANCELLED+` -> `CANCELLED`."""
    return raw.strip().split(" ", 1)[0].rstrip("+").upper() if raw else ""


def state_of(raw: str) -> State:
    """The table's row for a raw state (UNKNOWN for a state not in it)."""
    return STATES.get(base_state(raw), UNKNOWN)


def map_state(raw: str, reason: str | None = None) -> JobStatus:
    """Sweepflow's status for a SLURM state (`CANCELLED by 0` and `CANCELLED+` included)."""
    if base_state(raw) == "PENDING" and reason == NEVER_RUNS:
        return "cancelled"
    return state_of(raw).status
