"""Field-level differences between a run group's recorded design and a new one, and which are allowed.

Reads and writes nothing. `design_changes` names every changed field (a dotted path: factor levels
as `factors.lora_rank[rank32]`, tasks as `evaluation.tasks[capitalization].script`);
`refused_changes` says which of them would change what the group's existing runs mean (their data,
recipe, training settings, an existing level's value, an existing task's definition): those are a
new run group, not an extension. Growth (models, levels, replicates, controls, tasks, evaluated
epochs, the matrix) and settings that only schedule or describe (cluster, GPU memory, analysis,
notes) are allowed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tasks.core._errors import Problem
from tasks.model._design import ExperimentDesign
from tasks.model._factors import factor_levels
from tasks.model._plan import FieldChange

ABSENT = "-"
NEW_GROUP = "that is a new run group: give the design a new name (or plan it with another date)"

# Fields an extension may change, by what the change does (first matching pattern wins).
GROWTH = (  # add or drop runs / evaluations; never change an existing one
    r"models", r"replicates", r"controls", r"evaluation\.epochs", r"evaluation\.matrix(\..*)?",
    r"factors\.[^.\[]+\[[^\]]+\]", r"evaluation\.tasks\[[^\]]+\]",
)
FREE = (  # describe the experiment or schedule jobs: the finished runs mean the same
    r"question", r"task", r"notes", r"creator", r"cluster(\..*)?", r"gpu\.(memory_gb|available|type)",
    r"analysis(\..*)?", r"paths\.(prior_runs|scratch_dir)", r"evaluation\.accept_train_test_overlap",
    r"training\.accept_truncation", r"evaluation\.tasks\[[^\]]+\]\.description",
)
# What a refused field changes, for the message (first matching pattern wins).
MEANING = (
    (r"dataset(\..*)?", "training data"),
    (r"gpu\.count", "recipe (GPUs per fine-tune)"),
    (r"training\.validation", "recipe (the validation recipe)"),
    (r"training\..*", "training settings"),
    (r"factors\.[^.\[]+\[[^\]]+\]", "factor level's value"),
    (r"factors\..*", "run names (every run is a cell of the factors)"),
    (r"evaluation\.tasks\[[^\]]+\]\..*", "evaluation task"),
    (r"evaluation\.(max_tokens|limit)", "evaluations (generation length, samples scored)"),
    (r"paths\.models_dir", "base models"),
    (r"paths\.output_dir", "run group folder"),
    (r"name", "run group"),
)


def _short(value: Any) -> str:
    if value is None:
        return ABSENT
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _levels(name: str, raw: Any) -> dict[str, Any]:
    try:
        return dict(factor_levels(name, raw))
    except ValueError:
        return {"?": raw}


def _flatten(data: Any, prefix: str, out: dict[str, Any]) -> None:
    """Leaves of the design's JSON under dotted paths; factors by level label and tasks by name."""
    if prefix == "factors" and isinstance(data, dict):
        for name, raw in data.items():
            for label, value in _levels(name, raw).items():
                out[f"factors.{name}[{label}]"] = value
        return
    if prefix == "evaluation.tasks" and isinstance(data, list):
        for task in data:
            _flatten({k: v for k, v in task.items() if k != "name"}, f"evaluation.tasks[{task['name']}]", out)
        return
    if isinstance(data, dict) and data and prefix not in ("cluster", "evaluation.matrix"):
        for key, value in data.items():
            _flatten(value, f"{prefix}.{key}" if prefix else key, out)
        return
    out[prefix] = data


def _flat(design: ExperimentDesign) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _flatten(design.model_dump(mode="json"), "", out)
    return out


def _task_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """A whole task added or removed is one change (`evaluation.tasks[x]`), not one per setting."""
    def tasks(flat: dict[str, Any]) -> set[str]:
        return {m.group(1) for k in flat if (m := re.match(r"evaluation\.tasks\[([^\]]+)\]", k))}

    old_tasks, new_tasks = tasks(old), tasks(new)
    return [FieldChange(field=f"evaluation.tasks[{t}]", old="present" if t in old_tasks else ABSENT,
                        new="present" if t in new_tasks else ABSENT)
            for t in sorted(old_tasks ^ new_tasks)]


def design_changes(old: ExperimentDesign, new: ExperimentDesign) -> list[FieldChange]:
    """Every field whose value differs, in a stable order (a whole task added or removed: one change)."""
    before, after = _flat(old), _flat(new)
    whole_tasks = _task_changes(before, after)
    moved = {c.field for c in whole_tasks}
    changes = [
        FieldChange(field=key, old=_short(before.get(key)), new=_short(after.get(key)))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key) and not any(key.startswith(f"{t}.") for t in moved)
    ]
    return sorted(changes + whole_tasks, key=lambda c: c.field)


def _matches(field: str, patterns: tuple[str, ...]) -> bool:
    return any(re.fullmatch(p, field) for p in patterns)


def _factor_set_problems(old: ExperimentDesign, new: ExperimentDesign) -> list[Problem]:
    added, removed = sorted(set(new.factors) - set(old.factors)), sorted(set(old.factors) - set(new.factors))
    return [Problem(field=f"factors.{name}", message=(
        f"factor {name!r} is {'added' if name in added else 'removed'}: it renames every run of the group; "
        f"{NEW_GROUP}")) for name in added + removed]


def refused_changes(old: ExperimentDesign, new: ExperimentDesign, changes: list[FieldChange]) -> list[Problem]:
    """The changes an extension refuses, each naming its field and what it would change."""
    problems = _factor_set_problems(old, new)
    renamed = {p.field for p in problems}
    for change in changes:
        if any(change.field.startswith(f"{f}[") for f in renamed):
            continue
        both = change.old != ABSENT and change.new != ABSENT
        level = re.fullmatch(r"factors\.[^.\[]+\[[^\]]+\]", change.field)
        if _matches(change.field, FREE) or (_matches(change.field, GROWTH) and not (level and both)):
            continue
        what = next((m for p, m in MEANING if re.fullmatch(p, change.field)), "existing runs")
        problems.append(Problem(field=change.field, message=(
            f"changed from {change.old} to {change.new}: this changes what the group's finished runs mean "
            f"(their {what}); {NEW_GROUP}")))
    return problems


__all__ = ["design_changes", "refused_changes"]
