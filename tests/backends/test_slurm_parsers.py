"""Unit tests of the SLURM text parsers, state mapping and failure classification.

Every parser test reads a REAL recorded output from tests/fixtures/slurm (see its README.md
for how each was produced); no cluster and no subprocess here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.backends.slurm import classify_failure
from tasks.backends._base import JobInfo
from tasks.backends.slurm import is_transient_submit_error, map_state, parse_job_id
from tasks.backends.slurm._parse import (
    SACCT_FIELDS,
    SACCT_NAMED_FIELDS,
    SQUEUE_NAMED_COLUMNS,
    SQUEUE_O_COLUMNS,
    parse_elapsed,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
    scontrol_fields,
)
from tasks.core._files import read_log_tail
from tests.support.paths import FIXTURES_DIR

FIX = FIXTURES_DIR / "slurm"


def read(name: str) -> str:
    return (FIX / name).read_text()


def J(job_id: str, name: str | None, status: str, raw: str, exit_code: str | None, reason: str | None,
      node: str | None, elapsed: float | None, max_rss: str | None = None) -> JobInfo:
    return JobInfo(job_id=job_id, name=name, status=status, raw_state=raw, exit_code=exit_code, reason=reason,
                   node=node, elapsed_s=elapsed, max_rss=max_rss,
                   held=status == "cancelled" and raw == "PENDING")  # queued for ever: to be cancelled


SACCT_X = {
    "1": J("1", "fx_completed", "completed", "COMPLETED", "0:0", None, "localhost", 1.0),
    "2": J("2", "fx_failed", "failed", "FAILED", "3:0", None, "localhost", 0.0),
    "3": J("3", "fx_launch_failed", "failed", "FAILED", "0:53", None, "localhost", 0.0),
    "4": J("4", "fx_oom", "failed", "OUT_OF_MEMORY", "0:125", None, "localhost", 1.0),
    "5": J("5", "fx_dep_never", "cancelled", "PENDING", "0:0", "DependencyNeverSatisfied", None, 0.0),
    "6": J("6", "fx_dep_killed", "cancelled", "CANCELLED", "0:0", None, None, 0.0),
    "9": J("9", "fx_cancelled", "cancelled", "CANCELLED by 0", "0:0", None, "localhost", 1.0),
    "7_0": J("7_0", "fx_array", "completed", "COMPLETED", "0:0", None, "localhost", 0.0),
    "7_1": J("7_1", "fx_array", "failed", "FAILED", "1:0", None, "localhost", 0.0),
    "10": J("10", "fx_timeout", "failed", "TIMEOUT", "0:0", None, "localhost", 78.0),
    "11": J("11", "fx_running", "cancelled", "CANCELLED by 0", "0:0", None, "localhost", 79.0),
    "12": J("12", "fx_pending_resources", "cancelled", "CANCELLED by 0", "0:0", None, None, 0.0),
}


def test_sacct_x_exact() -> None:
    assert parse_sacct(read("sacct_X_P_n.txt")) == SACCT_X


def test_sacct_with_steps_folds_step_maxrss_into_the_job() -> None:
    rss = {"1": "3352K", "2": "3348K", "4": "3140K", "9": "1092K", "7_0": "1096K", "7_1": "1180K",
           "10": "3188K", "11": "3200K"}
    expected = {k: v.model_copy(update={"max_rss": rss.get(k)}) for k, v in SACCT_X.items()}
    assert parse_sacct(read("sacct_P_n_with_steps.txt")) == expected


def test_sacct_memory_killed_both_forms() -> None:
    job = J("13", "fx_memkill", "failed", "FAILED", "0:9", None, "localhost", 2.0)
    assert parse_sacct(read("sacct_X_P_n_memory_killed_no_cgroup.txt")) == {"13": job}
    with_steps = parse_sacct(read("sacct_P_n_with_steps_memory_killed_no_cgroup.txt"))
    assert with_steps == {"13": job.model_copy(update={"max_rss": "424676K"})}


def test_sacct_poll_form_with_fewer_fields() -> None:
    jobs = parse_sacct(read("sacct_poll.txt"), fields=("JobID", "State", "ExitCode", "Elapsed", "NodeList"))
    assert set(jobs) == set(SACCT_X)
    for job_id, info in jobs.items():
        full = SACCT_X[job_id]
        assert info == full.model_copy(update={"name": None, "reason": None,
                                                "status": map_state(full.raw_state), "held": False})
    assert jobs["5"].status == "pending"  # without the Reason column it cannot be known


def test_sacct_name_with_pipe_and_blank_lines() -> None:
    text = "\n42|odd|name|FAILED|2:0|00:00:05||n1|NonZeroExitCode\n\n"
    assert parse_sacct(text) == {"42": J("42", "odd|name", "failed", "FAILED", "2:0", "NonZeroExitCode", "n1", 5.0)}


def test_work_dir_column_may_hold_a_pipe() -> None:
    """The duplicate guard's queries end with WorkDir; there the folder is the free-text column."""
    sacct = "42|Llama_rank4|PENDING|0:0|00:00:00||None assigned|Dependency|/scratch/a|b/Llama_rank4\n"
    job = parse_sacct(sacct, (*SACCT_FIELDS, "WorkDir"))["42"]
    assert (job.name, job.status, job.work_dir) == ("Llama_rank4", "pending", "/scratch/a|b/Llama_rank4")
    squeue = "43|Llama_rank4|RUNNING|None|0:07|0|localhost|2026-12-06T04:00:48|N/A|/scratch/g/Llama_rank4\n"
    job = parse_squeue(squeue, SQUEUE_NAMED_COLUMNS)["43"]
    assert (job.status, job.node, job.work_dir) == ("running", "localhost", "/scratch/g/Llama_rank4")


def test_named_queries_carry_the_jobs_own_submit_and_start_times() -> None:
    """An adopted job's attempt records when the scheduler took it, not when it was found (issue 23)."""
    squeue = "43|Llama_rank4|COMPLETED|None|0:07|0|localhost|2026-12-06T04:00:48|2026-12-06T04:00:50|/g/x\n"
    job = parse_squeue(squeue, SQUEUE_NAMED_COLUMNS)["43"]
    local = datetime.fromisoformat("2026-12-06T04:00:48").astimezone(UTC)
    assert job.submitted == local.isoformat(timespec="seconds")
    assert datetime.fromisoformat(job.started or "") - local == timedelta(seconds=2)
    sacct = "44|Llama_rank4|PENDING|0:0|00:00:00||None assigned|Dependency|2026-12-06T04:00:48|Unknown|/g/x\n"
    job = parse_sacct(sacct, (*SACCT_FIELDS, *SACCT_NAMED_FIELDS))["44"]
    assert (job.submitted, job.started, job.work_dir) == (local.isoformat(timespec="seconds"), None, "/g/x")


def test_sacct_no_db_stderr_is_not_parsed_as_jobs() -> None:
    assert parse_sacct(read("sacct_no_db.stderr")) == {}


SQUEUE_ALL = {
    "6": J("6", "fx_dep_killed", "cancelled", "CANCELLED", None, "DependencyNeverSatisfied", None, 0.0),
    "9": J("9", "fx_cancelled", "cancelled", "CANCELLED", None, None, "localhost", 1.0),
    "11": J("11", "fx_running", "cancelled", "CANCELLED", None, None, "localhost", 79.0),
    "12": J("12", "fx_pending_resources", "cancelled", "CANCELLED", None, "Resources", None, 0.0),
    "1": J("1", "fx_completed", "completed", "COMPLETED", None, None, "localhost", 1.0),
    "7_0": J("7_0", "fx_array", "completed", "COMPLETED", None, None, "localhost", 0.0),
    "2": J("2", "fx_failed", "failed", "FAILED", None, "NonZeroExitCode", "localhost", 0.0),
    "3": J("3", "fx_launch_failed", "failed", "FAILED", None, "JobLaunchFailure", "localhost", 0.0),
    "7_1": J("7_1", "fx_array", "failed", "FAILED", None, "NonZeroExitCode", "localhost", 0.0),
    "4": J("4", "fx_oom", "failed", "OUT_OF_MEMORY", None, "OutOfMemory", "localhost", 1.0),
    "5": J("5", "fx_dep_never", "cancelled", "PENDING", None, "DependencyNeverSatisfied", None, 0.0),
    "10": J("10", "fx_timeout", "failed", "TIMEOUT", None, "TimeLimit", "localhost", 78.0),
}


def test_squeue_all_final_exact() -> None:
    assert parse_squeue(read("squeue_all_final.txt"), SQUEUE_O_COLUMNS) == SQUEUE_ALL


def test_squeue_snapshot_and_final() -> None:
    snap = parse_squeue(read("squeue_active_snapshot.txt"), SQUEUE_O_COLUMNS)
    assert snap == {
        "5": SQUEUE_ALL["5"],
        "12": J("12", "fx_pending_resources", "pending", "PENDING", None, "Resources", None, 0.0),
        "10": J("10", "fx_timeout", "running", "RUNNING", None, None, "localhost", 1.0),
        "11": J("11", "fx_running", "running", "RUNNING", None, None, "localhost", 1.0),
    }
    assert parse_squeue(read("squeue_active_final.txt"), SQUEUE_O_COLUMNS) == {"5": SQUEUE_ALL["5"]}


def test_squeue_exit_status_column() -> None:
    # the backend's own `-O ...,exit_code:0|,...` form prints the raw wait status (seen on slurm-local)
    text = "1|ex_ok|COMPLETED|None|0:00|0|localhost\n2|ex_fail|FAILED|NonZeroExitCode|0:00|768|localhost\n" \
           "3|ex_sleep|CANCELLED|None|0:29|15|localhost\n7_[0-1]|ex_arr|PENDING|Resources|0:00|0|\n"
    jobs = parse_squeue(text)
    assert [(j.job_id, j.status, j.exit_code) for j in jobs.values()] == [
        ("1", "completed", "0:0"), ("2", "failed", "3:0"), ("3", "cancelled", "0:15"), ("7_[0-1]", "pending", "0:0"),
    ]


SCONTROL = {
    "completed": {"1": J("1", "fx_completed", "completed", "COMPLETED", "0:0", None, "localhost", 1.0)},
    "failed": {"2": J("2", "fx_failed", "failed", "FAILED", "3:0", "NonZeroExitCode", "localhost", 0.0)},
    "launch_failed": {"3": J("3", "fx_launch_failed", "failed", "FAILED", "0:53", "JobLaunchFailure", "localhost", 0.0)},
    "out_of_memory": {"4": J("4", "fx_oom", "failed", "OUT_OF_MEMORY", "0:125", "OutOfMemory", "localhost", 1.0)},
    "cancelled_invalid_dependency": {
        "6": J("6", "fx_dep_killed", "cancelled", "CANCELLED", "0:0", "DependencyNeverSatisfied", None, 0.0)},
    "cancelled": {"9": J("9", "fx_cancelled", "cancelled", "CANCELLED", "0:15", None, "localhost", 1.0)},
    "timeout": {"10": J("10", "fx_timeout", "failed", "TIMEOUT", "0:15", "TimeLimit", "localhost", 78.0)},
    "cancelled_while_pending": {
        "12": J("12", "fx_pending_resources", "cancelled", "CANCELLED", "0:0", "Resources", None, 0.0)},
    "running": {"9": J("9", "fx_cancelled", "running", "RUNNING", "0:0", None, "localhost", 1.0)},
    "pending_resources": {"12": J("12", "fx_pending_resources", "pending", "PENDING", "0:0", "Resources", None, 0.0)},
    "memory_killed_no_cgroup": {
        "13": J("13", "fx_memkill", "failed", "FAILED", "0:9", "JobLaunchFailure", "localhost", 2.0)},
    "pending_dependency_never_satisfied": {
        "5": J("5", "fx_dep_never", "cancelled", "PENDING", "0:0", "DependencyNeverSatisfied", None, 0.0)},
    "array": {"7_1": J("7_1", "fx_array", "failed", "FAILED", "1:0", "NonZeroExitCode", "localhost", 0.0),
              "7_0": J("7_0", "fx_array", "completed", "COMPLETED", "0:0", None, "localhost", 0.0)},
}
# the recorded jobs were submitted from /work/main (scontrol's WorkDir)
SCONTROL = {k: {i: j.model_copy(update={"work_dir": "/work/main"}) for i, j in v.items()} for k, v in SCONTROL.items()}


def test_every_scontrol_fixture_is_covered() -> None:
    on_disk = {p.stem.removeprefix("scontrol_show_job_") for p in FIX.glob("scontrol_show_job_*.txt")}
    assert on_disk == set(SCONTROL)


@pytest.mark.parametrize("outcome", sorted(SCONTROL))
def test_scontrol_exact(outcome: str) -> None:
    assert parse_scontrol(read(f"scontrol_show_job_{outcome}.txt")) == SCONTROL[outcome]


def test_scontrol_invalid_id_and_values_with_spaces() -> None:
    assert parse_scontrol(read("scontrol_show_job_invalid_id.stderr")) == {}
    fields = scontrol_fields("JobId=5 JobName=x JobState=RUNNING WorkDir=/a b/c StdOut=/x/%j.out Power= ")
    assert fields["WorkDir"] == "/a b/c" and fields["StdOut"] == "/x/%j.out" and fields["Power"] == ""


@pytest.mark.parametrize("raw,reason,status", [
    ("PENDING", None, "pending"), ("PENDING", "Resources", "pending"), ("PENDING", "Dependency", "pending"),
    ("PENDING", "DependencyNeverSatisfied", "cancelled"), ("CONFIGURING", None, "pending"),
    ("REQUEUED", None, "pending"), ("REQUEUE_HOLD", None, "pending"), ("REQUEUE_FED", None, "pending"),
    ("RESV_DEL_HOLD", None, "pending"), ("RESIZING", None, "running"), ("SUSPENDED", None, "running"),
    ("RUNNING", None, "running"), ("COMPLETING", None, "running"), ("STOPPED", None, "running"),
    ("SIGNALING", None, "running"), ("STAGE_OUT", None, "running"), ("COMPLETED", None, "completed"),
    ("FAILED", "NonZeroExitCode", "failed"), ("OUT_OF_MEMORY", None, "failed"), ("TIMEOUT", None, "failed"),
    ("NODE_FAIL", None, "failed"), ("PREEMPTED", None, "failed"), ("BOOT_FAIL", None, "failed"),
    ("DEADLINE", None, "failed"), ("SPECIAL_EXIT", None, "failed"), ("CANCELLED", None, "cancelled"),
    ("CANCELLED by 0", None, "cancelled"), ("CANCELLED by 1000", None, "cancelled"), ("CANCELLED+", None, "cancelled"),
    ("REVOKED", None, "cancelled"), ("SOMETHING_NEW", None, "pending"), ("", None, "pending"),
])
def test_map_state(raw: str, reason: str | None, status: str) -> None:
    assert map_state(raw, reason) == status


@pytest.mark.parametrize("text,seconds", [
    ("00:01:18", 78.0), ("1:19", 79.0), ("0:00", 0.0), ("1:00:00", 3600.0), ("1-02:03:04", 93784.0),
    ("12:34.567", 754.567), ("00:00:01.5", 1.5), ("INVALID", None), ("", None), (None, None), ("UNLIMITED", None),
])
def test_parse_elapsed(text: str | None, seconds: float | None) -> None:
    assert parse_elapsed(text) == seconds


def test_parse_job_id() -> None:
    assert parse_job_id(read("sbatch_parsable.txt")) == "15"
    assert parse_job_id(read("sbatch_parsable_array.txt")) == "16"
    assert parse_job_id("15;cluster1\n") == "15"
    assert parse_job_id("123_4") == "123_4"
    assert parse_job_id("Submitted batch job 15") is None
    assert parse_job_id("") is None


@pytest.mark.parametrize("stderr,transient", [
    (read("sbatch_impossible_request.stderr"), False),
    (read("sbatch_over_partition_maxtime.stderr"), False),
    ("sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: "
     "Invalid partition name specified", False),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified", False),
    ("sbatch: unrecognized option '--bogus'", False),
    ("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", True),
    ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", True),
    ("sbatch: error: Batch job submission failed: Resource temporarily unavailable", True),
    ("sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates "
     "accounting/QOS policy (job submit limit, user's size and/or time limits)", True),
    ("sbatch: error: AssocMaxSubmitJobLimit\nsbatch: error: Batch job submission failed: Job violates "
     "accounting/QOS policy (job submit limit, user's size and/or time limits)", True),
])
def test_transient_submit_errors(stderr: str, transient: bool) -> None:
    assert is_transient_submit_error(stderr) is transient


# ---------------------------------------------------------------- classify_failure

SCTL = {k: next(iter(v.values())) for k, v in SCONTROL.items()}
LOG = {p.stem.removeprefix("joblog_"): p.read_text() for p in FIX.glob("joblog_*.out")}


@pytest.mark.parametrize("info,log,cause", [
    (SACCT_X["1"], LOG["completed"], None),
    (SCTL["running"], "", None),
    (SCTL["pending_resources"], "", None),
    (SACCT_X["2"], LOG["failed"], "error"),
    (SCTL["failed"], LOG["failed"], "error"),
    (SACCT_X["3"], "", "launch"),          # sacct: no reason, but signal 53 and no log
    (SCTL["launch_failed"], "", "launch"),
    (SACCT_X["4"], LOG["oom"], "oom"),
    (SCTL["out_of_memory"], "", "oom"),
    (SACCT_X["5"], "", "dependency"),
    (SACCT_X["6"], "", "dependency"),      # sacct loses the reason: plain CANCELLED, never ran
    (SACCT_X["6"].model_copy(update={"reason": "Dependency"}), "", "dependency"),  # also seen live
    (SCTL["cancelled_invalid_dependency"], "", "dependency"),
    (SQUEUE_ALL["6"], "", "dependency"),
    (SACCT_X["9"], LOG["cancelled"], "cancelled"),
    (SCTL["cancelled"], LOG["cancelled"], "cancelled"),
    (SACCT_X["12"], "", "cancelled"),
    (SCTL["cancelled_while_pending"], "", "cancelled"),
    (SQUEUE_ALL["12"], "", "cancelled"),
    (SACCT_X["10"], LOG["timeout"], "timeout"),
    (SCTL["timeout"], LOG["timeout"], "timeout"),
    (SCTL["memory_killed_no_cgroup"], LOG["memory_killed_no_cgroup"], "oom"),  # Reason lies: JobLaunchFailure
    (parse_sacct(read("sacct_X_P_n_memory_killed_no_cgroup.txt"))["13"], LOG["memory_killed_no_cgroup"], "oom"),
])
def test_classify_recorded(info: JobInfo, log: str, cause: str | None) -> None:
    assert classify_failure(info, log) == cause


@pytest.mark.parametrize("raw,tail,cause", [
    ("FAILED", "Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "oom"),
    ("FAILED", "torch.cuda.OutOfMemoryError: boom", "oom"),
    ("FAILED", "RuntimeError: CUDA out of memory.", "oom"),
    ("FAILED", "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=4.batch.", "oom"),
    ("FAILED", "KeyError: 'input'", "error"),
    ("NODE_FAIL", "", "node"), ("PREEMPTED", "", "node"), ("BOOT_FAIL", "", "node"),
    ("DEADLINE", "", "timeout"), ("TIMEOUT", "CUDA out of memory", "timeout"),
    ("OUT_OF_MEMORY", "", "oom"), ("CANCELLED by 1000", "", "cancelled"), ("SPECIAL_EXIT", "", "error"),
])
def test_classify_synthetic(raw: str, tail: str, cause: str) -> None:
    info = J("1", "x", map_state(raw), raw, "1:0", None, "n1", 10.0)
    assert classify_failure(info, tail) == cause


def test_read_log_tail(tmp_path: Path) -> None:
    assert read_log_tail(tmp_path / "missing.out") == ""
    log = tmp_path / "slurm-1.out"
    log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(10000)) + b"CUDA out of memory \xff\n")
    tail = read_log_tail(log, n_bytes=100)
    assert tail.startswith("line ") and tail.endswith("CUDA out of memory \ufffd\n") and len(tail) <= 100
    assert read_log_tail(log).count("\n") < 10000
    assert read_log_tail(tmp_path / "missing.out", 10) == ""


def test_long_id_lists_are_split_for_the_command_line() -> None:
    from tasks.backends.slurm._backend import _chunks, _missing

    ids = [str(1_000_000 + i) for i in range(30_000)]
    chunks = _chunks(ids)
    assert len(chunks) == 3 and all(len(c) <= 100_000 for c in chunks)
    assert ",".join(chunks).split(",") == ids
    assert _chunks(["1", "2"]) == ["1,2"] and _chunks([]) == []
    found = parse_sacct(read("sacct_X_P_n.txt"))
    assert _missing(["1", "7", "7_1", "8", "99"], found) == ["8", "99"]  # 7 = array job 7_0, 7_1
