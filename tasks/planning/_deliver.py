"""Deliver an approved plan into its run group folder, all or nothing; read it back.

Writes, in `plan.group_dir`: `experiment.yaml` (the Plan, machine-readable: what every later
flow reads), `runs_plan.md` (the seed's plan document) and `runs_status.yaml` (all pending).
Reads: an existing group's `experiment.yaml` (through `tasks.model.load_plan`).

A new group is written into a hidden staging folder `{output_dir}/.{group}.staging-<pid>` and
renamed into place, so a crash never leaves half a plan. Delivering the same design again
rewrites the plan files but keeps `runs_status.yaml` (progress is never reset); a different
design under an existing group name is refused before anything is written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tasks.core._errors import DesignError, Problem
from tasks.core._files import (
    FileFormatError,
    atomic_write_text,
    dump_yaml,
    fsync_dir,
)
from tasks.core._templating import render_template
from tasks.model._layout import PLAN_FILE, PLAN_MD, SETUP_BEGIN, SETUP_END, STATUS_FILE
from tasks.model._plan import Plan
from tasks.model._plan_file import load_plan, write_plan_cache
from tasks.model._status import initial_status
from tasks.model._status_file import StatusStore, dump_status
from tasks.planning._extend import extension_status, plan_extension
from tasks.planning._plan_markdown import render_plan_markdown

STAGING_MARK = ".staging-"


def render_experiment_yaml(plan: Plan) -> str:
    """experiment.yaml: a header comment, then the Plan as YAML (PyYAML, never hand-formatted)."""
    return render_template("state/experiment.yaml.j2", plan=plan, body=dump_yaml(plan.model_dump(mode="json")))


def render_deliverables(plan: Plan, now: str) -> dict[str, str]:
    """The three files, rendered before anything touches the disk."""
    return {
        PLAN_FILE: render_experiment_yaml(plan),
        PLAN_MD: render_plan_markdown(plan),
        STATUS_FILE: dump_status(initial_status(plan), now),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Staging folders left by a delivery that crashed (its process is gone)."""
    for leftover in parent.glob(f".{name}{STAGING_MARK}*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _deliver_new(group: Path, files: dict[str, str]) -> None:
    parent = group.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(parent, group.name)
    staging = parent / f".{group.name}{STAGING_MARK}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for name, text in files.items():
            atomic_write_text(staging / name, text)
        os.rename(staging, group)  # atomic; may replace an empty folder, never a non-empty one
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(parent)


def _refuse(group: Path, why: str) -> DesignError:
    return DesignError([Problem(field="name", message=f"run group {group} {why}", path=str(group / PLAN_FILE))])


def _deliver_existing(plan: Plan, group: Path, files: dict[str, str], now: str) -> None:
    try:
        existing = load_plan(group)
    except FileFormatError as error:
        if not (group / PLAN_FILE).exists():
            raise _refuse(group, "already exists and is not a sweepflow run group (no experiment.yaml); "
                                 "choose another name or date, or move that folder away") from None
        raise _refuse(group, f"already exists but its plan cannot be read ({error.detail}); fix or move it") from None
    if existing.design_hash == plan.design_hash:
        if not (group / STATUS_FILE).exists():  # only when missing: progress is never reset
            atomic_write_text(group / STATUS_FILE, files[STATUS_FILE])
        return  # the same design: nothing is rewritten
    _deliver_extension(existing, plan, group, now)


def keep_setup_section(new_text: str, old_text: str) -> str:
    """`new_text` (a freshly rendered runs_plan.md) with the Setup section `old_text` had, if any."""
    start, end = old_text.find(SETUP_BEGIN), old_text.find(SETUP_END)
    if start < 0 or end < start:
        return new_text
    return new_text.rstrip("\n") + "\n\n" + old_text[start:end + len(SETUP_END)] + "\n"


def _deliver_extension(existing: Plan, plan: Plan, group: Path, now: str) -> None:
    """Extend the group: status first (one locked update), then experiment.yaml, then runs_plan.md."""
    store = StatusStore(group / STATUS_FILE)
    status = store.read() if store.path.exists() else None
    extended = plan_extension(existing, plan, status, now)
    if extended.extension is None:
        return
    merged = extended.plan
    experiment = render_experiment_yaml(merged)
    markdown = render_plan_markdown(merged)
    if status is None:
        atomic_write_text(group / STATUS_FILE, dump_status(initial_status(merged), now))
    else:
        store.update(extension_status(merged, extended.extension, now), force=True)
    atomic_write_text(group / PLAN_FILE, experiment)
    old_md = (group / PLAN_MD).read_text(encoding="utf-8") if (group / PLAN_MD).exists() else ""
    atomic_write_text(group / PLAN_MD, keep_setup_section(markdown, old_md))
    write_plan_cache(group, experiment.encode("utf-8"), merged)


def deliver_plan(plan: Plan, now: str) -> Path:
    """Write experiment.yaml, runs_plan.md and runs_status.yaml into `plan.group_dir`; return it.

    New group: all three appear at once (staging folder + rename). Same design again: nothing is
    written. Different design: the group is extended (`tasks/planning/_extend.py`), or, when the
    change alters what its runs mean, `DesignError` and nothing is written.
    """
    group = Path(plan.group_dir)
    files = render_deliverables(plan, now)
    empty = group.is_dir() and not group.is_symlink() and not any(group.iterdir())
    if (group.exists() or group.is_symlink()) and not empty:
        _deliver_existing(plan, group, files, now)
        return group
    try:
        _deliver_new(group, files)
    except OSError:
        if not group.exists():
            raise
        # another delivery created the group between the check and the rename
        _deliver_existing(plan, group, files, now)
        return group
    write_plan_cache(group, files[PLAN_FILE].encode("utf-8"), plan)
    return group


__all__ = ["deliver_plan", "render_deliverables", "render_experiment_yaml"]
