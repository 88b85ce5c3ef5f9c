"""Extend a run group: compare a new plan with the group's recorded plan and plan only the difference.

Reads: the group's `experiment.yaml` and `runs_status.yaml` (through `tasks.model`). Writes nothing
itself: `tasks/planning/_deliver.py` writes what `plan_extension` decides, and `extension_status`
is the locked update it applies to runs_status.yaml.

A new plan against a group is one of:
- `new`: no group of that name and date yet;
- `same`: the recorded design, identical (a no-op: nothing is rewritten);
- `extension`: runs added (models, levels, replicates, controls) and/or evaluation-only jobs on
  existing checkpoints (tasks, evaluated epochs), runs or evaluations dropped; every existing
  run keeps its name, parameters, estimates and files. A change that alters what existing runs
  mean is refused naming the field (`tasks/planning/_design_diff.py`): that is a new run group.

Dropped runs keep their plan entry (`Plan.dropped_runs`) and their files; their stages become
`dropped` (terminal) with the reason, and a note of what they were (`was completed`), so that
adding them back restores what had finished.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from datetime import date as date_cls
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tasks.core._errors import DesignError, Problem
from tasks.core._files import FileFormatError
from tasks.model._layout import PLAN_FILE, STATUS_FILE
from tasks.model._plan import DroppedRun, Estimates, Extension, Plan, Run, RunEstimate
from tasks.model._plan_file import load_plan
from tasks.model._status import BASE_NOTE, FINETUNE, RunsStatus, StageStatus, initial_status
from tasks.model._status_file import load_status
from tasks.planning._design_diff import ABSENT, NEW_GROUP, design_changes, refused_changes

Kind = Literal["new", "same", "extension"]
IN_FLIGHT = ("submitted", "running")
WAS = "was "  # the note a dropped stage keeps: what it was before it was dropped


class ExtensionPlan(BaseModel):
    """What delivering `plan` into its group does: create it, nothing, or extend it (`extension`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: Kind
    plan: Plan  # new: the plan; same: the recorded plan; extension: the merged plan to write
    extension: Extension | None = None
    requested: Plan | None = None  # the plan as asked for (for the group's date): what deliver_plan takes

    def delta_text(self) -> str:
        """The extension in a few markdown lines (the approval form, the terminal, the logs)."""
        ext = self.extension
        if ext is None:
            return ""
        changes = "".join(f"  - `{c.field}`: {c.old} -> {c.new}\n" for c in ext.changes) or "  - (none)\n"
        return (f"Extend the run group `{self.plan.run_group}`: {len(ext.new_runs)} new run(s) "
                f"({', '.join(ext.new_runs) or '-'}), {len(ext.unchanged_runs)} unchanged, "
                f"{len(ext.dropped_runs)} dropped ({', '.join(ext.dropped_runs) or '-'}); "
                f"{len(ext.new_evaluations)} new evaluation(s) of existing checkpoints, "
                f"{len(ext.dropped_evaluations)} dropped. Finished runs and their files stay as they are.\n"
                f"Changed fields:\n{changes}")


def _why_dropped(run: Run, new: Plan) -> str:
    """Which change took `run` out of the design, naming the field."""
    levels = new.factor_levels()
    if run.model not in new.design.models:
        return f"its model was removed (models: {run.model})"
    if run.is_control:
        return "base-model controls are off (controls: false)"
    for factor, label in run.factors.items():
        if label not in levels.get(factor, []):
            return f"its level was removed (factors.{factor}[{label}])"
    if run.replicate > new.design.replicates:
        return f"replicate {run.replicate} is beyond replicates: {new.design.replicates}"
    return "it is no longer in the design"


def _dropped_reason(extension_at: str, why: str) -> str:
    return f"dropped by the extension of {extension_at[:10]}: {why}"


def _alias(run: Run, old: dict[str, Run], taken: set[str]) -> str | None:
    """The existing run a new run is (same cell and replicate under another name: 1 <-> N replicates)."""
    for name, existing in old.items():
        if name not in taken and existing.cell_name == run.cell_name and existing.replicate == run.replicate:
            return name
    return None


def _run_problems(old: Run, new: Run, auto_batch: bool) -> list[Problem]:
    """A kept run must train exactly as recorded (an estimated batch size may differ: the recorded one stays)."""
    skip = {"batch_size"} if auto_batch else set()
    before, after = old.params.model_dump(mode="json", exclude=skip), new.params.model_dump(mode="json", exclude=skip)
    problems = [Problem(field=f"training.{key}", message=(
        f"run {old.name}: {before.get(key)!r} -> {after.get(key)!r} changes a run of this group; {NEW_GROUP}"))
        for key in sorted(before) if before.get(key) != after.get(key)]
    if (old.model, old.kind, str(old.model_dir)) != (new.model, new.kind, str(new.model_dir)):
        problems.append(Problem(field="models", message=f"run {old.name}: its model changes; {NEW_GROUP}"))
    return problems


def _match_runs(existing: Plan, new: Plan) -> tuple[list[Run], list[str], list[str], list[Problem]]:
    """The merged runs (kept ones as recorded, with the new design's evaluations), new names, kept names."""
    old = {r.name: r for r in existing.runs}
    dropped_before = {d.run.name: d.run for d in existing.dropped_runs}
    auto = new.design.training.batch_size == "auto" and existing.design.training.batch_size == "auto"
    merged: list[Run] = []
    added: list[str] = []
    kept: list[str] = []
    problems: list[Problem] = []
    taken = {r.name for r in new.runs if r.name in old}
    for run in new.runs:
        name = run.name if run.name in old else _alias(run, old, taken)
        recorded = old.get(name) if name else dropped_before.get(run.name)
        if name:
            taken.add(name)
        if recorded is None:
            merged.append(run)
            added.append(run.name)
            continue
        problems += _run_problems(recorded, run, auto)
        jobs = [job.model_copy(update={"run": recorded.name}) for job in run.evaluations]
        merged.append(recorded.model_copy(update={"evaluations": jobs}))
        (kept if name else added).append(recorded.name)
    return merged, added, kept, problems


def _kept_estimate(recorded: RunEstimate, planned: RunEstimate | None) -> RunEstimate:
    """A kept run's recorded estimate (its fine-tune's time limit stays), its evaluations as now planned.

    A task or evaluated epoch added to a kept run adds to its checkpoints' jobs: their time limit
    must cover every task they now run, not only the ones first planned.
    """
    if planned is None or (planned.eval_jobs, planned.eval_minutes) == (recorded.eval_jobs, recorded.eval_minutes):
        return recorded
    gpu_hours = recorded.gpu_hours + (planned.eval_minutes - recorded.eval_minutes) / 60.0
    return recorded.model_copy(update={"eval_jobs": planned.eval_jobs, "eval_minutes": planned.eval_minutes,
                                       "gpu_hours": round(gpu_hours, 4)})


def _estimates(existing: Plan, new: Plan, merged: list[Run], kept: list[str]) -> Estimates:
    """The new plan's estimates, with every kept run's own recorded estimate (its time limits stay).

    A kept run's evaluation figures are the new plan's (they cover the evaluations it now has).
    """
    runs = {r.name: new.estimates.runs[r.name] for r in merged if r.name not in kept and r.name in new.estimates.runs}
    planned = {(r.kind, r.cell_name, r.replicate): new.estimates.runs.get(r.name) for r in new.runs}
    for run in merged:
        if run.name in kept and run.name in existing.estimates.runs:
            runs[run.name] = _kept_estimate(existing.estimates.runs[run.name],
                                            planned.get((run.kind, run.cell_name, run.replicate)))
    return new.estimates.model_copy(update={"runs": {r.name: runs[r.name] for r in merged if r.name in runs}})


def _in_flight(status: RunsStatus | None, run: str, keys: list[str] | None = None) -> list[str]:
    entry = status.runs.get(run) if status else None
    if entry is None:
        return []
    stages = [(FINETUNE, entry.finetune), *entry.evaluations.items()]
    return [f"{run}/{key}" for key, stage in stages if (keys is None or key in keys) and stage.status in IN_FLIGHT]


def _busy_problems(status: RunsStatus | None, dropped_runs: list[str], dropped_evals: list[str]) -> list[Problem]:
    """A problem for each stage the extension would drop while its job is queued or running."""
    busy = [s for name in dropped_runs for s in _in_flight(status, name)]
    for item in dropped_evals:
        run, key = item.split("/", 1)
        busy += _in_flight(status, run, [key])
    return [Problem(field="runs", message=(
        f"{stage} is queued or running and the new design drops it: cancel it first (cancel-runs), "
        "or keep it in the design")) for stage in busy]


def plan_extension(existing: Plan | None, new: Plan, status: RunsStatus | None, now: str) -> ExtensionPlan:
    """Classify `new` against the recorded plan and, for an extension, merge them; `DesignError` when refused."""
    if existing is None:
        return ExtensionPlan(kind="new", plan=new)
    if existing.design_hash == new.design_hash:
        return ExtensionPlan(kind="same", plan=existing)
    changes = design_changes(existing.design, new.design)
    problems = refused_changes(existing.design, new.design, changes)
    if existing.recipe != new.recipe and not problems:
        problems.append(Problem(field="recipe", message=f"{existing.recipe} -> {new.recipe}; {NEW_GROUP}"))
    merged, added, kept, run_problems = _match_runs(existing, new)
    problems += [] if problems else run_problems
    names = {r.name for r in merged}
    dropped = [r for r in existing.runs if r.name not in names]
    old_jobs = {(r.name, j.key) for r in existing.runs for j in r.evaluations}
    new_jobs = {(r.name, j.key) for r in merged for j in r.evaluations}
    new_evals = sorted(f"{r}/{k}" for r, k in new_jobs - old_jobs if r in kept)
    dropped_evals = sorted(f"{r}/{k}" for r, k in old_jobs - new_jobs if r in names)
    problems += _busy_problems(status, [r.name for r in dropped], dropped_evals)
    if problems:
        raise DesignError(problems, heading=f"This design cannot extend the run group {existing.run_group}")
    extension = Extension(
        at=now, from_design_hash=existing.design_hash, to_design_hash=new.design_hash, new_runs=added,
        unchanged_runs=kept, dropped_runs=[r.name for r in dropped], new_evaluations=new_evals,
        dropped_evaluations=dropped_evals, changes=changes)
    still_dropped = [d for d in existing.dropped_runs if d.run.name not in names]
    plan = new.model_copy(update={
        "run_group": existing.run_group, "group_dir": existing.group_dir, "created": existing.created,
        "runs": merged, "estimates": _estimates(existing, new, merged, kept),
        "extensions": [*existing.extensions, extension],
        "dropped_runs": still_dropped + [DroppedRun(run=r, reason=_dropped_reason(now, _why_dropped(r, new)),
                                                    dropped=now) for r in dropped],
    })
    return ExtensionPlan(kind="extension", plan=plan, extension=extension)


def _drop(stage: StageStatus, reason: str, now: str) -> None:
    if stage.status != "dropped":
        stage.mark("dropped", now=now, reason=reason, note=stage.note or f"{WAS}{stage.status}")


READDED = "its task was added back: scored again (its definition may have changed while it was out of the design)"


def _revive(stage: StageStatus, control_finetune: bool, now: str, rescore: bool = False) -> None:
    """A dropped stage back in the design: completed work stays completed, the rest is pending again.

    `rescore`: an evaluation of a task that was out of the design and is added back. Nothing
    checked its definition meanwhile, so its earlier result is not restored: it is scored again
    (its last attempt marked reopened, so that attempt's log is not counted as its result).
    """
    if stage.status != "dropped":
        return
    was = (stage.note or "").removeprefix(WAS)
    if control_finetune:
        stage.mark("skipped", now=now, reason=None, note=BASE_NOTE)
    elif was == "completed" and not rescore:
        stage.mark("completed", now=now, reason=None, note=None)
    else:
        if stage.attempts:
            stage.attempts[-1].reopened = True
        stage.mark("pending", now=now, reason=READDED if rescore else None, note=None, job_id=None, output=None)


def _instant(iso: str) -> datetime:
    moment = datetime.fromisoformat(iso)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _readded_tasks(extensions: list[Extension]) -> dict[str, list[datetime]]:
    """Task name -> when extensions added it back into the design (its definition may have changed while out)."""
    found: dict[str, list[datetime]] = {}
    for extension in extensions:
        for change in extension.changes:
            if change.old == ABSENT and (m := re.fullmatch(r"evaluation\.tasks\[([^\]]+)\]", change.field)):
                found.setdefault(m.group(1), []).append(_instant(extension.at))
    return found


def _added_back_since(readded_at: list[datetime], stage: StageStatus) -> bool:
    """Whether the stage's task was added back after the stage was dropped (by this or any later extension).

    A run dropped first, its task then removed and added back with another definition, the run
    re-added last: its earlier score belongs to the old definition, so it is not restored.
    """
    if stage.status != "dropped" or not readded_at:
        return False
    dropped_at = _instant(stage.last_updated) if stage.last_updated else None
    return dropped_at is None or any(at > dropped_at for at in readded_at)


def extension_status(plan: Plan, extension: Extension, now: str) -> Callable[[RunsStatus], None]:
    """The runs_status.yaml update of an extension: new stages pending, dropped ones `dropped`, revived ones back."""
    fresh = initial_status(plan)
    reasons = {d.run.name: d.reason for d in plan.dropped_runs}
    eval_reason = _dropped_reason(now, "its evaluation is no longer in the design")
    readded = _readded_tasks([*plan.extensions, extension])

    def update(status: RunsStatus) -> None:
        busy = _busy_problems(status, extension.dropped_runs, extension.dropped_evaluations)
        if busy:  # submitted since the extension was planned (it read the status unlocked): nothing is written
            raise DesignError(busy, heading=f"This design cannot extend the run group {plan.run_group}")
        for name in extension.dropped_runs:
            entry = status.runs.get(name)
            for stage in [entry.finetune, *entry.evaluations.values()] if entry else []:
                _drop(stage, reasons.get(name, eval_reason), now)
        for item in extension.dropped_evaluations:
            run, key = item.split("/", 1)
            if run in status.runs and key in status.runs[run].evaluations:
                _drop(status.runs[run].evaluations[key], eval_reason, now)
        for planned in plan.runs:
            entry = status.runs.setdefault(planned.name, fresh.runs[planned.name])
            _revive(entry.finetune, planned.is_control, now)
            tasks = {job.key: job.task for job in planned.evaluations}
            for key, stage in fresh.runs[planned.name].evaluations.items():
                stage = entry.evaluations.setdefault(key, stage)
                _revive(stage, False, now, rescore=_added_back_since(readded.get(tasks.get(key, ""), []), stage))

    return update


def newest_group_date(plan: Plan) -> str | None:
    """The date of the newest existing run group of this design's name under its output_dir."""
    name = plan.design.name
    days = []
    for found in Path(plan.group_dir).parent.glob(f"{name}_*/{PLAN_FILE}"):
        day = found.parent.name.removeprefix(f"{name}_")
        try:
            date_cls.fromisoformat(day)
        except ValueError:
            continue
        days.append(day)
    return max(days) if days else None


def retarget(plan: Plan, day: str) -> Plan:
    """The same plan for the run group of another date (nothing is planned again)."""
    group = f"{plan.design.name}_{day}"
    return plan.model_copy(update={"run_group": group, "group_dir": Path(plan.group_dir).parent / group})


def existing_plan(group_dir: Path) -> tuple[Plan | None, RunsStatus | None]:
    """The group's recorded plan and status (None, None when the folder holds no plan)."""
    if not (group_dir / PLAN_FILE).exists():
        return None, None
    plan = load_plan(group_dir)
    try:
        status = load_status(group_dir / STATUS_FILE)
    except FileFormatError:
        status = None
    return plan, status


def prepare_extension(plan: Plan, now: str, extend_only: bool = False, date_given: bool = True) -> ExtensionPlan:
    """What planning `plan` would do to its group; with `extend_only`, the group must exist.

    `extend_only` without a date (`date_given` false) extends the newest group of the design's name.
    """
    if extend_only and not date_given:
        day = newest_group_date(plan)
        plan = retarget(plan, day) if day else plan
    existing, status = existing_plan(Path(plan.group_dir))
    if extend_only and existing is None:
        raise DesignError([Problem(field="extend_only", message=(
            f"there is no run group {plan.run_group} to extend (none of the name {plan.design.name!r} under "
            f"{Path(plan.group_dir).parent}); plan without extend_only to start one, or give its date"))])
    return plan_extension(existing, plan, status, now).model_copy(update={"requested": plan})


__all__ = ["ExtensionPlan", "extension_status", "newest_group_date", "plan_extension", "prepare_extension",
           "retarget"]
