"""An in-memory job scheduler for unit tests of launch/sync/retry logic, and a real run group.

`FakeScheduler` implements the `tasks.backends._base.Backend` protocol with SLURM's states,
reading the job name from the submitted script's `#SBATCH --job-name=` line. Tests move jobs
through states with `finish(...)`. Integration against a real SLURM lives elsewhere.
`make_group` builds a real run group: fakesite resources -> build_plan -> deliver_plan ->
setup_experiment. tests/conftest.py makes fixtures of them: `fake_scheduler`, `run_group`, `launched`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from tasks.backends._base import JobInfo, JobOverrides, JobStatus, SubmitError
from tasks.execution._submit import submit_pending
from tasks.model._cluster import ClusterSettings
from tasks.model._design_file import parse_design
from tasks.model._status_file import StatusStore
from tasks.planning._deliver import deliver_plan
from tasks.planning._planner import build_plan
from tasks.setup._experiment import set_up_group
from tests.support.fakesite import DATE, design

NOW = "2026-01-02T00:00:00+00:00"
_NAME = re.compile(r"^#SBATCH --job-name=(\S+)", re.MULTILINE)
_STATUS: dict[str, JobStatus] = {
    "PENDING": "pending", "RUNNING": "running", "COMPLETED": "completed", "FAILED": "failed",
    "OUT_OF_MEMORY": "failed", "TIMEOUT": "failed", "NODE_FAIL": "failed", "PREEMPTED": "failed",
    "BOOT_FAIL": "failed", "CANCELLED": "cancelled",
}


class FakeScheduler:
    """Jobs in a dict; every call recorded. `errors`: SubmitErrors raised by the next submits."""

    name = "fake"

    def __init__(self, first_id: int = 100, reports_work_dir: bool = True) -> None:
        self.reports_work_dir = reports_work_dir  # as SLURM does (squeue/sacct WorkDir)
        self.calls = 0
        self.named_calls = 0
        self.next_id = first_id
        self.jobs: dict[str, JobInfo] = {}
        self.submits: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self.errors: list[SubmitError] = []

    def submit(self, script: Path, cwd: Path, after_ok: list[str] | None = None, overrides: JobOverrides | None = None,
               script_args: list[str] | None = None) -> str:
        if self.errors:
            raise self.errors.pop(0)
        match = _NAME.search(Path(script).read_text())
        name = match.group(1) if match else Path(script).name
        job_id = str(self.next_id)
        self.next_id += 1
        self.jobs[job_id] = JobInfo(job_id=job_id, name=name, status="pending", raw_state="PENDING",
                                    work_dir=str(cwd) if self.reports_work_dir else None)
        self.submits.append({"id": job_id, "name": name, "script": Path(script), "cwd": Path(cwd),
                             "after_ok": list(after_ok or []), "overrides": overrides,
                             "args": list(script_args or [])})
        return job_id

    def query(self, job_ids: list[str], recent: Collection[str] = ()) -> dict[str, JobInfo]:
        self.calls += 1
        return {i: self.jobs[i] for i in job_ids if i in self.jobs}

    def jobs_named(self, names: list[str]) -> dict[str, list[JobInfo]]:
        self.named_calls += 1
        found: dict[str, list[JobInfo]] = {}
        for info in self.jobs.values():
            if info.name in names:
                found.setdefault(info.name, []).append(info)
        return found

    def cancel(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.cancelled.append(job_id)
            if job_id in self.jobs and self.jobs[job_id].status in ("pending", "running"):
                self.finish(job_id, "CANCELLED by 1000")

    def finish(self, job_id: str, raw_state: str, **fields: Any) -> JobInfo:
        """Put a job in a SLURM state, e.g. finish("101", "OUT_OF_MEMORY", node="gpu7", exit_code="0:125")."""
        base = raw_state.split(" ")[0]
        info = self.jobs[job_id].model_copy(update={"raw_state": raw_state, "status": _STATUS[base], **fields})
        self.jobs[job_id] = info
        return info

    def by_name(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.submits if s["name"] == name]


def cluster(**changes: Any) -> ClusterSettings:
    return ClusterSettings(**{"max_queued_jobs": 50, "submit_stagger_seconds": 5.0, **changes})


def make_group(root: Path, **changes: Any) -> Path:
    """A set-up run group: 2 models x ranks 4/64 (2 epochs, every epoch evaluated) + 2 controls."""
    data = design(root, **changes)
    data["evaluation"]["epochs"] = "all"
    plan = build_plan(parse_design(data), date=DATE)
    group = deliver_plan(plan, NOW)
    set_up_group(group)
    return group


def launched_group(root: Path) -> tuple[Path, FakeScheduler]:
    """A set-up run group (make_group) whose jobs were all submitted to a FakeScheduler."""
    group = make_group(root)
    fake = FakeScheduler()
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    return group, fake


def read_status(group: Path) -> Any:
    """runs_status.yaml of a group, parsed."""
    return StatusStore(group / "runs_status.yaml").read()
