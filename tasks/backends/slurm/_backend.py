"""The SLURM backend: sbatch / sacct / squeue / scontrol / scancel, every call without a shell.

Reads: the stdout/stderr of those commands (through `_run`). Writes: nothing itself; `sbatch`
writes the job's log where the script says.

Status queries are batched: `query(ids)` is ONE `sacct -X -P -n -j a,b,c` call. When sacct
fails (accounting disabled, slurmdbd down) the backend remembers that for
`ACCOUNTING_RETRY_S` and uses ONE `squeue -h -t all -j a,b,c -O ...` instead (it lists
finished jobs too while slurmctld keeps them, MinJobAge, and gives their exit status), plus
`scontrol show job -o ID` only for ids squeue did not list. Every one of these commands
counts in `self.calls` (`self.calls_by_command` splits them up).

Seen on SLURM 22.05: for about 1.5 s after a job ends, sacct may print the placeholder
JobName "allocation" (state and exit code already right); `jobs_named` therefore takes the
name from squeue when both list a job.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Collection, Iterable
from pathlib import Path

from tasks.backends._base import JobInfo, JobOverrides, SubmitError
from tasks.backends.slurm._parse import (
    SACCT_FIELDS,
    SACCT_NAMED_FIELDS,
    SQUEUE_COLUMNS,
    SQUEUE_FORMAT,
    SQUEUE_NAMED_COLUMNS,
    SQUEUE_NAMED_FORMAT,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
)

ACCOUNTING_RETRY_S = 300.0  # after sacct failed, use squeue/scontrol for this long
COMMAND_TIMEOUT_S = 60.0

# sbatch stderr that means "try again later" (controller busy/unreachable, queue full)
_TRANSIENT = re.compile(
    r"Socket timed out|Unable to contact slurm controller|Resource temporarily unavailable"
    r"|MaxSubmitJob|Slurm temporarily unable to accept job|Slurmctld is busy|Communication connection failure"
    r"|Zero Bytes were transmitted|Connection refused|Connection timed out|Transport endpoint",
    re.IGNORECASE,
)
_JOB_ID = re.compile(r"^\d+(_\d+)?$")


def override_args(overrides: JobOverrides | None) -> list[str]:
    """Sbatch options for a retry's overrides (command-line options win over `#SBATCH` lines)."""
    if overrides is None:
        return []
    args = [f"--time={overrides.time_limit}"] if overrides.time_limit else []
    if overrides.exclude_nodes:
        args.append("--exclude=" + ",".join(overrides.exclude_nodes))
    return args


def parse_job_id(stdout: str) -> str | None:
    """`sbatch --parsable` prints `ID` or `ID;cluster`."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";", 1)[0].strip()
    return job_id if _JOB_ID.fullmatch(job_id) else None


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
        """Whether sacct is tried: not until `accounting_retry_s` after it last failed."""
        return time.monotonic() >= self._no_accounting_until

    def _sacct(self, selector: list[str], with_work_dir: bool = False) -> dict[str, JobInfo] | None:
        """Sacct output parsed, or None when accounting is unavailable (remembered for a while)."""
        if not self.accounting_available:
            return None
        fields = (*self.sacct_fields, *SACCT_NAMED_FIELDS) if with_work_dir else self.sacct_fields
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
               overrides: JobOverrides | None = None, script_args: list[str] | None = None,
               sbatch_args: list[str] | None = None) -> str:
        """Sbatch `script` (given `script_args`) from `cwd`; `sbatch_args`: raw options (tests speak SLURM)."""
        argv = ["sbatch", "--parsable"]
        if after_ok:
            argv += ["--dependency=afterok:" + ":".join(after_ok), "--kill-on-invalid-dep=yes"]
        argv += [*override_args(overrides), *(sbatch_args or []), str(script), *(script_args or [])]
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

    def query(self, job_ids: list[str], recent: Collection[str] = ()) -> dict[str, JobInfo]:
        """The jobs' current states, from as few SLURM calls as possible.

        ONE sacct call, plus one squeue for ids sacct does not know yet, unless all of those are
        `recent` (submitted moments ago: slurmdbd records them a little later, and they are
        simply left out); without accounting: one squeue + one scontrol per id squeue no longer
        lists. (More than ~12,000 ids are split into several calls: Linux caps one argument at 128 KiB.)
        """
        ids = list(dict.fromkeys(str(i) for i in job_ids))
        settling = {str(i) for i in recent}
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
        if from_sacct:
            missing = [i for i in missing if i not in settling]
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
        """Jobs of this user with these names, by name.

        From squeue (queued + recently ended) and, when accounting works, sacct over the last
        7 days (it wins for jobs both know).
        """
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
