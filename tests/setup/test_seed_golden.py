"""The seed's 2x2 example (`examples/seed_2x2/design.yaml`) set up: every file against golden files.

Every generated file, the setup manifest, runs_status.yaml and runs_plan.md's Setup section are
compared with tests/golden/seed_2x2_setup; and the files follow the plan (fine-tunes, the
evaluation matrix, submit_all.sh, task arguments).

The golden site is built under the fixed folder /tmp/sweepflow-golden-site (its paths appear in
the files) with the repository path pinned to /opt/sweepflow. Regenerate the golden files with
`UPDATE_GOLDEN=1 pytest tests/setup/test_seed_golden.py`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from tasks.model._layout import PLAN_MD, STATUS_FILE
from tasks.setup._experiment import SETUP_BEGIN, SETUP_END, SetupReport, set_up_group
from tasks.setup._materialize import MANIFEST
from tests.support.paths import GOLDEN_DIR
from tests.support.setup_groups import pin_repo_path, plan_of, planned, seed_design, write_file

GOLDEN = GOLDEN_DIR / "seed_2x2_setup"
GOLDEN_SITE = Path("/tmp/sweepflow-golden-site")  # fixed: its paths are in the golden files
SECTION_FILE = "runs_plan.md.setup-section"  # golden name of runs_plan.md's Setup section


def setup_section(group: Path) -> str:
    """runs_plan.md's Setup section (between its markers), as its golden file holds it."""
    text = (group / PLAN_MD).read_text()
    start, end = text.index(SETUP_BEGIN), text.index(SETUP_END) + len(SETUP_END)
    return text[start:end] + "\n"


# ------------------------------------------------------------------ golden files


def golden_files(group: Path, report: SetupReport) -> dict[str, str]:
    """Every generated file, the manifest, runs_status.yaml and runs_plan.md's Setup section."""
    files = {change.path: (group / change.path).read_text() for change in report.changes}
    files[MANIFEST.as_posix()] = (group / MANIFEST).read_text()
    files[STATUS_FILE] = (group / STATUS_FILE).read_text()
    files[SECTION_FILE] = setup_section(group)
    return files


def test_seed_2x2_golden_files(monkeypatch: pytest.MonkeyPatch) -> None:
    pin_repo_path(monkeypatch)
    with FileLock(f"{GOLDEN_SITE}.lock"):
        shutil.rmtree(GOLDEN_SITE, ignore_errors=True)
        GOLDEN_SITE.mkdir(parents=True)
        try:
            group = planned(seed_design(GOLDEN_SITE))
            report = set_up_group(group)
            actual = golden_files(group, report)
            modes = {c.path: (group / c.path).stat().st_mode & 0o777 for c in report.changes}
        finally:
            shutil.rmtree(GOLDEN_SITE, ignore_errors=True)
    # 4 fine-tunes x 3 files; 11 task_args.yaml; 6 runs x model_args.yaml; 6 evaluation jobs (one per checkpoint)
    # x (script + tasks file); README.md, submit_all.sh
    assert report.count("create") == len(report.changes) == 12 + 11 + 6 + 12 + 2
    assert {p for p, m in modes.items() if m == 0o755} == {p for p in modes if p.endswith((".slurm", ".sh"))}
    assert set(modes.values()) == {0o755, 0o644}
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel, text in actual.items():
            write_file(GOLDEN / rel, text)
    expected = {p.relative_to(GOLDEN).as_posix(): p.read_text() for p in GOLDEN.rglob("*") if p.is_file()}
    assert sorted(actual) == sorted(expected), "generated files differ from the golden set (UPDATE_GOLDEN=1 regenerates)"
    for rel, text in actual.items():
        assert text == expected[rel], f"{rel} differs from tests/golden/seed_2x2_setup/{rel} (UPDATE_GOLDEN=1 regenerates)"


def test_seed_2x2_files_follow_the_plan(seed_group: Path) -> None:
    plan = plan_of(seed_group)
    files = {c.path for c in set_up_group(seed_group).changes}
    finetuned = [r.name for r in plan.finetune_runs]
    assert finetuned == [
        "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64", "Llama-3.2-3B-Instruct_rank4", "Llama-3.2-3B-Instruct_rank64"
    ]
    for run in finetuned:
        assert {f"{run}/finetune.yaml", f"{run}/finetune.slurm", f"{run}/setup_finetune.yaml"} <= files
        assert f"{run}/evaluations/eval_epoch_1.slurm" in files  # last of 2 epochs: one job for both tasks
        tasks = yaml.safe_load((seed_group / run / "evaluations" / "eval_epoch_1.tasks.yaml").read_text())["tasks"]
        assert [t["name"] for t in tasks] == ["capitalization_8L", "reasoning"]
        for task in ("capitalization_8L", "reasoning"):
            assert f"{run}/evaluations/{task}/task_args.yaml" in files
    # the matrix: the 1B base model is evaluated on capitalization only
    assert "Llama-3.2-1B-Instruct_base/evaluations/eval.slurm" in files
    base = yaml.safe_load((seed_group / "Llama-3.2-1B-Instruct_base/evaluations/eval.tasks.yaml").read_text())
    assert [t["name"] for t in base["tasks"]] == ["capitalization_8L"]
    assert not any(f.startswith("Llama-3.2-1B-Instruct_base/evaluations/reasoning") for f in files)
    assert not any(f.startswith("Llama-3.2-3B-Instruct_base/finetune") for f in files)
    submit = (seed_group / "submit_all.sh").read_text()
    assert [line for line in submit.splitlines() if " finetune.slurm" in line] == [
        f"ft=$(submit {run} finetune.slurm)" for run in finetuned
    ]
    assert submit.count('"--dependency=afterok:$ft"') == sum(len(plan.run(r).checkpoint_jobs) for r in finetuned)
    args = yaml.safe_load((seed_group / finetuned[0] / "evaluations" / "reasoning" / "task_args.yaml").read_text())
    assert args == {
        "system_prompt": "", "dataset": str(plan.design.evaluation.tasks[1].dataset), "split": "test",
        "input_field": "input", "output_field": "output",
    }
