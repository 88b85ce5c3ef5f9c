"""The SLURM backend: sbatch / sacct / squeue / scontrol / scancel, plus their text parsers.

Reads: the stdout/stderr of those commands (every call goes through `_run`, never a shell).
Writes: nothing itself; `sbatch` writes the job's log where the script says.

Status queries are batched: `query(ids)` is ONE `sacct -X -P -n -j a,b,c` call. When sacct
fails (accounting disabled, slurmdbd down) the backend remembers that for
`ACCOUNTING_RETRY_S` and uses ONE `squeue -h -t all -j a,b,c -O ...` instead (it lists
finished jobs too while slurmctld keeps them, MinJobAge, and gives their exit status), plus
`scontrol show job -o ID` only for ids squeue did not list. Every one of these commands
counts in `self.calls` (`self.calls_by_command` splits them up).

Seen on SLURM 22.05: for about 1.5 s after a job ends, sacct may print the placeholder
JobName "allocation" (state and exit code already right); `jobs_named` therefore takes the
name from squeue when both list a job.

State mapping (`map_state`), SLURM -> sweepflow:
  PENDING, CONFIGURING, REQUEUED, REQUEUE_FED, REQUEUE_HOLD, RESV_DEL_HOLD     -> pending
  RUNNING, COMPLETING, RESIZING, SUSPENDED, STOPPED, SIGNALING, STAGE_OUT     -> running
  COMPLETED                                                                   -> completed
  FAILED, OUT_OF_MEMORY, TIMEOUT, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE,
  SPECIAL_EXIT                                                                -> failed
  CANCELLED, "CANCELLED by <uid>", REVOKED                                    -> cancelled
  PENDING with Reason DependencyNeverSatisfied                                -> cancelled
      (it will never run: SLURM keeps it queued forever unless --kill-on-invalid-dep; the
      JobInfo keeps raw_state "PENDING" and that reason, so a caller seeing status
      "cancelled" with raw_state "PENDING" knows it must still `cancel()` it)
  anything else (a state a newer SLURM adds)                                  -> pending
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tasks.execution.backends.base import JobInfo, JobStatus, SubmitError
from tasks.execution.backends.outcomes import classify_failure, read_log_tail  # re-exported

__all__ = [
    "SlurmBackend", "parse_sacct", "parse_squeue", "parse_scontrol", "map_state", "parse_elapsed",
    "parse_job_id", "is_transient_submit_error", "classify_failure", "read_log_tail",
]

SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Elapsed", "MaxRSS", "NodeList", "Reason")
# `squeue -o` columns of the recorded fixtures: '%i|%j|%T|%r|%M|%l|%N'
SQUEUE_O_COLUMNS = ("JobID", "JobName", "State", "Reason", "Elapsed", "TimeLimit", "NodeList")
SQUEUE_O_FORMAT = "%i|%j|%T|%r|%M|%l|%N"
# what the backend asks squeue for: `-O` (unlike `-o`) can print the exit status
SQUEUE_COLUMNS = ("JobID", "JobName", "State", "Reason", "Elapsed", "ExitStatus", "NodeList")
SQUEUE_FORMAT = "JobArrayID:0|,Name:0|,State:0|,Reason:0|,TimeUsed:0|,exit_code:0|,NodeList:0"
# The duplicate guard also asks where each job was submitted from (run names repeat across run
# groups); the folder comes last and is the one free-text column there (the names are ours).
SQUEUE_NAMED_COLUMNS = (*SQUEUE_COLUMNS, "WorkDir")
SQUEUE_NAMED_FORMAT = SQUEUE_FORMAT + "|,WorkDir:0"

ACCOUNTING_RETRY_S = 300.0  # after sacct failed, use squeue/scontrol for this long
COMMAND_TIMEOUT_S = 60.0

_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD"}
_RUNNING = {"RUNNING", "COMPLETING", "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}
_FAILED = {
    "FAILED", "OUT_OF_MEMORY", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT",
}
_CANCELLED = {"CANCELLED", "REVOKED"}
NEVER_RUNS = "DependencyNeverSatisfied"

# sbatch stderr that means "try again later" (controller busy/unreachable, queue full)
_TRANSIENT = re.compile(
    r"Socket timed out|Unable to contact slurm controller|Resource temporarily unavailable"
    r"|MaxSubmitJob|Slurm temporarily unable to accept job|Slurmctld is busy|Communication connection failure"
    r"|Zero Bytes were transmitted|Connection refused|Connection timed out|Transport endpoint",
    re.IGNORECASE,
)
_JOB_ID = re.compile(r"^\d+(_\d+)?$")
_ELAPSED = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


# ---------------------------------------------------------------------------- pure parsers


def map_state(raw: str, reason: str | None = None) -> JobStatus:
    """sweepflow's status for a SLURM state (`CANCELLED by 0` and `CANCELLED+` included)."""
    base = raw.strip().split(" ", 1)[0].rstrip("+").upper() if raw else ""
    if base == "PENDING" and reason == NEVER_RUNS:
        return "cancelled"
    if base in _PENDING:
        return "pending"
    if base in _RUNNING:
        return "running"
    if base == "COMPLETED":
        return "completed"
    if base in _FAILED:
        return "failed"
    if base in _CANCELLED:
        return "cancelled"
    return "pending"


def parse_elapsed(text: str | None) -> float | None:
    """Seconds of `[D-][HH:]MM:SS[.mmm]` (sacct Elapsed, squeue %M, scontrol RunTime)."""
    match = _ELAPSED.match((text or "").strip())
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def _clean(value: str | None) -> str | None:
    """SLURM's ways of saying "nothing" become None."""
    value = (value or "").strip()
    return None if value in {"", "None", "None assigned", "(null)", "N/A", "Unknown"} else value


def _split(line: str, n_fields: int, free_index: int | None) -> list[str] | None:
    """Split a `|` line; the one free-text column holding `|` is glued back together."""
    parts = line.split("|")
    extra = len(parts) - n_fields
    if extra > 0 and free_index is not None:
        parts[free_index : free_index + extra + 1] = ["|".join(parts[free_index : free_index + extra + 1])]
    return parts if len(parts) == n_fields else None


def _free_column(at: dict[str, int]) -> int | None:
    """The column that may hold `|`: the submit folder when asked for, else the job name."""
    return at.get("WorkDir", at.get("JobName"))


def _info(job_id: str, name: str | None, state: str, exit_code: str | None, elapsed: str | None,
          node: str | None, reason: str | None, max_rss: str | None = None, work_dir: str | None = None) -> JobInfo:
    reason = _clean(reason)
    return JobInfo(
        job_id=job_id, name=_clean(name), status=map_state(state, reason), raw_state=state.strip(),
        exit_code=_clean(exit_code), reason=reason, node=_clean(node), elapsed_s=parse_elapsed(elapsed),
        max_rss=_clean(max_rss), work_dir=_clean(work_dir),
    )


def parse_sacct(text: str, fields: Iterable[str] = SACCT_FIELDS) -> dict[str, JobInfo]:
    """`sacct -P -n -o FIELDS` output -> JobInfo per job (array tasks as `ID_TASK`).

    Step lines (`ID.batch`, `ID.0`) are not jobs: they only lend their MaxRSS to the job.
    `fields` must include JobID and State; the others are optional.
    """
    cols = list(fields)
    at = {name: i for i, name in enumerate(cols)}
    jobs: dict[str, JobInfo] = {}
    step_rss: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = _split(line, len(cols), _free_column(at))
        if parts is None:
            continue

        def get(field: str, parts: list[str] = parts) -> str | None:
            return parts[at[field]] if field in at else None

        job_id = parts[at["JobID"]].strip()
        if "." in job_id:
            rss = _clean(get("MaxRSS"))
            if rss:
                step_rss[job_id.split(".", 1)[0]] = rss
            continue
        jobs[job_id] = _info(job_id, get("JobName"), parts[at["State"]], get("ExitCode"), get("Elapsed"),
                             get("NodeList"), get("Reason"), get("MaxRSS"), get("WorkDir"))
    for job_id, rss in step_rss.items():
        if job_id in jobs and jobs[job_id].max_rss is None:
            jobs[job_id] = jobs[job_id].model_copy(update={"max_rss": rss})
    return jobs


def _exit_status(raw: str | None) -> str | None:
    """squeue's `exit_code` is the raw wait status (768 = exit 3): -> scontrol's `rc:sig`."""
    raw = (raw or "").strip()
    if not raw.isdigit():
        return None
    status = int(raw)
    return f"0:{status & 0x7F}" if status & 0x7F else f"{status >> 8}:0"


def parse_squeue(text: str, columns: Iterable[str] = SQUEUE_COLUMNS) -> dict[str, JobInfo]:
    """`squeue -h` output with `|`-separated `columns` (see SQUEUE_COLUMNS / SQUEUE_O_COLUMNS)."""
    cols = list(columns)
    at = {name: i for i, name in enumerate(cols)}
    jobs: dict[str, JobInfo] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = _split(line.rstrip("\n"), len(cols), _free_column(at))
        if parts is None:
            continue

        def get(field: str, parts: list[str] = parts) -> str | None:
            return parts[at[field]] if field in at else None

        job_id = parts[at["JobID"]].strip()
        jobs[job_id] = _info(job_id, get("JobName"), parts[at["State"]], _exit_status(get("ExitStatus")),
                             get("Elapsed"), get("NodeList"), get("Reason"), work_dir=get("WorkDir"))
    return jobs


_SCONTROL_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:]*)=")


def scontrol_fields(line: str) -> dict[str, str]:
    """One `scontrol show job -o` line -> {Key: Value}; values may contain spaces."""
    matches = list(_SCONTROL_KEY.finditer(line))
    fields: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        fields.setdefault(match.group(1), line[match.end() : end].strip())
    return fields


def parse_scontrol(text: str) -> dict[str, JobInfo]:
    """`scontrol show job -o` output (one line per job or array task) -> JobInfo by id."""
    jobs: dict[str, JobInfo] = {}
    for line in text.splitlines():
        f = scontrol_fields(line)
        if "JobId" not in f or "JobState" not in f:
            continue
        task = _clean(f.get("ArrayTaskId"))
        job_id = f"{f['ArrayJobId']}_{task}" if task and f.get("ArrayJobId") else f["JobId"]
        jobs[job_id] = _info(job_id, f.get("JobName"), f["JobState"], f.get("ExitCode"), f.get("RunTime"),
                             f.get("NodeList"), f.get("Reason"), work_dir=f.get("WorkDir"))
    return jobs


def parse_job_id(stdout: str) -> str | None:
    """`sbatch --parsable` prints `ID` or `ID;cluster`."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";", 1)[0].strip()
    return job_id if _JOB_ID.match(job_id) else None


def is_transient_submit_error(stderr: str) -> bool:
    """True when sbatch failed for a reason that may go away (busy controller, full queue)."""
    return bool(_TRANSIENT.search(stderr))


# ---------------------------------------------------------------------------- the backend


def _run(argv: list[str], env: dict[str, str] | None, cwd: Path | None = None,
         timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run one SLURM command; a missing command or a hang becomes a failed result, not a raise."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as error:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: not found ({error.strerror})")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]}: Socket timed out (no answer in {timeout:.0f} s)")


class SlurmBackend:
    """The `Backend` protocol on a real SLURM cluster."""

    name = "slurm"

    def __init__(self, env: dict[str, str] | None = None, sacct_fields: Iterable[str] = SACCT_FIELDS,
                 accounting_retry_s: float = ACCOUNTING_RETRY_S):
        self.env = {**os.environ, **env} if env is not None else None
        self.sacct_fields = tuple(sacct_fields)
        self.accounting_retry_s = accounting_retry_s
        self.calls = 0  # status commands (sacct, squeue, scontrol) run so far
        self.calls_by_command: Counter[str] = Counter()
        self._no_accounting_until = 0.0  # time.monotonic() before which sacct is not tried
        self.accounting_error: str | None = None

    def _status_cmd(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls += 1
        self.calls_by_command[argv[0]] += 1
        return _run(argv, self.env)

    @property
    def accounting_available(self) -> bool:
        return time.monotonic() >= self._no_accounting_until

    def _sacct(self, selector: list[str], with_work_dir: bool = False) -> dict[str, JobInfo] | None:
        """sacct output parsed, or None when accounting is unavailable (remembered for a while)."""
        if not self.accounting_available:
            return None
        fields = (*self.sacct_fields, "WorkDir") if with_work_dir else self.sacct_fields
        proc = self._status_cmd(["sacct", "-X", "-P", "-n", *selector, "-o", ",".join(fields)])
        if proc.returncode != 0:
            self.accounting_error = (proc.stderr or proc.stdout).strip() or f"sacct exited {proc.returncode}"
            self._no_accounting_until = time.monotonic() + self.accounting_retry_s
            return None
        return parse_sacct(proc.stdout, fields)

    def _squeue(self, selector: list[str], with_work_dir: bool = False) -> dict[str, JobInfo]:
        fmt, columns = (SQUEUE_NAMED_FORMAT, SQUEUE_NAMED_COLUMNS) if with_work_dir else (SQUEUE_FORMAT, SQUEUE_COLUMNS)
        proc = self._status_cmd(["squeue", "-h", "-t", "all", *selector, "-O", fmt])
        # every id unknown: exit 1 "Invalid job id specified" -> simply nothing listed
        return parse_squeue(proc.stdout, columns) if proc.returncode == 0 else {}

    def submit(self, script: Path, cwd: Path, after_ok: list[str] | None = None,
               extra_args: list[str] | None = None) -> str:
        argv = ["sbatch", "--parsable"]
        if after_ok:
            argv += ["--dependency=afterok:" + ":".join(after_ok), "--kill-on-invalid-dep=yes"]
        argv += [*(extra_args or []), str(script)]
        if not Path(cwd).is_dir():
            raise SubmitError(f"sbatch {script}: the submit folder {cwd} does not exist", transient=False)
        proc = _run(argv, self.env, cwd=Path(cwd))
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}")
            raise SubmitError(f"sbatch {script} failed (exit {proc.returncode}): {detail}",
                              transient=is_transient_submit_error(detail))
        job_id = parse_job_id(proc.stdout)
        if job_id is None:
            raise SubmitError(f"sbatch {script} printed no job id: {proc.stdout.strip()!r} {proc.stderr.strip()}")
        return job_id

    def query(self, job_ids: list[str]) -> dict[str, JobInfo]:
        """ONE sacct call (+ one squeue for ids sacct does not know yet, e.g. just submitted);
        without accounting: one squeue + one scontrol per id squeue no longer lists.
        (More than ~12,000 ids are split into several calls: Linux caps one argument at 128 KiB.)"""
        ids = list(dict.fromkeys(str(i) for i in job_ids))
        if not ids:
            return {}
        found: dict[str, JobInfo] = {}
        from_sacct = True
        for chunk in _chunks(ids):
            part = self._sacct(["-j", chunk])
            if part is None:
                from_sacct = False
                break
            found.update(part)
        missing = _missing(ids, found)
        if missing:
            for chunk in _chunks(missing):
                found.update(self._squeue(["-j", chunk]))
            if not from_sacct:
                for job_id in _missing(missing, found):
                    proc = self._status_cmd(["scontrol", "show", "job", "-o", job_id])
                    if proc.returncode == 0:
                        found.update(parse_scontrol(proc.stdout))
        return found

    def jobs_named(self, names: list[str]) -> dict[str, list[JobInfo]]:
        """Jobs of this user with these names: squeue (queued + recently ended) and, when
        accounting works, sacct over the last 7 days (it wins for jobs both know)."""
        wanted = [n for n in dict.fromkeys(names) if n]
        if not wanted:
            return {}
        by_id = self._squeue(["--me", "--name=" + ",".join(wanted)], with_work_dir=True)
        accounted = self._sacct(["--name=" + ",".join(wanted), "-S", "now-7days"], with_work_dir=True)
        for job_id, info in (accounted or {}).items():
            live = by_id.get(job_id)
            if live is None:
                by_id[job_id] = info
            elif live.status in {"completed", "failed", "cancelled"}:
                # sacct has "CANCELLED by uid"; squeue has the real name (see the docstring)
                by_id[job_id] = info.model_copy(update={"name": live.name, "work_dir": info.work_dir or live.work_dir})
        result: dict[str, list[JobInfo]] = {n: [] for n in wanted}
        for info in sorted(by_id.values(), key=lambda i: _id_key(i.job_id)):
            if info.name in result:
                result[info.name].append(info)
        return {n: jobs for n, jobs in result.items() if jobs}

    def cancel(self, job_ids: list[str]) -> None:
        """`scancel` them all in one call; ids that already ended are not an error."""
        ids = [str(i) for i in job_ids]
        if not ids:
            return
        proc = _run(["scancel", *ids], self.env)
        errors = [ln for ln in proc.stderr.splitlines()
                  if ln.strip() and not re.search(r"already completing or completed|Invalid job id", ln)]
        if proc.returncode != 0 and errors:
            raise RuntimeError(f"scancel {' '.join(ids)} failed (exit {proc.returncode}): {' '.join(errors)}")


def _missing(ids: list[str], found: dict[str, JobInfo]) -> list[str]:
    """Ids not in `found`; an array job id counts as found when any of its tasks is."""
    arrays = {k.split("_", 1)[0] for k in found if "_" in k}
    return [i for i in ids if i not in found and i not in arrays]


def _chunks(ids: list[str], max_chars: int = 100_000) -> list[str]:
    """Comma-joined groups of ids, each short enough for one command-line argument."""
    groups: list[str] = []
    current: list[str] = []
    size = 0
    for job_id in ids:
        if current and size + len(job_id) + 1 > max_chars:
            groups.append(",".join(current))
            current, size = [], 0
        current.append(job_id)
        size += len(job_id) + 1
    return [*groups, ",".join(current)] if current else groups


def _id_key(job_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", job_id)) or (0,)
