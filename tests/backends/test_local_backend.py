"""The local backend runs real `bash` jobs with SLURM's semantics (fast: tiny scripts).

Time limits use seconds (`--time=0:01`), which the local backend honours exactly.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tasks.backends.slurm import classify_failure
from tasks.backends._base import JobInfo, JobOverrides, SubmitError
from tasks.backends.local import LocalBackend, script_options
from tasks.backends._select import select_backend
from tasks.backends.slurm import SlurmBackend
from tasks.core._durations import parse_duration as parse_time_limit
from tasks.core._files import read_log_tail
from tasks.model._cluster import ClusterSettings

DONE = {"completed", "failed", "cancelled"}


def script(folder: Path, name: str, body: str, *directives: str) -> Path:
    path = folder / f"{name}.slurm"
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", "#SBATCH --output=slurm-%j.out", *directives, "", body, ""]
    path.write_text("\n".join(f"#SBATCH {d}" if d.startswith("--") else d for d in lines))
    return path


def wait(backend: LocalBackend, ids: list[str], timeout: float = 15) -> dict[str, JobInfo]:
    deadline = time.monotonic() + timeout
    while True:
        found = backend.query(ids)
        if all(found[i].status in DONE and found[i].raw_state != "RUNNING" for i in ids):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def wait_running(backend: LocalBackend, job_id: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while backend.query([job_id])[job_id].raw_state != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def test_succeed_fail_and_afterok_chain(tmp_path: Path, work: Path) -> None:
    backend = LocalBackend(tmp_path / "state", max_parallel=2)
    ok = backend.submit(script(work, "lb_ok", 'echo "id=$SLURM_JOB_ID name=$SLURM_JOB_NAME"'), work)
    bad = backend.submit(script(work, "lb_bad", "echo about to fail; exit 3"), work, overrides=JobOverrides(exclude_nodes=["node7"]))
    child = backend.submit(script(work, "lb_child", "echo never"), work, after_ok=[bad])
    grandchild = backend.submit(script(work, "lb_grandchild", "echo never"), work, after_ok=[child])
    after_ok = backend.submit(script(work, "lb_after_ok", "echo after"), work, after_ok=[ok])
    assert [ok, bad, child, grandchild, after_ok] == ["1", "2", "3", "4", "5"]
    found = wait(backend, [ok, bad, child, grandchild, after_ok])

    assert found[ok].status == "completed" and found[ok].exit_code == "0:0" and found[ok].node == "localhost"
    assert (work / f"slurm-{ok}.out").read_text() == f"id={ok} name=lb_ok\n"
    assert found[bad].model_dump(include={"status", "raw_state", "exit_code", "reason"}) == {
        "status": "failed", "raw_state": "FAILED", "exit_code": "3:0", "reason": "NonZeroExitCode"}
    for job in (child, grandchild):
        assert found[job].status == "cancelled" and found[job].reason == "DependencyNeverSatisfied"
        assert classify_failure(found[job], "") == "dependency"
        assert not (work / f"slurm-{job}.out").exists()
    assert found[after_ok].status == "completed"
    assert classify_failure(found[bad], read_log_tail(work / f"slurm-{bad}.out")) == "error"
    assert backend.jobs_named(["lb_ok", "lb_child", "nope"]) == {"lb_ok": [found[ok]], "lb_child": [found[child]]}


def test_timeout_and_launch_failure(tmp_path: Path, work: Path) -> None:
    backend = LocalBackend(tmp_path / "state")
    slow = backend.submit(script(work, "lb_slow", "echo started; sleep 30", "--time=0:30"), work,
                          overrides=JobOverrides(time_limit="0:01"))  # the command line wins, as with sbatch
    lost = backend.submit(script(work, "lb_lost", "echo x", "--output=/nonexistent-sweepflow/%j.out"), work)
    found = wait(backend, [slow, lost])
    assert found[slow].model_dump(include={"status", "raw_state", "exit_code", "reason"}) == {
        "status": "failed", "raw_state": "TIMEOUT", "exit_code": "0:15", "reason": "TimeLimit"}
    assert 0.9 < found[slow].elapsed_s < 5
    log = read_log_tail(work / f"slurm-{slow}.out")
    assert log.startswith("started\n") and "DUE TO TIME LIMIT ***" in log
    assert classify_failure(found[slow], log) == "timeout"
    assert (found[lost].raw_state, found[lost].reason, found[lost].exit_code) == ("FAILED", "JobLaunchFailure", "0:53")
    assert classify_failure(found[lost], "") == "launch"


def test_cancel_running_and_pending(tmp_path: Path, work: Path) -> None:
    backend = LocalBackend(tmp_path / "state", max_parallel=1)
    long = backend.submit(script(work, "lb_long", "echo $$ > pid; sleep 30"), work)
    queued = backend.submit(script(work, "lb_queued", "echo never"), work)
    child = backend.submit(script(work, "lb_dep", "echo never"), work, after_ok=[long])
    wait_running(backend, long)
    assert backend.query([queued])[queued].raw_state == "PENDING"  # max_parallel=1
    while not (work / "pid").exists() or not (work / "pid").read_text().strip():
        time.sleep(0.05)
    pid = int((work / "pid").read_text())
    backend.cancel([long, queued])
    found = wait(backend, [long, queued, child])
    uid = os.getuid()
    assert (found[long].raw_state, found[long].exit_code) == (f"CANCELLED by {uid}", "0:15")
    assert (found[queued].raw_state, found[queued].exit_code) == (f"CANCELLED by {uid}", "0:0")
    assert found[child].reason == "DependencyNeverSatisfied"
    assert classify_failure(found[long], "") == "cancelled"
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]:
        assert time.monotonic() < deadline, "the cancelled job's process is still alive"
        time.sleep(0.05)
    assert "CANCELLED AT" in (work / f"slurm-{long}.out").read_text()
    backend.cancel([long, "999"])  # already ended / unknown: no error


def test_ids_persist_and_another_process_sees_the_jobs(tmp_path: Path, work: Path) -> None:
    state = tmp_path / "state"
    first = LocalBackend(state)
    a = first.submit(script(work, "lb_a", "true"), work)
    wait(first, [a])
    second = LocalBackend(state)  # e.g. sync-status in another process, or after a restart
    b = second.submit(script(work, "lb_b", "true"), work)
    assert int(b) == int(a) + 1
    assert wait(first, [b])[b].status == "completed"
    assert second.query([a, "404"]) == first.query([a])
    assert json.loads((state / "jobs" / f"{a}.json").read_text())["state"] == "COMPLETED"
    assert not (state / "jobs" / f"{a}.env.json").exists()  # read by its watcher, then removed (issue 23)


def test_dead_watcher_becomes_node_fail(tmp_path: Path, work: Path) -> None:
    state = tmp_path / "state"
    backend = LocalBackend(state)
    job = backend.submit(script(work, "lb_orphan", "sleep 30"), work)
    wait_running(backend, job)
    record = json.loads((state / "jobs" / f"{job}.json").read_text())
    os.kill(record["watcher_pid"], signal.SIGKILL)
    found = wait(backend, [job])
    assert (found[job].raw_state, found[job].status) == ("NODE_FAIL", "failed")
    assert classify_failure(found[job], "") == "node"


def test_submit_errors(tmp_path: Path, work: Path) -> None:
    backend = LocalBackend(tmp_path / "state")
    with pytest.raises(SubmitError, match="Unable to open file") as missing:
        backend.submit(Path("nope.slurm"), work)
    assert missing.value.transient is False
    with pytest.raises(SubmitError, match="Job dependency problem"):
        backend.submit(script(work, "lb_x", "true"), work, after_ok=["12345"])
    with pytest.raises(SubmitError, match="does not exist"):
        backend.submit(script(work, "lb_x", "true"), work / "missing")


def test_time_limits_and_options() -> None:
    assert [parse_time_limit(t) for t in ["90", "0:02", "1:00:00", "2-0", "1-02:03", "1-00:00:05", "UNLIMITED", None]] == [
        5400, 2, 3600, 172800, 93780, 86405, None, None]
    text = "#!/bin/bash\n#SBATCH --job-name=abc\n#SBATCH -t 5\n#SBATCH --gres=gpu:1\necho hi\n#SBATCH --time=9\n"
    assert script_options(text) == {"--job-name": "abc", "--time": "5", "--gres": "gpu:1"}
    assert script_options(text, ["--time=7", "-J", "xyz"])["--time"] == "7"


def test_select_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(select_backend(ClusterSettings(backend="local"), tmp_path / "s"), LocalBackend)
    assert isinstance(select_backend(ClusterSettings(backend="slurm"), tmp_path / "s"), SlurmBackend)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert isinstance(select_backend(ClusterSettings(), tmp_path / "s", path=str(bin_dir)), LocalBackend)
    (bin_dir / "sbatch").write_text("#!/bin/sh\n")
    (bin_dir / "sbatch").chmod(0o755)
    # SLURM installed but no controller answering (a laptop with slurm-client): local
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    assert isinstance(select_backend(ClusterSettings(), tmp_path / "s", path=str(bin_dir)), LocalBackend)
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 'Slurmctld(primary) at localhost is UP'\n")
    (bin_dir / "scontrol").chmod(0o755)
    assert isinstance(select_backend(ClusterSettings(), tmp_path / "s", path=str(bin_dir)), SlurmBackend)


def test_no_secret_stays_at_rest(tmp_path: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The submitter's environment reaches the job, and no copy of it outlives the job's start (issue 23).

    Before the fix every job's whole environment (tokens included) stayed in jobs/<id>.env.json for good.
    """
    secret = "hf_secret_value_0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    state = tmp_path / "state"
    backend = LocalBackend(state, max_parallel=1)
    ran = backend.submit(script(work, "sec_ran", 'echo "token=$HF_TOKEN"'), work)
    failed = backend.submit(script(work, "sec_failed", "exit 3"), work)
    never = backend.submit(script(work, "sec_never", "echo never"), work, after_ok=[failed])  # dependency cancelled
    waiting = backend.submit(script(work, "sec_waiting", "sleep 30"), work, after_ok=[ran])
    backend.cancel([waiting])
    infos = wait(backend, [ran, failed, never, waiting])
    assert infos[ran].status == "completed" and infos[never].reason == "DependencyNeverSatisfied"
    assert f"token={secret}" in (work / f"slurm-{ran}.out").read_text()  # as sbatch: the job had it
    leaked = [p for p in state.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaked == []
