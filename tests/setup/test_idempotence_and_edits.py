"""Writing a run group's files: idempotent, deterministic, user edits kept or backed up, dry run.

Setting up twice rewrites nothing (same bytes, mtimes and inodes); two groups of one design differ
only by their folder; an edited file is kept (or, with overwrite, backed up first); a deleted file
is recreated; a dry run writes nothing into the group and previews what would change.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from tasks.model._cluster import cluster_settings
from tasks.model._layout import PLAN_MD
from tasks.setup._experiment import SETUP_BEGIN, set_up_group
from tasks.setup._files import experiment_files
from tasks.setup._materialize import MANIFEST
from tests.support import fakesite
from tests.support.setup_groups import folders, plan_of, planned, snapshot

# ------------------------------------------------------------------ idempotency, edits, dry run


def test_setup_twice_changes_nothing(group: Path) -> None:
    first = set_up_group(group)
    assert first.count("create") == len(first.changes) == 38  # 6 evaluation jobs: a script and a tasks file each
    before = snapshot(group)
    assert MANIFEST.as_posix() in before and SETUP_BEGIN in (group / PLAN_MD).read_text()
    second = set_up_group(group)
    assert second.count("unchanged") == len(second.changes) and second.status_entries_added == 0
    assert snapshot(group) == before  # same bytes, same mtimes and inodes: nothing rewritten
    assert not [p for p in group.rglob("*.tmp")]


def test_setup_is_deterministic_across_groups(tmp_path: Path) -> None:
    """Two groups planned from the same design in different folders differ only by the folder."""
    a = planned(fakesite.design(tmp_path / "a"), base=tmp_path / "a")
    b = planned(fakesite.design(tmp_path / "b"), base=tmp_path / "b")
    set_up_group(a)
    set_up_group(b)

    def normalized(group: Path, root: Path) -> dict[str, str]:
        digest = plan_of(group).design_hash  # of the resolved design: it holds the absolute paths
        files = {}
        for rel, (content, *_) in snapshot(group).items():
            text = content.decode().replace(str(root), "<root>").replace(digest, "<hash>").replace(digest[:12], "<hash>")
            files[rel] = text
        # these hold the free disk space measured at planning (the cache: experiment.yaml as JSON)
        files.pop("experiment.yaml"), files.pop(PLAN_MD), files.pop(".sweepflow/experiment.cache.json")
        return files

    files_a, files_b = normalized(a, tmp_path / "a"), normalized(b, tmp_path / "b")
    manifest_a, manifest_b = files_a.pop(MANIFEST.as_posix()), files_b.pop(MANIFEST.as_posix())  # hashes of the files
    assert files_a == files_b
    assert sorted(yaml.safe_load(manifest_a)["files"]) == sorted(yaml.safe_load(manifest_b)["files"])


def test_user_edit_is_kept_and_backed_up_when_overwritten(group: Path) -> None:
    set_up_group(group)
    run = plan_of(group).finetune_runs[0].name
    config, script = f"{run}/finetune.yaml", f"{run}/evaluations/eval_epoch_1.slurm"
    generated = {rel: (group / rel).read_text() for rel in (config, script)}
    edited = {rel: text + "# my change\n" for rel, text in generated.items()}
    for rel, text in edited.items():
        (group / rel).write_text(text)

    report = set_up_group(group)
    assert {c.path for c in report.changes if c.action == "kept-edit"} == {config, script}
    assert report.count("unchanged") == len(report.changes) - 2
    assert all((group / rel).read_text() == text for rel, text in edited.items())

    # a changed setting updates the files nobody edited, and still keeps the edited ones
    other = plan_of(group).finetune_runs[1].name
    report = set_up_group(group, cluster_overrides={"time_limit": "08:00:00"})
    updated = {c.path for c in report.changes if c.action == "update"}
    assert f"{other}/finetune.slurm" in updated and f"{run}/finetune.slurm" in updated
    assert "#SBATCH --time=08:00:00" in (group / other / "finetune.slurm").read_text()
    assert {c.path for c in report.changes if c.action == "kept-edit"} == {config, script}
    assert all((group / rel).read_text() == text for rel, text in edited.items())

    report = set_up_group(group, overwrite_edits=True)
    overwritten = {c.path: c.backup for c in report.changes if c.action == "overwrite-edit"}
    assert set(overwritten) == {config, script}
    for rel, backup in overwritten.items():
        assert backup is not None and backup.startswith(f"{rel}.bak-")
        assert (group / backup).read_text() == edited[rel]
        assert (group / rel).read_text() == generated[rel]
    assert ((group / script).stat().st_mode & 0o777) == 0o755
    again = set_up_group(group)
    assert again.count("unchanged") == len(again.changes)

    # a second overwrite within the same second never replaces the first backup
    (group / config).write_text("# edited again\n")
    report = set_up_group(group, overwrite_edits=True)
    backups = sorted(p.name for p in (group / run).glob("finetune.yaml.bak-*"))
    assert len(backups) == 2
    assert {(group / run / b).read_text() for b in backups} == {edited[config], "# edited again\n"}


def test_deleted_file_is_recreated(group: Path) -> None:
    set_up_group(group)
    (group / "submit_all.sh").unlink()
    shutil.rmtree(group / plan_of(group).control_runs[0].name)
    report = set_up_group(group)
    assert {c.path for c in report.changes if c.action == "create"} == {
        "submit_all.sh", f"{plan_of(group).control_runs[0].name}/evaluations/eval.slurm",
        f"{plan_of(group).control_runs[0].name}/evaluations/eval.tasks.yaml",
        f"{plan_of(group).control_runs[0].name}/evaluations/cap/task_args.yaml",
        f"{plan_of(group).control_runs[0].name}/evaluations/model_args.yaml",
    }
    assert os.access(group / "submit_all.sh", os.X_OK)


def test_dry_run_writes_nothing_and_reports_changes(group: Path) -> None:
    before, dirs = snapshot(group), folders(group)
    report = set_up_group(group, preview=True)
    try:
        assert report.dry_run and report.preview_dir is not None and not report.preview_dir.is_relative_to(group)
        assert snapshot(group) == before and folders(group) == dirs  # not even .sweepflow/
        assert report.count("create") == len(report.changes) == 38
        assert report.summary().endswith("would change: 38 create")
        plan = plan_of(group)
        expected = experiment_files(plan, cluster_settings(plan.design))
        preview = snapshot(report.preview_dir)
        assert sorted(preview) == sorted(expected)
        for rel, generated in expected.items():
            assert preview[rel][0].decode() == generated.content
            assert preview[rel][3] & 0o777 == (0o755 if generated.executable else 0o644)
    finally:
        shutil.rmtree(report.preview_dir)

    set_up_group(group)
    run = plan_of(group).finetune_runs[0].name
    (group / run / "finetune.yaml").write_text("# mine\n")
    before = snapshot(group)
    report = set_up_group(group, preview=True, cluster_overrides={"eval_time_limit": "02:00:00"})
    try:
        actions = {c.path: c.action for c in report.changes}
        assert actions[f"{run}/finetune.yaml"] == "kept-edit"
        assert {p for p, a in actions.items() if a == "update"} == {p for p in actions if "/evaluations/" in p and p.endswith(".slurm")}
        assert "#SBATCH --time=02:00:00" in (report.preview_dir / run / "evaluations/eval_epoch_1.slurm").read_text()
        assert snapshot(group) == before
    finally:
        shutil.rmtree(report.preview_dir)
    report = set_up_group(group, preview=True, overwrite_edits=True)
    shutil.rmtree(report.preview_dir)
    assert {c.path for c in report.changes if c.action == "overwrite-edit"} == {f"{run}/finetune.yaml"}
    assert snapshot(group) == before and not list(group.rglob("*.bak-*"))
