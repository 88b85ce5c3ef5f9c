"""Fixtures for tests against a REAL single-node SLURM cluster (scripts/slurm-local).

`slurm_cluster` (session): the cluster in /tmp/sweepflow-slurm, ports 6817-6820.
  * SWEEPFLOW_SLURM_RUNNING=1 with SLURM_CONF set: use that cluster as it is (CI starts it
    before the tests); never started or stopped here.
  * a cluster already up in SLURM_LOCAL_DIR (e.g. after `scripts/slurm-local start`): reused
    as it is and left running.
  * otherwise `scripts/slurm-local start` (it installs the packages first when needed), and
    `scripts/slurm-local stop` at the end of the session.
  With SWEEPFLOW_SLURM_DB=1 (the default) the cluster it starts has slurmdbd, so `sacct`
  works; SWEEPFLOW_SLURM_DB=0 starts it without (about 0.2 s instead of 3-9 s).
`slurm_cluster_db`: the same cluster, skipped when it has no accounting database.
`slurm_cluster_nodb` (session): a second, database-less cluster in /tmp/sweepflow-slurm-nodb
  on ports 6827-6830 (starts in about 0.2 s), for the "sacct is unavailable" paths.

When the script says it cannot run on this machine (exit 3: not root, no apt-get, packages
not installable) the tests are skipped with its reason; SWEEPFLOW_SLURM_REQUIRED=1 turns that
skip into a failure (for CI, where the cluster must work). Any other failure fails the tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm-local"
DEFAULT_DIR = "/tmp/sweepflow-slurm"
NODB_DIR = "/tmp/sweepflow-slurm-nodb"
NODB_PORT = "6827"
CANNOT_RUN = 3  # scripts/slurm-local's exit code for "cannot run on this machine"

FINAL_STATES = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
    "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slurm: needs a real SLURM cluster (scripts/slurm-local)")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "yes", "true", "on"}


def parse_scontrol_record(line: str) -> dict[str, str]:
    """`scontrol show job -o` prints one line of Key=Value pairs; values may hold spaces
    only in a few keys (Command, WorkDir, StdOut, ...) that we do not need here."""
    fields: dict[str, str] = {}
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


@dataclass
class SlurmCluster:
    conf: Path
    env: dict[str, str]
    with_db: bool
    directory: Path
    started_here: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def sbatch(self, *args: str) -> str:
        """`sbatch --parsable ARGS`; returns the job id."""
        out = self.run("sbatch", "--parsable", *args).stdout.strip()
        job_id = out.split(";")[0]
        assert re.fullmatch(r"\d+", job_id), f"sbatch --parsable printed {out!r}"
        return job_id

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o ID` as a dict (first record; array jobs print one per task)."""
        out = self.run("scontrol", "show", "job", "-o", job_id).stdout.strip()
        return parse_scontrol_record(out.splitlines()[0])

    def wait_state(self, job_id: str, states: set[str], timeout: float = 30) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        record: dict[str, str] = {}
        while time.monotonic() < deadline:
            record = self.job(job_id)
            if record.get("JobState") in states:
                return record
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} still {record.get('JobState')} after {timeout}s: {record}")

    def wait_final(self, job_id: str, timeout: float = 30) -> dict[str, str]:
        return self.wait_state(job_id, FINAL_STATES, timeout)


def _script(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _reason(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "slurm-local:" in ln:
            return ln.strip()
    return lines[-1].strip() if lines else f"exit {proc.returncode}"


def _conf_has_db(conf: Path) -> bool:
    try:
        text = conf.read_text()
    except OSError:
        return False
    return bool(re.search(r"^\s*AccountingStorageType\s*=\s*accounting_storage/slurmdbd", text, re.M))


def _start_cluster(directory: str, port: str | None, with_db: bool) -> SlurmCluster:
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} is missing")
    env = dict(os.environ)
    env.pop("SLURM_CONF", None)
    env["SLURM_LOCAL_DIR"] = directory
    if port:
        env["SLURM_LOCAL_PORT"] = port
    env["WITH_DB"] = "1" if with_db else "0"
    conf = Path(directory) / "etc" / "slurm.conf"
    timings: dict[str, float] = {}

    # A cluster that is already up there (make slurm-up, a developer's shell) is used as it is.
    if _script(["status"], env, timeout=30).returncode == 0:
        env["SLURM_CONF"] = str(conf)
        return SlurmCluster(conf, env, _conf_has_db(conf), Path(directory), started_here=False)

    t0 = time.monotonic()
    proc = _script(["start"], env)
    timings["start_s"] = time.monotonic() - t0
    if proc.returncode == CANNOT_RUN:
        reason = _reason(proc)
        if _truthy(os.environ.get("SWEEPFLOW_SLURM_REQUIRED")):
            pytest.fail(f"SWEEPFLOW_SLURM_REQUIRED=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/slurm-local start failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False
        )
    env["SLURM_CONF"] = str(conf)
    return SlurmCluster(conf, env, with_db, Path(directory), started_here=True, timings=timings)


def _stop_cluster(cluster: SlurmCluster) -> None:
    if cluster.started_here:
        proc = _script(["stop"], cluster.env, timeout=120)
        assert proc.returncode == 0, f"scripts/slurm-local stop failed: {proc.stderr}"


@pytest.fixture(scope="session")
def slurm_cluster():
    if _truthy(os.environ.get("SWEEPFLOW_SLURM_RUNNING")):
        conf_env = os.environ.get("SLURM_CONF")
        if not conf_env:
            pytest.fail("SWEEPFLOW_SLURM_RUNNING=1 needs SLURM_CONF", pytrace=False)
        conf = Path(conf_env)
        env = dict(os.environ)
        yield SlurmCluster(conf, env, _conf_has_db(conf), conf.parent.parent, started_here=False)
        return
    with_db = _truthy(os.environ.get("SWEEPFLOW_SLURM_DB", "1"))
    cluster = _start_cluster(os.environ.get("SLURM_LOCAL_DIR", DEFAULT_DIR), None, with_db)
    try:
        yield cluster
    finally:
        _stop_cluster(cluster)


@pytest.fixture
def slurm_cluster_db(slurm_cluster: SlurmCluster) -> SlurmCluster:
    if not slurm_cluster.with_db:
        pytest.skip("the SLURM cluster runs without slurmdbd (SWEEPFLOW_SLURM_DB=0): no sacct")
    return slurm_cluster


@pytest.fixture(scope="session")
def slurm_cluster_nodb():
    cluster = _start_cluster(NODB_DIR, NODB_PORT, with_db=False)
    try:
        yield cluster
    finally:
        _stop_cluster(cluster)


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """A folder for job output; world-writable so that a job under any uid can write there."""
    tmp_path.chmod(0o777)
    return tmp_path


@pytest.fixture
def flows_on_slurm(slurm_cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The environment in which flows called as plain Python submit to `slurm_cluster`: its SLURM_CONF,
    offline Hugging Face, this repository as SWEEPFLOW_HOME, no Prefect server of the caller's; tmp_path
    readable by the jobs (any uid)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setenv("SWEEPFLOW_HOME", str(Path(__file__).resolve().parents[2]))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    tmp_path.chmod(0o755)
    return slurm_cluster
