"""Tests against a REAL single-node SLURM cluster started by scripts/slurm-local.

They check the cluster behaves as the rest of sweepflow assumes (job outcomes, exit codes,
dependencies, arrays, sacct), and that the recorded outputs in tests/fixtures/slurm agree
with each other. Skipped with the script's reason where it cannot run (not root, no apt-get).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm-local"
FIXTURES = ROOT / "tests" / "fixtures" / "slurm"
ARTIFACTS = ROOT / "tests" / "artifacts" / "slurm"

pytestmark = pytest.mark.slurm


def test_submit_and_complete_with_fake_gpu(slurm_cluster: Any, job_dir: Path) -> None:
    job_id = slurm_cluster.sbatch(
        "-J", "it_complete", "--gres=gpu:1", "--time=1", "-o", f"{job_dir}/%j.out",
        "--wrap", 'echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"',
    )
    record = slurm_cluster.wait_final(job_id)
    assert record["JobState"] == "COMPLETED"
    assert record["ExitCode"] == "0:0"
    assert record["TresPerNode"] == "gres:gpu:1"
    if slurm_cluster.with_db:  # AccountingStorageTRES=gres/gpu needs slurmdbd
        assert "gres/gpu=1" in record["TRES"]
    out = (job_dir / f"{job_id}.out").read_text()
    assert out.startswith("CUDA_VISIBLE_DEVICES=") and out.strip() != "CUDA_VISIBLE_DEVICES=", out


def test_nonzero_exit_is_failed_with_exit_code(slurm_cluster: Any, job_dir: Path) -> None:
    job_id = slurm_cluster.sbatch("-J", "it_exit3", "--time=1", "-o", f"{job_dir}/%j.out", "--wrap", "exit 3")
    record = slurm_cluster.wait_final(job_id)
    assert (record["JobState"], record["ExitCode"], record["Reason"]) == ("FAILED", "3:0", "NonZeroExitCode")


def test_scancel_gives_cancelled(slurm_cluster: Any, job_dir: Path) -> None:
    job_id = slurm_cluster.sbatch("-J", "it_cancel", "--time=1", "-o", f"{job_dir}/%j.out", "--wrap", "sleep 120")
    slurm_cluster.wait_state(job_id, {"RUNNING"})
    slurm_cluster.run("scancel", job_id)
    record = slurm_cluster.wait_final(job_id)
    assert record["JobState"] == "CANCELLED"


def test_afterok_on_failed_parent_with_kill_on_invalid_dep(slurm_cluster: Any, job_dir: Path) -> None:
    parent = slurm_cluster.sbatch("-J", "it_parent", "--time=1", "-o", f"{job_dir}/%j.out", "--wrap", "exit 1")
    child = slurm_cluster.sbatch(
        "-J", "it_child", "--time=1", "-o", f"{job_dir}/%j.out",
        f"--dependency=afterok:{parent}", "--kill-on-invalid-dep=yes", "--wrap", "echo never",
    )
    assert slurm_cluster.wait_final(parent)["JobState"] == "FAILED"
    record = slurm_cluster.wait_final(child)
    assert record["JobState"] == "CANCELLED"
    assert record["Reason"] == "DependencyNeverSatisfied"
    assert not (job_dir / f"{child}.out").exists()


def test_array_tasks(slurm_cluster: Any, job_dir: Path) -> None:
    job_id = slurm_cluster.sbatch(
        "-J", "it_array", "--array=0-1", "--time=1", "-o", f"{job_dir}/%A_%a.out",
        "--wrap", 'echo "task=$SLURM_ARRAY_TASK_ID"',
    )
    for task in (0, 1):
        record = slurm_cluster.wait_final(f"{job_id}_{task}")
        assert record["JobState"] == "COMPLETED"
        assert record["ArrayJobId"] == job_id and record["ArrayTaskId"] == str(task)
        assert (job_dir / f"{job_id}_{task}.out").read_text().strip() == f"task={task}"


def test_impossible_request_rejected_at_submit(slurm_cluster: Any) -> None:
    # EnforcePartLimits=ALL: more GPUs than the node has fails at once instead of pending forever
    proc = slurm_cluster.run("sbatch", "--parsable", "--gres=gpu:64", "--wrap", "true", check=False)
    assert proc.returncode == 1
    assert "Requested node configuration is not available" in proc.stderr


def test_sacct_poll_of_several_jobs(slurm_cluster_db: Any, job_dir: Path) -> None:
    cluster = slurm_cluster_db
    ok = cluster.sbatch("-J", "it_sacct_ok", "--time=1", "-o", f"{job_dir}/%j.out", "--wrap", "true")
    bad = cluster.sbatch("-J", "it_sacct_bad", "--time=1", "-o", f"{job_dir}/%j.out", "--wrap", "exit 2")
    cluster.wait_final(ok)
    cluster.wait_final(bad)
    fields = "JobID,State,ExitCode,Elapsed,NodeList"
    rows: dict[str, list[str]] = {}
    for _ in range(100):  # slurmctld sends the job end to slurmdbd asynchronously
        out = cluster.run("sacct", "-X", "-P", "-n", "-j", f"{ok},{bad}", "-o", fields).stdout
        rows = {line.split("|")[0]: line.split("|") for line in out.splitlines() if line}
        if rows.get(ok, [None, None])[1] == "COMPLETED" and rows.get(bad, [None, None])[1] == "FAILED":
            break
        subprocess.run(["sleep", "0.1"])
    assert rows[ok][1:3] == ["COMPLETED", "0:0"], rows
    assert rows[bad][1:3] == ["FAILED", "2:0"], rows
    assert rows[ok][4] == "localhost"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "sacct_poll.txt").write_text(out)


def test_sacct_without_database_fails_but_scontrol_works(slurm_cluster_nodb: Any, job_dir: Path) -> None:
    cluster = slurm_cluster_nodb
    job_id = cluster.sbatch("-J", "it_nodb", "--time=1", "-o", f"{job_dir}/%j.out", "--wrap", "true")
    proc = cluster.run("sacct", "-X", "-P", "-n", "-j", job_id, "-o", "JobID,State", check=False)
    assert proc.returncode == 1
    assert "accounting storage is disabled" in proc.stderr
    assert cluster.wait_final(job_id)["JobState"] == "COMPLETED"


def test_script_selftest_status_and_env(slurm_cluster: Any) -> None:
    env = dict(slurm_cluster.env, SLURM_LOCAL_DIR=str(slurm_cluster.directory))
    run = lambda *a: subprocess.run(["bash", str(SCRIPT), *a], env=env, capture_output=True, text=True, timeout=60)
    proc = run("selftest")
    assert proc.returncode == 0, proc.stderr
    assert "COMPLETED" in proc.stdout and "CUDA_VISIBLE_DEVICES=" in proc.stdout
    proc = run("env")
    assert f"export SLURM_CONF={slurm_cluster.conf}" in proc.stdout.splitlines()
    proc = run("status")
    assert proc.returncode == 0 and "localhost" in proc.stdout, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# no cluster needed


def test_script_usage_error_and_cannot_run_exit_codes(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "bogus"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr
    if os.geteuid() != 0:
        proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True)
    else:
        setpriv = subprocess.run(["sh", "-c", "command -v setpriv"], capture_output=True, text=True).stdout.strip()
        if not setpriv:
            pytest.skip("no setpriv to run the script as another user")
        proc = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(SCRIPT), "start"],
            capture_output=True, text=True, env={**os.environ, "SLURM_LOCAL_DIR": str(tmp_path / "x")},
        )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().startswith("slurm-local: cannot run here: needs root")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_recorded_fixtures_agree_with_each_other() -> None:
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    sacct = {
        line.split("|")[0]: line.split("|")
        for line in (FIXTURES / "sacct_X_P_n.txt").read_text().splitlines()
        if line
    }
    for fields in sacct.values():
        assert len(fields) == 8  # JobID,JobName,State,ExitCode,Elapsed,MaxRSS,NodeList,Reason
    expected = {
        "completed": ("COMPLETED", "0:0"),
        "failed": ("FAILED", "3:0"),
        "launch_failed": ("FAILED", "0:53"),
        "oom": ("OUT_OF_MEMORY", "0:125"),
        "dep_never": ("PENDING", "0:0"),
        "dep_killed": ("CANCELLED", "0:0"),
        "timeout": ("TIMEOUT", "0:0"),
    }
    for name, (state, exit_code) in expected.items():
        job_id = manifest[name]["job_id"]
        assert manifest[name]["state"] == state, name
        assert sacct[job_id][2] == state, (name, sacct[job_id])
        assert sacct[job_id][3] == exit_code, (name, sacct[job_id])
    assert sacct[manifest["cancelled"]["job_id"]][2] == "CANCELLED by 0"
    for name, state in [("completed", "COMPLETED"), ("failed", "FAILED"), ("timeout", "TIMEOUT"),
                        ("cancelled", "CANCELLED"), ("out_of_memory", "OUT_OF_MEMORY")]:
        text = (FIXTURES / f"scontrol_show_job_{name}.txt").read_text()
        assert f"JobState={state} " in text, name
