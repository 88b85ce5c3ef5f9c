"""The job preflight, run by path as a job runs it: in the job's own Python, standard library only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.preflight import EXIT_CODE, FAILED_MARK, OK_MARK, check_packages, failure_line
from tasks.core._repo import REPO_ROOT

SCRIPT = REPO_ROOT / "tasks" / "core" / "preflight.py"


def run(python: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_right_environment_passes_and_records_its_versions(tmp_path: Path) -> None:
    proc = run(sys.executable, "--stage", "finetune", "--device", "cpu", "--require", "torchtune==0.6.1",
               "--require", "torchao==0.15.0", "--record", "job_env-7.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = proc.stdout.strip()
    assert line.startswith(OK_MARK) and "torchtune 0.6.1, torchao 0.15.0; no GPU" in line and len(proc.stdout.splitlines()) == 1
    record = json.loads((tmp_path / "job_env-7.json").read_text())
    assert record["packages"] == {"torchtune": "0.6.1", "torchao": "0.15.0"} and record["problems"] == []
    assert record["executable"] == sys.executable and record["torch"].startswith("2.")


def test_cuda_asked_for_on_a_cpu_machine_fails_with_its_exit_code(tmp_path: Path) -> None:
    proc = run(sys.executable, "--stage", "eval", "--device", "cuda", "--gpus", "1", cwd=tmp_path)
    assert proc.returncode == EXIT_CODE
    assert "device cuda was asked for, but torch.cuda.is_available() is False (a CPU-only torch build)" in proc.stdout
    assert failure_line(f"training...\n{proc.stdout}") .startswith("device cuda was asked for")


@pytest.mark.skipif(shutil.which("python3.11") is None, reason="needs a Python without torch")
def test_a_python_without_the_packages_names_each_missing_one(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(bare)], check=True)
    proc = run(str(bare / "bin" / "python"), "--stage", "finetune", "--device", "cpu", "--require", "torchtune==0.6.1",
               cwd=tmp_path)
    assert proc.returncode == EXIT_CODE
    assert proc.stdout.startswith(FAILED_MARK)
    assert "torchtune is not installed (sweepflow needs torchtune==0.6.1)" in proc.stdout
    assert "torch cannot be imported: ModuleNotFoundError" in proc.stdout
    assert f"(job Python {bare}/bin/python)" in proc.stdout


def test_version_checks_ignore_local_labels_only() -> None:
    found, problems = check_packages(["torch==2.13.0", "torchtune==0.6.0", "no-such-package-xyz"])
    assert found["torch"].startswith("2.13.0")  # 2.13.0+cpu is 2.13.0
    assert problems == ["torchtune 0.6.1 is installed, sweepflow needs exactly 0.6.0", "no-such-package-xyz is not installed"]
    assert failure_line("all good\n") is None
