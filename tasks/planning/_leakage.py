"""Evaluation datasets parsed at plan time, and train/test overlap refused unless the design accepts it.

Reads: every evaluation task's own dataset (`evaluation.tasks[i].dataset`, a transfer set) and
every dataset the runs train on. Writes: nothing.
`eval_dataset_problems`: a task's own dataset must hold the test split (a JSON object with it, a
JSON list of records, or JSON lines) with the input and output fields the task is given.
`leakage_problems`: for each evaluated task, its test inputs that are also training inputs of a
dataset the runs train on (compared after case-folding and collapsing whitespace, as
`verify.normalise_text`), with counts and examples; empty when `evaluation.accept_train_test_overlap`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.core._errors import Problem
from tasks.model._design import DatasetSpec, ExperimentDesign
from tasks.model._plan import Run
from tasks.planning._verify import LEAK_EXAMPLES, normalise_text

ACCEPT = "evaluation.accept_train_test_overlap"


def read_test_records(path: Path, spec: DatasetSpec) -> tuple[list[dict[str, Any]], str | None]:
    """The test records of an evaluation data file, or a message saying what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [], f"cannot be read: {error}"
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            return [], f"is neither JSON nor JSON lines (line {error.lineno}): {error.msg}"
    if isinstance(data, dict):
        if spec.test_split not in data:
            return [], f"has no {spec.test_split!r} split (splits present: {', '.join(map(repr, data)) or 'none'})"
        data = data[spec.test_split]
    if not isinstance(data, list) or not data:
        return [], f"its {spec.test_split!r} records are {'empty' if data == [] else 'not a list'}"
    wanted = (spec.input_field, spec.output_field)
    bad = [i for i, r in enumerate(data) if not isinstance(r, dict) or any(k not in r for k in wanted)]
    if bad:
        return [], (f"record {bad[0]} lacks {' or '.join(map(repr, wanted))} ({len(bad)} of {len(data)} records "
                    f"are incomplete; the task reads {spec.input_field!r} and {spec.output_field!r})")
    return data, None


def eval_dataset_problems(design: ExperimentDesign, eval_datasets: dict[str, Path]) -> list[Problem]:
    """Each task's own dataset parsed: its test split and the fields the task reads are present."""
    problems: list[Problem] = []
    for i, task in enumerate(design.evaluation.tasks):
        path = eval_datasets.get(task.name)
        if path is None:
            continue
        _, why = read_test_records(path, design.dataset)
        if why:
            problems.append(Problem(field=f"evaluation.tasks[{i}].dataset", message=f"{task.name}: {why}",
                                    path=str(path)))
    return problems


def _split(path: Path, split: str, cache: dict[Path, Any]) -> list[dict[str, Any]]:
    if path not in cache:
        cache[path] = json.loads(path.read_text(encoding="utf-8"))
    records = cache[path].get(split) if isinstance(cache[path], dict) else None
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def leakage_problems(design: ExperimentDesign, runs: list[Run], eval_datasets: dict[str, Path]) -> list[Problem]:
    """Evaluated test inputs that are also training inputs, per task and training dataset (none when accepted)."""
    if design.evaluation.accept_train_test_overlap:
        return []
    cache: dict[Path, Any] = {}
    trained: dict[Path, DatasetSpec] = {}
    evaluated: dict[str, set[Path]] = {}  # task -> training datasets of the runs evaluating it
    for run in runs:
        path = Path(run.params.dataset.path)
        for job in run.evaluations:
            evaluated.setdefault(job.task, set()).add(path)
        if not run.is_control:
            trained.setdefault(path, run.params.dataset)
    problems: list[Problem] = []
    for i, task in enumerate(design.evaluation.tasks):
        own = eval_datasets.get(task.name)
        sources = [own] if own else sorted(evaluated.get(task.name, set()))
        for test_path in sources:
            spec = trained.get(test_path, design.dataset)
            tests = read_test_records(test_path, spec)[0] if own else _split(test_path, spec.test_split, cache)
            for train_path, train_spec in trained.items():
                seen = {normalise_text(r.get(train_spec.input_field, ""))
                        for r in _split(train_path, train_spec.train_split, cache)}
                leaked = [str(r.get(spec.input_field)) for r in tests
                          if normalise_text(r.get(spec.input_field, "")) in seen]
                if leaked:
                    problems.append(_problem(i, task.name, test_path, train_path, leaked, len(tests), bool(own)))
    return problems


def _problem(i: int, task: str, test_path: Path, train_path: Path, leaked: list[str], total: int,
             own: bool) -> Problem:
    examples = ", ".join(repr(x) for x in leaked[:LEAK_EXAMPLES])
    where = f"its own dataset {test_path.name}" if own else f"the {test_path.name} test split"
    return Problem(
        field=f"evaluation.tasks[{i}]" + (".dataset" if own else ""),
        message=f"{task}: {len(leaked)} of {total} test inputs of {where} also occur in the training data "
        f"{train_path.name} (compared ignoring case and whitespace), e.g. {examples}: their scores would measure "
        f"memorisation, not generalisation. Remove them from one side, or set {ACCEPT}: true to evaluate anyway",
        path=str(test_path),
    )
