"""How sweepflow names an inspect-ai task and reads which parameters it takes.

Reads: an evaluation script's source (parsed, never imported), or, for a registered task
(`package/task`), inspect's registry, which imports the package through its `inspect_ai` entry
point. Writes: nothing. What sweepflow passes to those parameters, and what it requires of them,
is `tasks/evaluation/_task_contract.py`.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from pathlib import Path

from tasks.core._errors import SweepflowError
from tasks.model._design import EvalTask


@dataclass(frozen=True)
class TaskSignature:
    """The parameters of an inspect `@task` function; `takes_any` when it has `**kwargs`."""

    parameters: tuple[str, ...]
    takes_any: bool = False

    def takes(self, name: str) -> bool:
        """Whether inspect would hand the task an argument of this name."""
        return self.takes_any or name in self.parameters

    def listed(self) -> str:
        """The parameters, for a message."""
        shown = ", ".join(self.parameters) or "none"
        return f"its parameters: {shown}{', **kwargs' if self.takes_any else ''}"


class TaskNotFound(SweepflowError):
    """An evaluation task that cannot be found: no such @task function, or no such registered task."""

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


def task_reference(script: Path, function: str | None) -> str:
    """`script@function` for `inspect eval`: it only resolves an absolute path with the @ form."""
    if function is None:
        found = inspect_task_functions(script)
        function = found[0] if len(found) == 1 else None
    return f"{script}@{function}" if function else str(script)


def script_signature(script: Path, function: str | None) -> TaskSignature:
    """The parameters of the `@task` function `function` (default: the only one) in `script`."""
    definitions = _task_definitions(script)
    if function is None and len(definitions) != 1:
        if not definitions:
            raise TaskNotFound("has no @task function (inspect-ai's `from inspect_ai import task`)")
        found = ", ".join(definitions)
        raise TaskNotFound(f"has {len(definitions)} @task functions ({found}); name one in task_function")
    name = function or next(iter(definitions))
    node = definitions.get(name)
    if node is None:
        raise TaskNotFound(f"has no @task function {name!r} (found: {', '.join(definitions) or 'none'})")
    args = node.args
    return TaskSignature(
        tuple(a.arg for a in args.posonlyargs + args.args + args.kwonlyargs), takes_any=args.kwarg is not None
    )


def registered_signature(name: str) -> TaskSignature:
    """The parameters of the registered task `name` (`package/task`), as inspect resolves it here."""
    from inspect_ai._util.registry import registry_lookup

    try:
        found = registry_lookup("task", name)
    except Exception as error:  # the package's own import code: any error is a finding
        raise TaskNotFound(f"inspect could not load the package of {name!r}: {type(error).__name__}: {error}") from None
    if found is None:
        package = name.split("/")[0]
        raise TaskNotFound(
            f"inspect has no registered task {name!r} in this Python (is the package {package!r} installed? "
            "inspect finds a package's tasks through its `inspect_ai` entry point)"
        )
    params = inspect.signature(found).parameters.values()  # type: ignore[arg-type]
    return TaskSignature(
        tuple(p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)),
        takes_any=any(p.kind == p.VAR_KEYWORD for p in params),
    )


def task_signature(task: EvalTask) -> TaskSignature:
    """The parameters of a design's evaluation task, a script's or a registered one's (TaskNotFound if none)."""
    if task.inspect_task is not None:
        return registered_signature(task.inspect_task)
    assert task.script is not None  # the design allows exactly one of script and inspect_task
    return script_signature(task.script, task.task_function)


def eval_task_reference(task: EvalTask) -> str:
    """What `inspect eval` is given for a design's task: the registered name, or `script@function`."""
    if task.inspect_task is not None:
        return task.inspect_task
    assert task.script is not None
    return task_reference(task.script, task.task_function)
