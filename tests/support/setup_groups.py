"""Run groups for the setup-experiment tests (tests/setup/): sites, planning, snapshots, a stub sandbox.

- `seed_design`: the seed example (`examples/seed_2x2/design.yaml`) over fake resources under a
  root; `planned`: plan and deliver a design at a fixed date and time (DATE, NOW);
  `pin_repo_path`: write FAKE_HOME wherever generated files name the repository.
- `snapshot` / `folders`: every file (content, mtime, inode, mode) and folder under a root, to
  show that nothing was rewritten; `scripts`: a group's job scripts; `check_scripts`: `bash -n`
  and shellcheck on them.
- `Sandbox`: runs a generated script with `bash`, the programs it calls replaced by stubs that
  record their argv; `expected_eval_argv`: the command line a checkpoint's evaluation script
  should run, `expected_tasks_file`: what its tasks file should say.

The run groups themselves are fixtures in tests/setup/conftest.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import tasks.setup._files as setup_files
from tasks.evaluation._inspect_tasks import eval_task_reference
from tasks.model._design import ExperimentDesign
from tasks.model._design_file import parse_design
from tasks.model._plan import Plan
from tasks.model._plan_file import load_plan
from tasks.planning._deliver import deliver_plan
from tasks.planning._planner import build_plan
from tasks.training._config import FinetuneContext
from tests.support import fakesite
from tests.support.paths import REPO_DIR

REPO = REPO_DIR
FAKE_HOME = Path("/opt/sweepflow")  # the repository path written into scripts and configs
DATE = "2025-10-18"
NOW = datetime(2025, 10, 18, 9, 45, tzinfo=timezone.utc)
NOW_TEXT = NOW.isoformat(timespec="seconds")
SHELLCHECK = shutil.which("shellcheck")


def write_file(path: Path, text: str) -> Path:
    """Write `text` to `path`, making its folders first; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def seed_design(root: Path) -> ExperimentDesign:
    """The seed example, its relative paths resolved under `root`, over fake resources made there."""
    data = yaml.safe_load((REPO / "examples" / "seed_2x2" / "design.yaml").read_text())
    fakesite.make_models(root / "models", data["models"])
    words = [f"w{i:07d}" for i in range(100)]  # 8 letters, like the seed's words_8L
    records = [{"input": w, "output": w.capitalize()} for w in words]
    write_file(root / data["dataset"]["path"], json.dumps({"train": records[:80], "validation": records[80:90], "test": records[90:]}))
    for task in data["evaluation"]["tasks"]:
        write_file(root / task["script"], fakesite.TASK_FILE)
        if task.get("dataset"):
            write_file(root / task["dataset"], json.dumps([{"input": "2+2", "output": "4"}] * 5))
    data["paths"] = {"models_dir": str(root / "models"), "output_dir": str(root / "experiments"), "prior_runs": [str(root / "old")]}
    return parse_design(data, source="seed_2x2", base=root)


def planned(design: ExperimentDesign | dict, base: Path | None = None) -> Path:
    """Plan and deliver a design (fixed date and time); return the run group folder."""
    if isinstance(design, dict):
        design = parse_design(design, base=base)
    return deliver_plan(build_plan(design, date=DATE, now=NOW), now=NOW_TEXT)


def pin_repo_path(monkeypatch: pytest.MonkeyPatch, home: Path = FAKE_HOME) -> None:
    """Write `home` wherever generated files name the repository (PYTHONPATH, `tune` hints)."""
    monkeypatch.setattr(setup_files, "SWEEPFLOW_HOME", home)
    from_plan = FinetuneContext.from_plan.__func__
    monkeypatch.setattr(
        FinetuneContext, "from_plan", classmethod(lambda cls, plan, **kw: from_plan(cls, plan, **{"repo_root": home, **kw}))
    )


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int, int]]:
    """Every file under root: content, mtime, inode (a rewrite changes it) and mode."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            found[path.relative_to(root).as_posix()] = (path.read_bytes(), st.st_mtime_ns, st.st_ino, st.st_mode)
    return found


def folders(root: Path) -> set[str]:
    """Every folder under root, relative."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def scripts(folder: Path) -> list[Path]:
    """The job scripts (*.slurm) and submit_all.sh under folder."""
    return sorted(p for p in folder.rglob("*") if p.suffix == ".slurm" or p.name == "submit_all.sh")


def plan_of(group: Path) -> Plan:
    """The group's experiment.yaml, loaded."""
    return load_plan(group)


def check_scripts(paths: list[Path]) -> None:
    """`bash -n` (and the shebang) on every script, then `shellcheck -S style` on them all; skips without shellcheck."""
    assert paths
    for path in paths:
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"bash -n {path}: {proc.stderr}"
        assert path.read_text().startswith("#!/bin/bash\n")
    if SHELLCHECK is None:
        pytest.skip("shellcheck is not installed (Debian package `shellcheck`): only `bash -n` was checked")
    proc = subprocess.run([SHELLCHECK, "-S", "style", "-f", "gcc", *map(str, paths)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout, f"shellcheck -S style:\n{proc.stdout}{proc.stderr}"


STUB = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["STUB_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"prog": name, "argv": sys.argv[1:], "cwd": os.getcwd(), "PYTHONPATH": os.environ.get("PYTHONPATH"),
                          "HF_HOME": os.environ.get("HF_HOME"), "TMPDIR": os.environ.get("TMPDIR")}}) + "\\n")
if name == "hostname":
    print("stub-node")
if name == "python":
    print(os.environ.get("STUB_BEST_EPOCH", ""))
if name == "sbatch" and "--parsable" in sys.argv:
    print("4242;cluster")  # what `sbatch --parsable` prints on a multi-cluster site
"""


class Sandbox:
    """Runs a generated script with `bash`, the programs it calls replaced by recording stubs."""

    PROGRAMS = ("tune", "inspect", "python", "hostname", "sbatch", "module", "conda")

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "stub bin"
        self.bin.mkdir(parents=True)
        for name in self.PROGRAMS:
            stub = self.bin / name
            stub.write_text(STUB.format(python=sys.executable))
            stub.chmod(0o755)
        self.log = root / "calls.jsonl"
        self.cwd = root / "cwd"
        self.cwd.mkdir()

    def run(self, script: Path, **env: str) -> list[dict[str, Any]]:
        self.log.write_text("")
        environ = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.root / "home"), "STUB_LOG": str(self.log),
                   "LANG": "C.UTF-8", **env}
        proc = subprocess.run(["bash", str(script)], cwd=self.cwd, env=environ, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{script}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def expected_eval_argv(plan: Plan, run_name: str, epoch: Any, model_path: str) -> list[str]:
    """The command line a checkpoint's evaluation script should run (all its tasks, one model load)."""
    stem = "eval" if epoch is None else f"eval_epoch_{epoch}"
    return ["-m", "tasks.evaluation.run_tasks", f"{stem}.tasks.yaml", "--model-path", model_path]


def expected_tasks_file(plan: Plan, run_name: str, epoch: Any) -> dict[str, Any]:
    """What a checkpoint's tasks file should say: the model, decoding, metadata and each task's files."""
    evaluation = plan.design.evaluation
    tasks = {t.name: t for t in evaluation.tasks}
    names = [j.task for j in plan.run(run_name).evaluations if j.epoch == epoch]
    return {
        "run": run_name, "epoch": "base" if epoch is None else str(epoch),
        "model": f"hf/{run_name}" if epoch is None else f"hf/{run_name}_epoch_{epoch}",
        "model_args": "model_args.yaml", "max_tokens": evaluation.max_tokens, "limit": evaluation.limit,
        "metadata": {"run": run_name, "epoch": "base" if epoch is None else epoch, "is_finetuned": epoch is not None,
                     "design_hash": plan.design_hash},
        "tasks": [{"name": name, "task": eval_task_reference(tasks[name]), "task_args": f"{name}/task_args.yaml",
                   "log_dir": f"{name}/logs"} for name in names],
    }
