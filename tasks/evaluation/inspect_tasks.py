"""How sweepflow calls an inspect-ai task: its reference on the command line, and its arguments.

Reads: an evaluation script's source (parsed, never imported). Writes: nothing.
Every evaluation passes `system_prompt` (the run's training prompt: the seed's rule that
evaluation uses the prompt training used) and `dataset` through `task_args.yaml`.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from tasks.model.design import EvalTask
from tasks.model.plan import Run


def inspect_task_functions(script: Path) -> list[str]:
    """Names of the `@task`-decorated functions in an inspect-ai task file (by reading it)."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
                if name == "task":
                    found.append(node.name)
    return found


def task_reference(script: Path, function: str | None) -> str:
    """`script@function` for `inspect eval`: it only resolves an absolute path with the @ form."""
    if function is None:
        found = inspect_task_functions(script)
        function = found[0] if len(found) == 1 else None
    return f"{script}@{function}" if function else str(script)


def task_args(run: Run, task: EvalTask) -> dict[str, Any]:
    """The `-T` arguments of one evaluation (written to task_args.yaml, never on a command line)."""
    dataset = task.dataset or run.params.dataset.path
    return {"system_prompt": run.params.system_prompt, "dataset": str(dataset)}
