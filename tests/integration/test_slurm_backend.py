"""SlurmBackend against a REAL single-node SLURM cluster (scripts/slurm-local).

With slurmdbd (`slurm_cluster_db`): one `query` of N jobs is exactly ONE sacct call.
Without it (`slurm_cluster_nodb`): sacct fails once, is not retried, and squeue (+ scontrol for
ids squeue does not list) answers in a few calls. The same small scripts run on both: one that
succeeds, one that exits 3, an afterok child of the failing one (killed at once thanks to
--kill-on-invalid-dep=yes), and one that is cancelled while it runs.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tasks.backends.slurm import classify_failure
from tasks.backends._base import JobInfo, SubmitError
from tasks.backends.slurm import SlurmBackend
from tasks.core._files import read_log_tail

pytestmark = pytest.mark.slurm
DONE = {"completed", "failed", "cancelled"}


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.slurm"
    path.write_text(f"#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --output=slurm-%j.out\n#SBATCH --time=2\n\n{body}\n")
    return path


def poll(backend: SlurmBackend, ids: list[str], ready: Any, timeout: float = 60) -> dict[str, JobInfo]:
    deadline = time.monotonic() + timeout
    while True:
        found = backend.query(ids)
        if ready(found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.3)


def run_scenario(cluster: Any, job_dir: Path) -> tuple[SlurmBackend, dict[str, str], dict[str, str]]:
    """Submit the four jobs, cancel the long one once it runs; returns backend, ids and names."""
    backend = SlurmBackend(env=cluster.env)
    tag = uuid.uuid4().hex[:6]
    names = {k: f"sb_{k}_{tag}" for k in ("ok", "bad", "child", "long")}
    ids = {
        "ok": backend.submit(script(job_dir, names["ok"], 'echo "hello from $SLURM_JOB_ID"'), job_dir),
        "bad": backend.submit(script(job_dir, names["bad"], "echo about to fail; exit 3"), job_dir),
    }
    ids["child"] = backend.submit(script(job_dir, names["child"], "echo never"), job_dir, after_ok=[ids["bad"]])
    ids["long"] = backend.submit(script(job_dir, names["long"], "sleep 300"), job_dir, sbatch_args=["--time=3"])
    assert all(i.isdigit() for i in ids.values())
    cluster.wait_state(ids["long"], {"RUNNING"})
    backend.cancel([ids["long"]])
    for job_id in ids.values():
        cluster.wait_final(job_id)
    return backend, ids, names


def check_outcomes(found: dict[str, JobInfo], ids: dict[str, str], job_dir: Path) -> None:
    ok, bad, child, long = (found[ids[k]] for k in ("ok", "bad", "child", "long"))
    assert (ok.status, ok.raw_state, ok.exit_code, ok.node) == ("completed", "COMPLETED", "0:0", "localhost")
    assert (bad.status, bad.raw_state, bad.exit_code) == ("failed", "FAILED", "3:0")
    assert (child.status, child.raw_state, child.node) == ("cancelled", "CANCELLED", None)
    assert long.status == "cancelled" and long.raw_state.startswith("CANCELLED")
    assert classify_failure(ok, "") is None
    assert classify_failure(bad, read_log_tail(job_dir / f"slurm-{ids['bad']}.out")) == "error"
    assert classify_failure(child, "") == "dependency"
    assert classify_failure(long, read_log_tail(job_dir / f"slurm-{ids['long']}.out")) == "cancelled"
    assert (job_dir / f"slurm-{ids['ok']}.out").read_text() == f"hello from {ids['ok']}\n"


def test_query_with_accounting_is_one_sacct_call(slurm_cluster_db: Any, job_dir: Path) -> None:
    backend, ids, names = run_scenario(slurm_cluster_db, job_dir)
    all_ids = list(ids.values())
    # sacct learns each end a moment after slurmctld, and for ~1.5 s shows the placeholder
    # JobName "allocation" (SLURM 22.05): wait until it reports all four as they are
    poll(backend, all_ids, lambda f: all(f[i].status in DONE and f[i].name == names[k] for k, i in ids.items())
         and f[ids["long"]].raw_state.startswith("CANCELLED by"))
    before, by_command = backend.calls, dict(backend.calls_by_command)
    found = backend.query(all_ids)
    assert backend.calls - before == 1
    assert backend.calls_by_command["sacct"] - by_command["sacct"] == 1
    assert set(found) == set(all_ids)
    check_outcomes(found, ids, job_dir)
    assert found[ids["long"]].raw_state == "CANCELLED by 0"
    assert found[ids["ok"]].name == names["ok"] and found[ids["ok"]].elapsed_s is not None

    named = backend.jobs_named([names["ok"], names["child"], "sb_nobody"])
    assert [j.job_id for j in named[names["ok"]]] == [ids["ok"]]
    assert [j.job_id for j in named[names["child"]]] == [ids["child"]]
    assert "sb_nobody" not in named
    assert named[names["ok"]][0].work_dir == str(job_dir)  # the duplicate guard's folder check


def test_just_submitted_job_is_found_through_squeue(slurm_cluster_db: Any, job_dir: Path) -> None:
    backend = SlurmBackend(env=slurm_cluster_db.env)
    held = backend.submit(script(job_dir, f"sb_held_{uuid.uuid4().hex[:6]}", "true"), job_dir, sbatch_args=["--hold"])
    try:
        found = backend.query([held])  # sacct may not know it yet: squeue fills the gap
        assert found[held].status == "pending" and found[held].raw_state == "PENDING"
        assert backend.calls <= 2
    finally:
        backend.cancel([held])
    found = poll(backend, [held], lambda f: held in f and f[held].status == "cancelled")
    assert classify_failure(found[held], "") == "cancelled"


def test_query_without_accounting_uses_squeue_then_scontrol(slurm_cluster_nodb: Any, job_dir: Path) -> None:
    backend, ids, names = run_scenario(slurm_cluster_nodb, job_dir)
    all_ids = list(ids.values())
    found = backend.query(all_ids)
    assert backend.accounting_available is False and "accounting storage is disabled" in backend.accounting_error
    assert dict(backend.calls_by_command) == {"sacct": 1, "squeue": 1}
    check_outcomes(found, ids, job_dir)
    assert found[ids["long"]].exit_code == "0:15" and found[ids["child"]].reason == "DependencyNeverSatisfied"

    before = backend.calls
    again = backend.query([*all_ids, "999999"])  # sacct not retried; unknown id -> one scontrol
    assert backend.calls - before == 2 and backend.calls_by_command["sacct"] == 1
    assert backend.calls_by_command["scontrol"] == 1
    assert set(again) == set(all_ids)

    named = backend.jobs_named([names["bad"], names["long"]])
    assert [j.job_id for j in named[names["bad"]]] == [ids["bad"]]
    assert [j.job_id for j in named[names["long"]]] == [ids["long"]]
    assert named[names["bad"]][0].work_dir == str(job_dir)  # from squeue's WorkDir
    assert backend.calls_by_command["sacct"] == 1  # still cached as unavailable

    eager = SlurmBackend(env=slurm_cluster_nodb.env, accounting_retry_s=0)  # retry sacct every time
    eager.query(all_ids)
    eager.query(all_ids)
    assert dict(eager.calls_by_command) == {"sacct": 2, "squeue": 2}


def test_submit_errors_are_classified(slurm_cluster_nodb: Any, job_dir: Path) -> None:
    backend = SlurmBackend(env=slurm_cluster_nodb.env)
    ok = script(job_dir, "sb_err", "true")
    with pytest.raises(SubmitError, match="Requested node configuration is not available") as impossible:
        backend.submit(ok, job_dir, sbatch_args=["--gres=gpu:8"])
    assert impossible.value.transient is False
    with pytest.raises(SubmitError, match="Invalid partition name") as partition:
        backend.submit(ok, job_dir, sbatch_args=["--partition=nope"])
    assert partition.value.transient is False
    with pytest.raises(SubmitError, match="does not exist"):
        backend.submit(ok, job_dir / "missing")
    no_slurm = SlurmBackend(env={**slurm_cluster_nodb.env, "PATH": str(job_dir)})  # no sbatch on PATH
    with pytest.raises(SubmitError, match="not found") as missing:
        no_slurm.submit(ok, job_dir)
    assert missing.value.transient is False
