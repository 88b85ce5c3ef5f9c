"""Set up a planned run group: run folders, torchtune configs, job scripts (the backend's), README.

Reads: `{group}/experiment.yaml` (the resolved plan written by plan-runs; never runs_plan.md).
Writes (through `tasks/setup/_materialize.py`): every generated file; adds missing entries to
`runs_status.yaml` (never removes or resets one; a damaged file is first restored,
`tasks/model/_status_restore.py`); refreshes the "Setup" section of
`runs_plan.md` between its markers (the rest of the file is left as it is). The files of a
stage that was submitted, is running, has completed or was dropped are never rewritten (what ran
stays as it ran: an extended group's finished runs keep every byte); a missing one is recreated.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tasks.backends import job_naming
from tasks.core._files import FileFormatError, atomic_write_text
from tasks.core._templating import render_template
from tasks.model._cluster import ClusterSettings, cluster_settings
from tasks.model._group import GroupRef, RunGroup
from tasks.model._job_naming import JobNaming
from tasks.model._layout import (
    EVALUATIONS_DIR,
    FINETUNE_CONFIG,
    FINETUNE_STEM,
    MODEL_ARGS,
    PLAN_FILE,
    PLAN_MD,
    SETUP_BEGIN,
    SETUP_END,
    SETUP_RECORD,
    STATUS_FILE,
    TASK_ARGS,
    eval_script_name,
    eval_tasks_file_name,
)
from tasks.model._plan import Plan, Run
from tasks.model._status import FinetuneOverrides, RunsStatus, RunStatus, initial_status
from tasks.model._status_restore import restore_status
from tasks.setup._fidelity import FidelityCheck, check_fidelity
from tasks.setup._files import GeneratedFile, experiment_files
from tasks.setup._materialize import FileChange, dry_run, materialize
from tasks.training._config import validate_config
from tasks.training._overrides import overrides_from_status


class SetupReport(BaseModel):
    """What one setup did (or would do): every file's change, status entries added, runs with overrides."""

    group_dir: Path
    dry_run: bool
    preview_dir: Path | None = None
    changes: list[FileChange]
    status_entries_added: int = 0
    status_restored: str | None = None  # runs_status.yaml was damaged: what was restored, from where
    runs_with_overrides: list[str] = []  # fine-tunes re-rendered with a retry's batch size / resume
    kept_started: int = 0  # files of submitted, running, completed or dropped stages: left as they ran

    def count(self, action: str) -> int:
        """How many files had this action (create, update, unchanged, kept-edit, overwrite-edit)."""
        return sum(1 for c in self.changes if c.action == action)

    def summary(self) -> str:
        """One line: the group folder and how many files each action touched."""
        actions = ("create", "update", "unchanged", "kept-edit", "overwrite-edit")
        counts = ", ".join(f"{self.count(a)} {a}" for a in actions if self.count(a))
        head = "would change" if self.dry_run else "set up"
        restored = f"; {self.status_restored}" if self.status_restored else ""
        kept = f"; {self.kept_started} files of started or finished stages left as they ran" \
            if self.kept_started else ""
        return f"{self.group_dir}: {head}: {counts or 'nothing'}{restored}{kept}"


def tree(group_dir: Path, files: list[str], max_runs: int | None = None) -> str:
    """A `tree`-like listing of the generated files (and the status/plan files)."""
    paths = sorted(set(files) | {PLAN_MD, STATUS_FILE, PLAN_FILE})
    nested: dict[str, Any] = {}
    for rel in paths:
        node = nested
        for part in rel.split("/"):
            node = node.setdefault(part, {})
    lines = [f"{group_dir.name}/"]

    def walk(node: dict[str, Any], prefix: str, depth: int) -> None:
        items = sorted(node.items(), key=lambda kv: (not kv[1], kv[0]))
        shown = items if (max_runs is None or depth > 0) else items[:max_runs]
        for i, (name, child) in enumerate(shown):
            last = i == len(shown) - 1 and len(shown) == len(items)
            lines.append(f"{prefix}{'└── ' if last else '├── '}{name}{'/' if child else ''}")
            walk(child, prefix + ("    " if last else "│   "), depth + 1)
        if len(shown) < len(items):
            lines.append(f"{prefix}└── ... ({len(items) - len(shown)} more)")

    walk(nested, "", 0)
    return "\n".join(lines)


def _missing_status_entries(status: RunsStatus, plan: Plan) -> RunsStatus:
    """Add runs/evaluations the plan has and the status file lacks; keep everything else."""
    fresh = initial_status(plan)
    for name, entry in fresh.runs.items():
        if name not in status.runs:
            status.runs[name] = entry
            continue
        for key, stage in entry.evaluations.items():
            status.runs[name].evaluations.setdefault(key, stage)
    return status


def _count_entries(status: RunsStatus) -> int:
    return sum(1 for _ in status.stages())


def _update_status(group: RunGroup, current: RunsStatus | None) -> int:
    """Create runs_status.yaml, or add the entries it lacks; `current` is its content (read once)."""
    plan, store = group.plan, group.status
    if current is None:
        fresh = initial_status(plan)
        store.write(fresh)
        return _count_entries(fresh)
    before = _count_entries(current)
    added = _count_entries(_missing_status_entries(current, plan)) - before
    if added:  # rewriting an unchanged file would only move its timestamp; the locked update re-reads it
        store.update(lambda status: _missing_status_entries(status, plan))
    return added


def _update_plan_markdown(group: RunGroup, files: list[str], cluster: ClusterSettings) -> None:
    plan, path = group.plan, group.layout.plan_md
    section = render_template(
        "reports/runs_plan_setup.md.j2", plan=plan, tree=tree(plan.group_dir, files, max_runs=12), cluster=cluster,
        begin=SETUP_BEGIN, end=SETUP_END,
    )
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    before, found, rest = text.partition(SETUP_BEGIN)
    if found:
        _, _, after = rest.partition(SETUP_END)
        new = before + section.rstrip("\n") + after
    else:
        new = text.rstrip("\n") + "\n\n" + section
    if new != text:
        atomic_write_text(path, new)


STARTED = ("submitted", "running", "completed", "dropped")  # a stage whose files are what ran (or was dropped)


def started_files(plan: Plan, status: RunsStatus | None, group_dir: Path, naming: JobNaming | None = None) -> set[str]:
    """Generated files (relative paths) of started or finished stages that exist: setup leaves them as they are.

    `naming`: the backend's job file names (default: those of the plan's own cluster settings).
    """
    if status is None:
        return set()
    naming = naming or job_naming(cluster_settings(plan.design))
    found: set[str] = set()
    for run in plan.runs:
        entry = status.runs.get(run.name)
        if entry is None:
            continue
        if entry.finetune.status in STARTED:
            found |= {f"{run.name}/{name}" for name in (SETUP_RECORD, FINETUNE_CONFIG, naming.script(FINETUNE_STEM))}
        found |= _started_eval_files(run, entry, naming)
    return {rel for rel in found if (group_dir / rel).exists()}


def _started_eval_files(run: Run, entry: RunStatus, naming: JobNaming) -> set[str]:
    """A run's evaluation files that started stages ran with.

    A task's arguments, and the run's model arguments, once one of its stages started; a
    checkpoint's job script and tasks file only when every task of it started: a task added
    since (an extension) or still pending needs them rendered with it. A job is always submitted
    with the names of the tasks it runs, so a job in flight runs the same tasks whatever the file holds.
    """
    evals = f"{run.name}/{EVALUATIONS_DIR}"
    found: set[str] = set()
    for job in run.checkpoint_jobs:
        started = {e.task for e in job.evaluations
                   if (s := entry.evaluations.get(e.key)) is not None and s.status in STARTED}
        found |= {f"{evals}/{task}/{TASK_ARGS}" for task in started}
        if started:
            found.add(f"{evals}/{MODEL_ARGS}")
        if started == set(job.tasks):
            found |= {f"{evals}/{eval_script_name(job, naming)}", f"{evals}/{eval_tasks_file_name(job)}"}
    return found


@dataclass
class RenderedSetup:
    """Everything setup-experiment will write, rendered in memory (nothing written yet)."""

    group: RunGroup
    plan: Plan
    cluster: ClusterSettings
    current: RunsStatus | None  # runs_status.yaml as read before rendering (None: no file yet)
    overrides: dict[str, FinetuneOverrides]  # retries' batch size / resume, per fine-tune
    files: dict[str, GeneratedFile]


def _read_as_it_is(group: RunGroup) -> RunsStatus | None:
    """runs_status.yaml, damaged or not (writing restores it); None when absent or unreadable."""
    if not group.layout.status_file.exists():
        return None
    try:
        return group.status.read(check=False)
    except FileFormatError:
        return None


def render_setup(group: GroupRef, cluster_overrides: dict[str, Any] | None = None) -> RenderedSetup:
    """Read the plan and the status, and render every file of the run group."""
    group = RunGroup.of(group)
    plan = group.plan
    cluster = cluster_settings(plan.design, cluster_overrides)
    current = _read_as_it_is(group)
    overrides = overrides_from_status(current) if current is not None else {}
    return RenderedSetup(group, plan, cluster, current, overrides, experiment_files(plan, cluster, overrides))


def validate_rendered_configs(rendered: RenderedSetup) -> list[str]:
    """`tune validate` on every rendered finetune.yaml; the failures.

    Each config is written alone into a temporary folder; a failure reads
    `{run}/finetune.yaml: <last line of the error>`.
    """
    failures = []
    with tempfile.TemporaryDirectory(prefix="sweepflow-validate-") as tmp:
        for rel, generated in sorted(rendered.files.items()):
            if not rel.endswith(f"/{FINETUNE_CONFIG}"):
                continue
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(generated.content, encoding="utf-8")
            ok, output = validate_config(path)
            if not ok:
                last = output.strip().splitlines()[-1] if output.strip() else "invalid"
                failures.append(f"{rel}: {last}")
    return failures


def check_rendered_fidelity(rendered: RenderedSetup) -> list[FidelityCheck]:
    """The fidelity check (`tasks/setup/_fidelity.py`) on the rendered files; raises FidelityError."""
    return check_fidelity(rendered.plan, rendered.files)


def write_setup(rendered: RenderedSetup, overwrite_edits: bool = False, preview: bool = False) -> SetupReport:
    """Write what `render_setup` rendered (or, with `preview`, into a temporary folder)."""
    plan, cluster, files, overrides = rendered.plan, rendered.cluster, rendered.files, rendered.overrides
    if preview:
        preview_dir, changes = dry_run(plan.group_dir, files, overwrite_edits)
        return SetupReport(
            group_dir=plan.group_dir, dry_run=True, preview_dir=preview_dir, changes=changes,
            runs_with_overrides=sorted(overrides),
        )
    current = rendered.current
    group = rendered.group
    restored = restore_status(group.status, plan) if group.layout.status_file.exists() else None
    if group.layout.status_file.exists():
        # a retry may have changed a fine-tune's batch size or resume point since the render
        latest = group.status.read()
        if overrides_from_status(latest) != overrides:
            overrides = overrides_from_status(latest)
            files = experiment_files(plan, cluster, overrides)
        current = latest
    kept = started_files(plan, current, plan.group_dir, job_naming(cluster))
    changes = materialize(plan.group_dir, {rel: f for rel, f in files.items() if rel not in kept}, overwrite_edits)
    added = _update_status(group, current) + (len(restored.restored) if restored else 0)
    _update_plan_markdown(group, list(files), cluster)
    return SetupReport(
        group_dir=plan.group_dir, dry_run=False, changes=changes, status_entries_added=added,
        runs_with_overrides=sorted(overrides), status_restored=restored.summary() if restored else None,
        kept_started=len(kept),
    )


def set_up_group(
    group: GroupRef,
    overwrite_edits: bool = False,
    preview: bool = False,
    cluster_overrides: dict[str, Any] | None = None,
) -> SetupReport:
    """Create or refresh the run group's files. Everything is rendered before anything is written."""
    return write_setup(render_setup(group, cluster_overrides), overwrite_edits, preview)
