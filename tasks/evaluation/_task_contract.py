"""What an evaluation passes to its inspect task, and what it requires the task to take.

Reads and writes nothing (the task's parameters come from `inspect_tasks.task_signature`).

The design's `args:` maps the task's own parameter names to placeholders (`${system_prompt}`,
`${dataset}`, `${split}`, `${input_field}`, `${output_field}`: the run's values) or literal
values; a parameter named like a placeholder and not mapped gets it by name, as before `args:`
existed. What is required is what fidelity needs:
- the run's system prompt must reach the task when training used one (inspect would otherwise
  prompt the model without it, and only warn about an unused argument);
- the design's data must reach a task that evaluates it (`dataset:` given, or `own_data: false`);
- a task that receives no `${dataset}` reads its own data: accepted, marked "own data" in
  runs_plan.md, and its prompts are what the fidelity check compares with training's tokens.
The data-describing placeholders (split, fields) go by name only to a task that evaluates the
design's data: another task's `split` parameter means a split of its own data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tasks.evaluation._inspect_tasks import TaskSignature, task_signature
from tasks.model._design import PLACEHOLDER, TASK_PLACEHOLDERS, EvalTask
from tasks.model._plan import Run

_DATA_PLACEHOLDERS = ("split", "input_field", "output_field")


def _placeholder(name: str) -> str:
    return f"${{{name}}}"


def _receives(mapping: dict[str, Any], name: str) -> bool:
    return _placeholder(name) in mapping.values()


def bound_arguments(task: EvalTask, signature: TaskSignature) -> dict[str, Any]:
    """The task's parameter -> placeholder or literal: the design's `args:`, then the name matches."""
    bound = dict(task.args)
    by_name = [p for p in TASK_PLACEHOLDERS if p not in bound and signature.takes(p)]
    if task.own_data:
        by_name = [p for p in by_name if p == "system_prompt"]
    elif not evaluates_design_data(task, {**bound, **{p: _placeholder(p) for p in by_name}}):
        by_name = [p for p in by_name if p not in _DATA_PLACEHOLDERS]
    bound.update({p: _placeholder(p) for p in by_name})
    return bound


def evaluates_design_data(task: EvalTask, bound: dict[str, Any]) -> bool:
    """Whether the task evaluates the design's data (else it reads its own)."""
    if task.own_data is not None:
        return not task.own_data
    return task.dataset is not None or _receives(bound, "dataset")


def own_data(task: EvalTask, signature: TaskSignature) -> bool:
    """Whether the task reads its own data (runs_plan.md says "own data")."""
    return not evaluates_design_data(task, bound_arguments(task, signature))


def contract_problems(task: EvalTask, signature: TaskSignature, prompts: Iterable[tuple[str, str]]) -> list[str]:
    """Why the task cannot get what fidelity needs (empty when it can), each saying what to add.

    `prompts`: (run, system prompt) of the runs this task evaluates.
    """
    problems = [
        f"task {task.name}: args names {parameter!r}, which the task does not have ({signature.listed()})"
        for parameter in task.args if not signature.takes(parameter)
    ]
    bound = bound_arguments(task, signature)
    if task.own_data and _receives(task.args, "dataset"):
        problems.append(f"task {task.name}: own_data is true but args passes ${{dataset}} to it; remove one of them")
    elif evaluates_design_data(task, bound) and not _receives(bound, "dataset"):
        what = f"the file {task.dataset}" if task.dataset else "the design's dataset (own_data: false)"
        problems.append(
            f"task {task.name} evaluates {what} but none of its parameters receives it; add "
            f"`<its data parameter>: ${{dataset}}` under the task's `args:` ({signature.listed()})"
            + (", or set `own_data: true` if the task reads that file itself" if task.dataset else "")
        )
    used = next(((run, prompt) for run, prompt in prompts if prompt), None)
    if used is not None and not _receives(bound, "system_prompt"):
        run, prompt = used
        shown = prompt if len(prompt) <= 40 else prompt[:40] + "..."
        problems.append(
            f"task {task.name}: training uses a system prompt (run {run}: {shown!r}) but none of the task's "
            f"parameters receives it, so evaluation would prompt the model differently; add "
            f"`<its system-prompt parameter>: ${{system_prompt}}` under the task's `args:` ({signature.listed()})"
        )
    return problems


def placeholder_values(run: Run, task: EvalTask) -> dict[str, Any]:
    """The run's value of each placeholder: its training system prompt, the data file, split and fields."""
    fields = run.params.dataset
    return {
        "system_prompt": run.params.system_prompt,
        "dataset": str(task.dataset or fields.path),
        "split": fields.test_split,
        "input_field": fields.input_field,
        "output_field": fields.output_field,
    }


def task_args(run: Run, task: EvalTask, signature: TaskSignature | None = None) -> dict[str, Any]:
    """The `-T` arguments of one evaluation (written to task_args.yaml, never on a command line)."""
    signature = signature or task_signature(task)
    values = placeholder_values(run, task)
    filled = {}
    for parameter, value in bound_arguments(task, signature).items():
        found = PLACEHOLDER.match(value) if isinstance(value, str) else None
        filled[parameter] = values[found.group(1)] if found else value
    return filled
