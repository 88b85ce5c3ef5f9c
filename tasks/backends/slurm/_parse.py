"""Parsers of SLURM's command output: sacct, squeue, scontrol (pure functions, no commands run).

Reads: the text those commands print (recorded real outputs in tests/fixtures/slurm back each
parser). Writes: nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from tasks.backends._base import JobInfo
from tasks.backends.slurm._states import base_state, map_state
from tasks.core._durations import parse_duration

SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Elapsed", "MaxRSS", "NodeList", "Reason")
# `squeue -o` columns of the recorded fixtures: '%i|%j|%T|%r|%M|%l|%N'
SQUEUE_O_COLUMNS = ("JobID", "JobName", "State", "Reason", "Elapsed", "TimeLimit", "NodeList")
SQUEUE_O_FORMAT = "%i|%j|%T|%r|%M|%l|%N"
# what the backend asks squeue for: `-O` (unlike `-o`) can print the exit status
SQUEUE_COLUMNS = ("JobID", "JobName", "State", "Reason", "Elapsed", "ExitStatus", "NodeList")
SQUEUE_FORMAT = "JobArrayID:0|,Name:0|,State:0|,Reason:0|,TimeUsed:0|,exit_code:0|,NodeList:0"
# The duplicate guard also asks where each job was submitted from (run names repeat across run
# groups); the folder comes last and is the one free-text column there (the names are ours).
# and when it was submitted and started (an adopted job's attempt keeps the scheduler's times).
SQUEUE_NAMED_COLUMNS = (*SQUEUE_COLUMNS, "Submit", "Start", "WorkDir")
SQUEUE_NAMED_FORMAT = SQUEUE_FORMAT + "|,SubmitTime:0|,StartTime:0|,WorkDir:0"
SACCT_NAMED_FIELDS = ("Submit", "Start", "WorkDir")  # after the query's own fields


def parse_elapsed(text: str | None) -> float | None:
    """Seconds of `[D-][HH:]MM:SS[.mmm]` (sacct Elapsed, squeue %M, scontrol RunTime)."""
    if text and ":" not in text:
        return None  # a bare number is a time limit's minutes, never an elapsed time
    return parse_duration(text)


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


def slurm_time(text: str | None) -> str | None:
    """SLURM's `2026-12-06T04:00:48` (the cluster's local time) as ISO 8601 UTC; None for Unknown/None."""
    value = _clean(text)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="seconds")
    except ValueError:
        return None


def _free_column(at: dict[str, int]) -> int | None:
    """The column that may hold `|`: the submit folder when asked for, else the job name."""
    return at.get("WorkDir", at.get("JobName"))


def _info(job_id: str, name: str | None, state: str, exit_code: str | None, elapsed: str | None,
          node: str | None, reason: str | None, max_rss: str | None = None, work_dir: str | None = None,
          submitted: str | None = None, started: str | None = None) -> JobInfo:
    reason = _clean(reason)
    status = map_state(state, reason)
    return JobInfo(
        job_id=job_id, name=_clean(name), status=status, raw_state=state.strip(),
        held=status == "cancelled" and base_state(state) == "PENDING",  # DependencyNeverSatisfied
        exit_code=_clean(exit_code), reason=reason, node=_clean(node), elapsed_s=parse_elapsed(elapsed),
        max_rss=_clean(max_rss), work_dir=_clean(work_dir), submitted=slurm_time(submitted),
        started=slurm_time(started),
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
                             get("NodeList"), get("Reason"), get("MaxRSS"), get("WorkDir"),
                             get("Submit"), get("Start"))
    for job_id, rss in step_rss.items():
        if job_id in jobs and jobs[job_id].max_rss is None:
            jobs[job_id] = jobs[job_id].model_copy(update={"max_rss": rss})
    return jobs


def _exit_status(raw: str | None) -> str | None:
    """Squeue's `exit_code` is the raw wait status (768 = exit 3): -> scontrol's `rc:sig`."""
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
                             get("Elapsed"), get("NodeList"), get("Reason"), work_dir=get("WorkDir"),
                             submitted=get("Submit"), started=get("Start"))
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
