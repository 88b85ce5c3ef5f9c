"""The package as a user installs it: every package listed, and `sweepflow` working from a fresh venv.

The fresh virtual environment (`python -m venv --without-pip`) sees this environment's
dependencies through a `.pth` file (no download: the test needs no network), and gets the
project itself installed from a copy of its sources with `pip install --no-deps --no-index`.
Its `sweepflow` console script then answers `--help` and plans the example with `--dry-run`
from a folder outside the checkout, with the templates shipped inside the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from sweepflow.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SOURCES = ("pyproject.toml", "blocks", "flows", "sweepflow", "sweepflow_recipes", "tasks", "templates")


def test_every_package_is_listed() -> None:
    tops = ("blocks", "flows", "sweepflow", "sweepflow_recipes", "tasks")
    inits = [p for top in tops for p in (ROOT / top).rglob("__init__.py")]
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in inits}
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert found | {"sweepflow.templates"} == listed
    assert PYPROJECT["tool"]["setuptools"]["package-dir"]["sweepflow.templates"] == "templates"
    assert PYPROJECT["project"]["scripts"]["sweepflow"] == "sweepflow.cli:main"


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    said = f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{said}"
    return done


@pytest.mark.slow
def test_sweepflow_from_a_fresh_venv(tmp_path: Path) -> None:
    source, venv, work = tmp_path / "src", tmp_path / "venv", tmp_path / "work"
    source.mkdir()
    for name in SOURCES:  # a copy: building writes build/ and *.egg-info next to the sources
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, dict(os.environ))
    python = str(venv / "bin" / "python")
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        tmp_path, dict(os.environ)).stdout.strip())
    (purelib / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # this venv's packages
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / "prefect"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = Path(sys.executable).parent / "pip"
    _run([str(pip), "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-build-isolation",
          "--ignore-installed", "--no-index", "-q", str(source)], tmp_path, env)

    where = _run([str(venv / "bin" / "python"), "-c", "import tasks.core as c, flows; print(flows.__file__); "
                  "print(c.TEMPLATES_DIR)"], tmp_path, env).stdout.splitlines()
    assert where[0].startswith(str(purelib)), where  # the installed copy, not this checkout
    assert where[1] == str(purelib / "sweepflow" / "templates")
    assert (purelib / "sweepflow" / "templates" / "reports" / "status.txt.j2").is_file()

    helped = _run([str(venv / "bin" / "sweepflow"), "--help"], tmp_path, env).stdout
    assert all(f"    {name}" in helped for name in COMMANDS), helped

    for folder in ("tiny_demo", "capitalization"):  # the example, with its inputs made beside it
        shutil.copytree(ROOT / "examples" / folder, work / "examples" / folder)
    _run([sys.executable, "-m", "examples.tiny_demo.make_example", str(work / "demo")], ROOT, dict(os.environ))
    planned = _run([str(venv / "bin" / "sweepflow"), "plan", "examples/tiny_demo/design.yaml", "--dry-run"], work, env)
    assert planned.stdout.startswith("# Run Plan: tiny_cap_5L_lora_rank_")
    assert "(dry run) tiny_cap_5L_lora_rank_" in planned.stderr
    assert f"would write to {work / 'demo' / 'experiments'}" in planned.stderr
    assert not (work / "demo" / "experiments").exists()
