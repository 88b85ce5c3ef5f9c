"""The local backend: runs the generated `.slurm` scripts as `bash SCRIPT` on this machine.

It speaks SLURM's vocabulary (ids, states, exit codes `rc:sig`, reasons) and follows its semantics;
its job files are SLURM's (`tasks.backends.slurm.SLURM_NAMING`). A subclass may read another
header (`directive`), name its files otherwise (`naming`) and give its jobs other variables
(`job_vars`): the runner itself never looks at a file name.

Reads/writes, all under `state_dir`:
  jobs/<id>.json      one record per job (written atomically; any process may `query` them)
  jobs/<id>.env.json  the submitter's environment (mode 0600), given to the job as sbatch does;
                      removed as soon as the job starts or ends otherwise (no secret stays at rest)
  watch.log           the watchers' own errors, if any
  next_id             the next job id (so ids keep increasing across restarts)
  config.json         {"max_parallel": N}, written by `submit`
  lock                every change to the records happens under an exclusive flock on it
and each job's log `cwd/slurm-<id>.out` (or the script's `#SBATCH --output`, `%j`/`%x` expanded).

Design (no scheduler daemon, no PID file): every RUNNING job has one watcher process,
`python -m tasks.backends.local run-job STATE_DIR ID`, started with setsid. The watcher runs
the script in its own process group, enforces the time limit (SIGTERM, then SIGKILL after
`KILL_WAIT_S`: state TIMEOUT, reason TimeLimit, exit 0:15), records the end, and then runs the
scheduling step `_advance`: start PENDING jobs whose afterok parents all COMPLETED (at most
max_parallel RUNNING), cancel those whose parent ended any other way (state CANCELLED, reason
DependencyNeverSatisfied, as SLURM with --kill-on-invalid-dep=yes), mark RUNNING jobs whose
watcher died as NODE_FAIL. `submit`, `query` and `cancel` run the same step, so the queue
moves on whether or not anybody polls, and recovers after a crash on the next call.

Time limits: `#SBATCH --time=` (overridden by a retry's `JobOverrides`) in every SLURM format;
unlike SLURM, `M:SS` seconds are honoured exactly (tests use `--time=0:02`), and the
environment variable SWEEPFLOW_LOCAL_TIME_SCALE (a float, default 1) multiplies every limit.
Other sbatch options (--exclude, --gres, --mem, ...) are accepted and ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.backends._base import BackendKind, JobInfo, JobOverrides, SubmitError
from tasks.backends.slurm._backend import override_args
from tasks.backends.slurm._kind import SLURM
from tasks.backends.slurm._states import FINISHED, base_state, map_state
from tasks.core._durations import parse_duration
from tasks.core._files import atomic_write_text
from tasks.core._repo import REPO_ROOT

ROOT = REPO_ROOT
TIME_SCALE_ENV = "SWEEPFLOW_LOCAL_TIME_SCALE"
KILL_WAIT_S = 5.0
NODE = "localhost"
_children: list[subprocess.Popen[bytes]] = []  # watchers this process started (reaped in _advance)


_OPTION = re.compile(r"^(--[a-z-]+|-[A-Za-z])(?:=(.*))?$")
_ALIASES = {"-J": "--job-name", "-t": "--time", "-o": "--output"}


def script_options(script_text: str, extra_args: list[str] | None = None, directive: str = "#SBATCH") -> dict[str, str]:
    """The sbatch options of a script's header (`directive` lines), overridden by `extra_args`."""
    tokens: list[str] = []
    for line in script_text.splitlines():
        stripped = line.strip()
        if stripped.startswith(directive):
            tokens += stripped[len(directive):].split()
        elif stripped and not stripped.startswith("#"):
            break  # sbatch stops reading directives at the first command
    tokens += list(extra_args or [])
    options: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        match = _OPTION.match(tokens[i])
        if match:
            key, value = _ALIASES.get(match.group(1), match.group(1)), match.group(2)
            if value is None and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                value, i = tokens[i + 1], i + 1
            options[key] = value if value is not None else ""
        i += 1
    return options


def _write_private(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _alive(pid: int | None) -> bool:
    """Is this watcher process still there (not a zombie, not a reused pid)? Needs /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text() if pid else ""
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
    except OSError:
        return False
    return bool(stat) and stat.rsplit(")", 1)[-1].split()[0] != "Z" and b"tasks.backends.local" in cmdline


def _killpg(pgid: int | None, sig: int) -> None:
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


class _Store:
    """The job records in `state_dir`; change them only inside `with store.lock():`."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir)
        self.jobs = self.dir / "jobs"
        self.jobs.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with open(self.dir / "lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.jobs / f"{job_id}.json").read_text())
        except (OSError, ValueError):
            return None

    def write(self, record: dict[str, Any]) -> None:
        atomic_write_text(self.jobs / f"{record['job_id']}.json", json.dumps(record, indent=1))

    def all(self) -> list[dict[str, Any]]:
        records = [self.read(p.stem) for p in self.jobs.glob("*.json") if not p.name.endswith(".env.json")]
        return sorted((r for r in records if r), key=lambda r: int(r["job_id"]))

    def next_id(self) -> str:
        path = self.dir / "next_id"
        try:
            value = int(path.read_text().strip())
        except (OSError, ValueError):
            value = max((int(r["job_id"]) for r in self.all()), default=0) + 1
        atomic_write_text(path, f"{value + 1}\n")
        return str(value)

    def max_parallel(self) -> int:
        try:
            return max(1, int(json.loads((self.dir / "config.json").read_text())["max_parallel"]))
        except (OSError, ValueError, KeyError, TypeError):
            return 2


def _end(record: dict[str, Any], state: str, reason: str | None, exit_code: str) -> None:
    record.update(state=state, reason=reason, exit_code=exit_code, end_time=time.time())


def _forget_env(store: _Store, job_id: str) -> None:
    """Remove the job's saved environment (tokens and all): read once by its watcher, or never needed."""
    with contextlib.suppress(FileNotFoundError):
        (store.jobs / f"{job_id}.env.json").unlink()


def _advance(store: _Store) -> None:
    """One scheduling step (call with the lock held)."""
    _children[:] = [p for p in _children if p.poll() is None]
    records = {r["job_id"]: r for r in store.all()}
    for rec in records.values():
        if rec["state"] == "RUNNING" and not _alive(rec.get("watcher_pid")):
            _killpg(rec.get("job_pgid"), signal.SIGKILL)
            _end(rec, "NODE_FAIL", "NodeFail", "0:9")
            store.write(rec)
            _forget_env(store, rec["job_id"])
    changed = True
    while changed:  # a cancelled job's own dependents are cancelled too
        changed = False
        for rec in records.values():
            if rec["state"] != "PENDING":
                continue
            parents = [records.get(p) for p in rec.get("after_ok", [])]
            if any(p is None or (base_state(p["state"]) in FINISHED and p["state"] != "COMPLETED") for p in parents):
                _end(rec, "CANCELLED", "DependencyNeverSatisfied", "0:0")
                store.write(rec)
                _forget_env(store, rec["job_id"])
                changed = True
    running = sum(1 for r in records.values() if r["state"] == "RUNNING")
    for rec in records.values():
        if running >= store.max_parallel():
            break
        if rec["state"] != "PENDING":
            continue
        if all(records[p]["state"] == "COMPLETED" for p in rec.get("after_ok", [])):
            log = open(store.dir / "watch.log", "ab")  # noqa: SIM115 - handed to the child
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            watcher = subprocess.Popen(
                [sys.executable, "-m", "tasks.backends.local", "run-job", str(store.dir), rec["job_id"]],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
            log.close()
            _children.append(watcher)
            rec.update(state="RUNNING", reason=None, start_time=time.time(), watcher_pid=watcher.pid, node=NODE)
            store.write(rec)
            running += 1


def _iso(stamp: float | None) -> str | None:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds") if stamp else None


def _info(rec: dict[str, Any]) -> JobInfo:
    start, end = rec.get("start_time"), rec.get("end_time")
    elapsed = (end or time.time()) - start if start else 0.0
    return JobInfo(
        job_id=rec["job_id"], name=rec.get("name"), status=map_state(rec["state"], rec.get("reason")),
        raw_state=rec["state"], exit_code=rec.get("exit_code"), reason=rec.get("reason"),
        node=rec.get("node"), elapsed_s=round(max(elapsed, 0.0), 3), work_dir=rec.get("cwd"),
        submitted=_iso(rec.get("submit_time")), started=_iso(start),
    )


def _sbatch_vars(job_id: str, name: str, cwd: str) -> dict[str, str]:
    """The variables sbatch gives a job."""
    return {"SLURM_JOB_ID": job_id, "SLURM_JOBID": job_id, "SLURM_JOB_NAME": name, "SLURM_SUBMIT_DIR": cwd,
            "SLURM_JOB_NODELIST": NODE}


class LocalBackend:
    """The `Backend` protocol without SLURM (see the module docstring)."""

    name = "local"
    naming = SLURM.naming
    directive = "#SBATCH"  # the header lines the options are read from

    def job_vars(self, job_id: str, name: str, cwd: Path) -> dict[str, str]:
        """The variables a job finds in its environment (kept in its record for the watcher)."""
        return _sbatch_vars(job_id, name, str(cwd))

    def __init__(self, state_dir: Path, max_parallel: int = 2):
        self.store = _Store(Path(state_dir))
        self.max_parallel = max_parallel
        self.calls = 0

    def submit(self, script: Path, cwd: Path, after_ok: list[str] | None = None,
               overrides: JobOverrides | None = None, script_args: list[str] | None = None,
               sbatch_args: list[str] | None = None) -> str:
        """Queue `script` (run with `script_args`) as sbatch would; `sbatch_args`: raw sbatch options (tests)."""
        extra_args = [*override_args(overrides), *(sbatch_args or [])]
        cwd = Path(cwd).resolve()
        path = script if Path(script).is_absolute() else cwd / script
        if not cwd.is_dir():
            raise SubmitError(f"local submit {script}: the submit folder {cwd} does not exist")
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            raise SubmitError(f"local submit: Unable to open file {path}: {error.strerror}") from None
        options = script_options(text, extra_args, self.directive)
        limit = parse_duration(options.get("--time"))
        if limit is None and (options.get("--time") or "").strip().upper() not in ("", "UNLIMITED", "INFINITE"):
            raise SubmitError(f"local submit {script}: invalid time limit {options.get('--time')!r}")
        if limit is not None:
            limit *= float(os.environ.get(TIME_SCALE_ENV) or 1.0)
        name = options.get("--job-name") or Path(path).name
        with self.store.lock():
            for parent in after_ok or []:
                if self.store.read(str(parent)) is None:
                    raise SubmitError(f"local submit {script}: Job dependency problem (no job {parent})")
            atomic_write_text(self.store.dir / "config.json", json.dumps({"max_parallel": self.max_parallel}))
            job_id = self.store.next_id()
            output = options.get("--output") or self.naming.log("%j")
            output = output.replace("%%", "\0").replace("%j", job_id).replace("%x", name).replace("\0", "%")
            _write_private(self.store.jobs / f"{job_id}.env.json", json.dumps(dict(os.environ)))
            self.store.write({
                "job_id": job_id, "name": name, "script": str(path), "args": list(script_args or []), "cwd": str(cwd),
                "output": str(cwd / output), "after_ok": [str(p) for p in after_ok or []],
                "extra_args": list(extra_args or []), "time_limit_s": limit, "state": "PENDING",
                "job_vars": self.job_vars(job_id, name, cwd),
                "reason": "Dependency" if after_ok else None, "exit_code": "0:0", "submit_time": time.time(),
                "start_time": None, "end_time": None, "watcher_pid": None, "job_pgid": None, "node": None,
            })
            _advance(self.store)
        return job_id

    def query(self, job_ids: list[str], recent: Collection[str] = ()) -> dict[str, JobInfo]:
        """The state of these jobs from their records, after one scheduling step; unknown ids are left out."""
        self.calls += 1
        with self.store.lock():
            _advance(self.store)
            records = [self.store.read(str(i)) for i in dict.fromkeys(job_ids)]
        return {r["job_id"]: _info(r) for r in records if r}

    def jobs_named(self, names: list[str]) -> dict[str, list[JobInfo]]:
        """Every job record (any state) whose job name is one of `names`, by name."""
        self.calls += 1
        wanted = set(names)
        found: dict[str, list[JobInfo]] = {}
        for rec in self.store.all():
            if rec.get("name") in wanted:
                found.setdefault(rec["name"], []).append(_info(rec))
        return found

    def cancel(self, job_ids: list[str]) -> None:
        """Cancel the waiting and running ones of these jobs (a running job's watcher stops it)."""
        with self.store.lock():
            for job_id in job_ids:
                rec = self.store.read(str(job_id))
                if rec is None or rec["state"] not in {"PENDING", "RUNNING"}:
                    continue
                was_running = rec["state"] == "RUNNING"
                _end(rec, f"CANCELLED by {os.getuid()}", None, "0:15" if was_running else "0:0")
                self.store.write(rec)
                _forget_env(self.store, str(job_id))
                if was_running:
                    if _alive(rec.get("watcher_pid")):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(rec["watcher_pid"], signal.SIGTERM)  # it stops the job
                    else:
                        _killpg(rec.get("job_pgid"), signal.SIGKILL)
            _advance(self.store)


# ---------------------------------------------------------------------------- the watcher


class _Interrupt(Exception):
    pass


def run_job(state_dir: Path, job_id: str) -> int:
    """Run one job to its end (the watcher process; see the module docstring)."""
    why: list[str] = []
    waiting = [False]

    def on_signal(signum: int, _frame: object) -> None:
        why.append("TIMEOUT" if signum == signal.SIGALRM else "CANCELLED")
        if waiting[0]:
            waiting[0] = False
            raise _Interrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    store = _Store(state_dir)
    with store.lock():
        rec = store.read(job_id)
        if rec is None or rec["state"] != "RUNNING" or rec.get("watcher_pid") != os.getpid():
            return 0  # cancelled before it started
        try:
            saved = json.loads((store.jobs / f"{job_id}.env.json").read_text())
        finally:
            _forget_env(store, job_id)  # the job has it now; nothing stays on disk
        job_vars = rec.get("job_vars") or _sbatch_vars(job_id, rec["name"] or "", rec["cwd"])  # an older record
        env = {**saved, **job_vars}
        try:
            log = open(rec["output"], "wb")  # noqa: SIM115 - handed to the child
            proc = subprocess.Popen(["bash", rec["script"], *rec.get("args", [])], cwd=rec["cwd"], env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            log.close()
        except OSError as error:
            print(f"job {job_id}: launch failed: {error}", file=sys.stderr)
            _end(rec, "FAILED", "JobLaunchFailure", "0:53")
            store.write(rec)
            _advance(store)
            return 0
        rec["job_pgid"] = proc.pid
        store.write(rec)
    if rec.get("time_limit_s"):
        signal.setitimer(signal.ITIMER_REAL, max(float(rec["time_limit_s"]), 0.001))
    rc: int | None = None
    try:
        if not why:
            waiting[0] = True
            rc = proc.wait()
            waiting[0] = False
    except _Interrupt:
        pass
    signal.setitimer(signal.ITIMER_REAL, 0)
    if why:
        rc = _stop(proc, rec, job_id, why[0])
    _killpg(proc.pid, signal.SIGKILL)  # leftovers of the job, as SLURM does
    with store.lock():
        rec = store.read(job_id) or rec
        if rec["state"] == "RUNNING":
            _record_end(rec, why[0] if why else None, rc)
        else:  # cancelled meanwhile: keep that, note when it really ended
            rec["end_time"] = time.time()
        store.write(rec)
        _advance(store)
    return 0


def _stop(proc: subprocess.Popen[bytes], rec: dict[str, Any], job_id: str, why: str) -> int:
    """Stop a job that ran out of time or was cancelled, as slurmstepd does: log line, SIGTERM, SIGKILL."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    tail = " DUE TO TIME LIMIT" if why == "TIMEOUT" else ""
    with contextlib.suppress(OSError), open(rec["output"], "a") as out:
        out.write(f"slurmstepd-{NODE}: error: *** JOB {job_id} ON {NODE} CANCELLED AT {stamp}{tail} ***\n")
    _killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=float(os.environ.get("SWEEPFLOW_LOCAL_KILL_WAIT") or KILL_WAIT_S))
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def _record_end(rec: dict[str, Any], why: str | None, rc: int | None) -> None:
    """The state, reason and `rc:signal` exit code SLURM gives a job that ended this way."""
    if why == "TIMEOUT":
        _end(rec, "TIMEOUT", "TimeLimit", "0:15")
    elif rc is not None and rc >= 0:
        _end(rec, "COMPLETED" if rc == 0 else "FAILED", None if rc == 0 else "NonZeroExitCode", f"{rc}:0")
    else:
        _end(rec, "FAILED", "NonZeroExitCode", f"0:{-(rc or 0) or 9}")


def main(argv: list[str]) -> int:
    """`python -m tasks.backends.local run-job STATE_DIR JOB_ID`: be that job's watcher until it ends."""
    if len(argv) == 3 and argv[0] == "run-job":
        return run_job(Path(argv[1]), argv[2])
    print("usage: python -m tasks.backends.local run-job STATE_DIR JOB_ID", file=sys.stderr)
    return 2


def _build(state_dir: Path) -> LocalBackend:
    return LocalBackend(state_dir)


# It runs SLURM's scripts: the SLURM entry's files, header and failure rules, its own runner.
LOCAL: BackendKind = replace(SLURM, name="local", build=_build, remote=False, available=lambda _path: True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
