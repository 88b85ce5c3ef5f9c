"""SLURM's job states live in one table (tasks/backends/slurm/_states.py): a new state is one row.

`map_state` (status), `classify_failure` (the retry policy's cause) and the local backend's idea
of a finished job all read `STATES`; these tests add a row (monkeypatched) and see both follow.
"""

from __future__ import annotations

import pytest

import tasks.backends.slurm._states as states
from tasks.backends import JobInfo
from tasks.backends.slurm import classify_failure
from tasks.backends.slurm import map_state
from tasks.backends.slurm._states import STATES, State


def failed(raw: str) -> JobInfo:
    return JobInfo(job_id="7", status=map_state(raw), raw_state=raw, exit_code="0:9", node="gpu3", elapsed_s=60.0)


def test_an_unknown_state_waits_and_is_never_called_failed() -> None:
    assert map_state("QUARANTINED") == "pending"
    assert classify_failure(failed("QUARANTINED"), "") is None


def test_one_row_gives_a_new_state_its_status_and_its_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(states.STATES, "QUARANTINED", State("failed", "node"))
    assert map_state("QUARANTINED") == "failed"
    assert classify_failure(failed("QUARANTINED"), "") == "node"  # retried on another node


def test_every_state_of_the_table() -> None:
    for raw, state in STATES.items():
        assert map_state(raw) == state.status
        if state.status == "failed" and state.cause is not None:
            assert classify_failure(failed(raw), "") == state.cause
    assert map_state("CANCELLED by 1000") == "cancelled" and map_state("CANCELLED+") == "cancelled"
    assert map_state("PENDING", "DependencyNeverSatisfied") == "cancelled"
