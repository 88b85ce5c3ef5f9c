"""A full disk is its own failure cause, retried once the space check passes, with real numbers (issue 23).

On a REAL tmpfs (mounted for the test; skipped with the reason where mounting is not allowed):
a real job on the local backend fills it and fails with `dd`'s own "No space left on device";
that log classifies as `disk` (before the fix: "error", a code or data error, never retried).
Then a run group living on the tmpfs: its fine-tune fails the same way (the job's log is that
real one); while the disk is full, the retry waits and says how much is free and needed, in
real numbers; once space is freed, the same call resubmits the fine-tune as it was.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.backends.slurm import classify_failure
from tasks.backends.local import LocalBackend
from tasks.core._errors import FileSystemError
from tasks.core._files import format_gib, read_log_tail
from tasks.execution._retries import failed_awaiting_decision, retry_run, space_shortfall
from tasks.execution._submit import submit_pending
from tasks.execution._sync import sync_jobs
from tasks.model._group import RunGroup
from tasks.model._plan import VerifiedResources
from tasks.planning._verify import check_disk
from tests.support.fake_scheduler import FakeScheduler, cluster, make_group

RUN = "Llama-3.2-1B-Instruct_rank4"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "tmpfs"
    where.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {(proc.stderr or proc.stdout).strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path, leave_mib: int = 0) -> str:
    """Write until the filesystem is full (real ENOSPC), then give back `leave_mib`; dd's own message."""
    proc = subprocess.run(["dd", "if=/dev/zero", f"of={folder / 'fill'}", "bs=1M", "count=4096"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "No space left on device" in proc.stderr, proc.stderr
    if leave_mib:
        with (folder / "fill").open("r+b") as handle:
            handle.truncate((folder / "fill").stat().st_size - leave_mib * 2**20)
    return proc.stderr


def test_a_job_killed_by_a_full_disk_is_classed_disk(tmpfs: Path, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "local")
    work = tmp_path / "work"
    work.mkdir()
    script = work / "fill.slurm"
    script.write_text(f"#!/bin/bash\n#SBATCH --job-name=fill\nset -e\ndd if=/dev/zero of={tmpfs}/x bs=1M count=4096\n")
    job = backend.submit(script, work)
    deadline = time.monotonic() + 30
    while (info := backend.query([job])[job]).status not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert info.status == "failed"
    assert classify_failure(info, read_log_tail(work / f"slurm-{job}.out")) == "disk"


def _resize(tmpfs: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(tmpfs)], check=True, capture_output=True)


def test_disk_full_waits_for_space_then_resubmits(tmpfs: Path) -> None:
    _resize(tmpfs, "64g")  # a limit, not memory: the plan's own disk check passes
    path = make_group(tmpfs)
    _resize(tmpfs, "96m")
    group = RunGroup(path)
    group.plan.estimates.runs[RUN].disk_gib = 8 / 1024  # 8 MiB: what this tiny run still has to write
    fake = FakeScheduler()
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    job = group.status.read().stage(RUN).job_id
    message = _fill(tmpfs)  # the real message of a write that hit the full disk...
    (tmpfs / "fill").unlink()
    (group.layout.run_dir(RUN) / f"slurm-{job}.out").write_text(f"training...\n{message}\n")  # ...in the job's log
    _fill(tmpfs)  # and the disk full again: the status cannot be written, and says so naming the file
    fake.finish(job, "FAILED", exit_code="1:0", node="localhost")
    with pytest.raises(FileSystemError) as info:
        sync_jobs(group, fake)
    assert info.value.cause == "disk_full" and str(group.layout.status_file) in str(info.value)
    (tmpfs / "fill").unlink()
    _fill(tmpfs, leave_mib=2)  # a little space back: less than the run needs

    sync_jobs(group, fake)
    stage = group.status.read().stage(RUN)
    assert (stage.status, stage.attempts[-1].cause) == ("failed", "disk") and "disk full" in (stage.reason or "")

    outcome = retry_run(group, RUN, fake, cluster())
    assert outcome.job_id is None and outcome.error and "waiting for disk space" in outcome.error
    assert "B free" in outcome.error and "8.0 MiB" in outcome.error  # real numbers, not "0.0 GiB"
    assert failed_awaiting_decision(group.status.read()) == [RUN]  # nothing recorded: decided again later

    (tmpfs / "fill").unlink()
    assert space_shortfall(group, RUN) is None
    outcome = retry_run(group, RUN, fake, cluster())
    assert outcome.job_id is not None and outcome.remedy.kind == "resubmit_after_space"
    after = group.status.read().stage(RUN)
    assert after.job_id == outcome.job_id and "disk full" in (after.attempts[-2].remedy or "")


def test_the_plan_time_disk_message_shows_real_numbers(tmp_path: Path) -> None:
    resources = VerifiedResources.model_construct(free_disk_gib=1.5 / 1024)
    [problem] = check_disk(resources, 6 / 1024, tmp_path)
    assert "about 6.0 MiB but only 1.5 MiB is free" in problem.message
    assert format_gib(230) == "230.0 GiB" and format_gib(0) == "0 B"
