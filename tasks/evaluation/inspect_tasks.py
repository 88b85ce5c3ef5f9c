"""How sweepflow calls an inspect-ai task: its reference, its arguments, and the contract they meet.

Reads: an evaluation script's source (parsed, never imported). Writes: nothing.
Every evaluation passes, through `task_args.yaml`, the `TASK_PARAMETERS`: `system_prompt` (the
run's training prompt: the seed's rule that evaluation uses the prompt training used),
`dataset`, `split` (the design's test split) and `input_field` / `output_field`. inspect only
warns ("param ... not used by task") when a task lacks one and then evaluates the task's own
default data without the prompt, so `contract_problems` refuses such a task at plan time.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from tasks.model.design import EvalTask
from tasks.model.plan import Run

TASK_PARAMETERS = ("system_prompt", "dataset", "split", "input_field", "output_field")


def _task_definitions(script: Path) -> dict[str, ast.FunctionDef]:
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return {}
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
                if name == "task":
                    found[node.name] = node
    return found


def inspect_task_functions(script: Path) -> list[str]:
    """Names of the `@task`-decorated functions in an inspect-ai task file (by reading it)."""
    return list(_task_definitions(script))


def contract_problems(script: Path, function: str | None) -> list[str]:
    """Why the task cannot take what sweepflow passes (empty when it can), each naming the parameter."""
    definitions = _task_definitions(script)
    if function is None and len(definitions) != 1:
        if not definitions:
            return ["has no @task function (inspect-ai's `from inspect_ai import task`)"]
        return [f"has {len(definitions)} @task functions ({', '.join(definitions)}); name one in task_function"]
    name = function or next(iter(definitions))
    node = definitions.get(name)
    if node is None:
        return [f"has no @task function {name!r} (found: {', '.join(definitions) or 'none'})"]
    if node.args.kwarg is not None:
        return []
    params = {a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs}
    missing = [p for p in TASK_PARAMETERS if p not in params]
    return [
        f"task {name} has no parameter {p!r}; sweepflow passes {', '.join(TASK_PARAMETERS)} to every evaluation task"
        for p in missing
    ]


def task_reference(script: Path, function: str | None) -> str:
    """`script@function` for `inspect eval`: it only resolves an absolute path with the @ form."""
    if function is None:
        found = inspect_task_functions(script)
        function = found[0] if len(found) == 1 else None
    return f"{script}@{function}" if function else str(script)


def task_args(run: Run, task: EvalTask) -> dict[str, Any]:
    """The `-T` arguments of one evaluation (written to task_args.yaml, never on a command line).

    The task contract (`TASK_PARAMETERS`): the training system prompt, the data file, its test
    split and the field names, so the task evaluates the design's data the way training read it.
    """
    fields = run.params.dataset
    return {
        "system_prompt": run.params.system_prompt,
        "dataset": str(task.dataset or fields.path),
        "split": fields.test_split,
        "input_field": fields.input_field,
        "output_field": fields.output_field,
    }
