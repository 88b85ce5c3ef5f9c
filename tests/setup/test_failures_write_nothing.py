"""Setup failures write nothing: a template that fails to render, a disk that fills up midway.

Neither a first setup nor an update leaves files, folders, temporary files or backups behind;
an edit being overwritten when the write fails stays as it was.
"""

from __future__ import annotations

import errno
import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

import tasks.setup._files as setup_files
from tasks.setup._experiment import set_up_group
from tests.support.setup_groups import folders, plan_of, snapshot

# ------------------------------------------------------------------ failures write nothing


def test_render_failure_writes_nothing(group: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = plan_of(group).runs[-1].name  # rendered last: everything else was rendered already
    real = setup_files.render_template

    def exploding(name: str, **context: Any) -> str:
        if name == "jobs/eval.sh.j2" and context["job"].run == victim:
            raise RuntimeError("template exploded")
        return real(name, **context)

    before, dirs = snapshot(group), folders(group)
    with monkeypatch.context() as patch:
        patch.setattr(setup_files, "render_template", exploding)
        with pytest.raises(RuntimeError, match="template exploded"):
            set_up_group(group)
    assert snapshot(group) == before and folders(group) == dirs

    set_up_group(group)
    before = snapshot(group)
    with monkeypatch.context() as patch:
        patch.setattr(setup_files, "render_template", exploding)
        with pytest.raises(RuntimeError, match="template exploded"):
            set_up_group(group, cluster_overrides={"time_limit": "08:00:00"})
    assert snapshot(group) == before


def _failing_mkstemp(monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    """tempfile.mkstemp raises 'No space left on device' from its `fail_at`-th call on."""
    real = tempfile.mkstemp
    calls = itertools.count(1)

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if next(calls) >= fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_write_failure_midway_changes_nothing(group: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before, dirs = snapshot(group), folders(group)
    with monkeypatch.context() as patch:
        _failing_mkstemp(patch, fail_at=8)
        with pytest.raises(OSError, match="No space left"):
            set_up_group(group)
    assert snapshot(group) == before and folders(group) == dirs  # no files, no folders, no temporary files

    set_up_group(group)
    before = snapshot(group)
    with monkeypatch.context() as patch:
        _failing_mkstemp(patch, fail_at=3)
        with pytest.raises(OSError, match="No space left"):
            set_up_group(group, cluster_overrides={"time_limit": "08:00:00"})
    assert snapshot(group) == before

    report = set_up_group(group, cluster_overrides={"time_limit": "08:00:00"})
    assert report.count("update") == 4 and not list(group.rglob("*.tmp"))
    assert set_up_group(group, cluster_overrides={"time_limit": "08:00:00"}).count("update") == 0

    # overwriting an edit that then fails to be written: the edit stays, no backup is left
    edited = group / plan_of(group).finetune_runs[0].name / "finetune.yaml"
    edited.write_text("# mine\n")
    before = snapshot(group)
    with monkeypatch.context() as patch:
        _failing_mkstemp(patch, fail_at=1)
        with pytest.raises(OSError, match="No space left"):
            set_up_group(group, overwrite_edits=True, cluster_overrides={"time_limit": "08:00:00"})
    assert snapshot(group) == before and not list(group.rglob("*.bak-*"))
