"""Run every task of one evaluated checkpoint in one process, with ONE model load.

Executed inside a checkpoint's evaluation job (`templates/jobs/eval.sh.j2`):

    python -m tasks.evaluation.run_tasks eval_epoch_0.tasks.yaml --model-path DIR [TASK ...]

Reads: the tasks file (`eval[_epoch_N].tasks.yaml`, written by setup-experiment), the model
arguments file and each task's `task_args.yaml` it names (paths relative to the tasks file), and
the model in `--model-path` (loaded once with inspect's `get_model`, hf/ provider).
Writes: each task's inspect `.eval` log in its own log folder (`<task>/logs/`), and one line
"sweepflow: loaded model <path> once for N task(s)" on stdout (tests count model loads by it).
Each task runs with `inspect_ai.eval(task, model=<the loaded model>)`; one task's failure does
not stop the others. Exit code 0 when every task's log says success, 1 when any did not (each
task's own log says which; sync-status reads each), 2 when the tasks file is unusable.
Naming tasks on the command line runs only those (a retry of the ones that failed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskEntry(_Model):
    """One task of the job: its name, inspect reference, arguments file and log folder."""

    name: str
    task: str  # what `inspect eval` takes: `file.py@function` or a registered `package/task`
    task_args: str  # YAML file, relative to the tasks file's folder
    log_dir: str  # relative to the tasks file's folder


class TasksFile(_Model):
    """`eval[_epoch_N].tasks.yaml`: the checkpoint, how to load it, and its tasks."""

    run: str
    epoch: str  # `0`, `best`, or `base` (a base model)
    model: str  # inspect's model name, `hf/<run>[_epoch_N]`
    model_args: str  # YAML file of hf/ provider arguments, relative to the tasks file's folder
    max_tokens: int
    limit: int | None = None
    metadata: dict[str, Any]  # recorded in every task's .eval log (run, epoch, design_hash, ...)
    tasks: list[TaskEntry]


def read_tasks_file(path: Path) -> TasksFile:
    """The tasks file, validated; `ValueError` naming the file and the problem."""
    try:
        return TasksFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise ValueError(f"{path}: not a usable tasks file: {error}") from None


def _yaml_file(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def selected(spec: TasksFile, only: list[str]) -> list[TaskEntry]:
    """The tasks to run: all, or those named (`ValueError` for a name the file lacks)."""
    unknown = [name for name in only if name not in {t.name for t in spec.tasks}]
    if unknown:
        raise ValueError(f"no task {', '.join(unknown)} in this job (it has {', '.join(t.name for t in spec.tasks)})")
    return [t for t in spec.tasks if not only or t.name in only]


def run_tasks(tasks_file: Path, model_path: str, only: list[str] | None = None) -> dict[str, str]:
    """Load the model once, evaluate each task on it; task name -> its log's status ("error: ..." on a raise)."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import GenerateConfig, get_model

    spec = read_tasks_file(tasks_file)
    folder = tasks_file.parent
    tasks = selected(spec, only or [])
    model_args = {**_yaml_file(folder / spec.model_args), "model_path": model_path}
    model = get_model(spec.model, config=GenerateConfig(max_tokens=spec.max_tokens), **model_args)
    print(f"sweepflow: loaded model {model_path} once for {len(tasks)} task(s)", flush=True)
    outcome: dict[str, str] = {}
    for entry in tasks:
        try:
            logs = inspect_eval(
                entry.task, model=model, task_args=_yaml_file(folder / entry.task_args),
                log_dir=str(folder / entry.log_dir), limit=spec.limit, metadata=spec.metadata,
                max_tokens=spec.max_tokens, display="none",
            )
            outcome[entry.name] = ",".join(str(log.status) for log in logs) or "no log"
        except Exception as error:  # one task's failure (its task file, its data) must not stop the others
            outcome[entry.name] = f"error: {type(error).__name__}: {error}"
        print(f"sweepflow: task {entry.name}: {outcome[entry.name]}", flush=True)
    return outcome


def main(argv: list[str] | None = None) -> int:
    """The job's entry point: 0 when every task succeeded, 1 when one did not, 2 on a bad tasks file."""
    parser = argparse.ArgumentParser(prog="python -m tasks.evaluation.run_tasks", description=__doc__.split("\n")[0])
    parser.add_argument("tasks_file", type=Path)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("only", nargs="*", help="run only these tasks (a retry)")
    args = parser.parse_intermixed_args(argv)
    try:
        outcome = run_tasks(args.tasks_file, args.model_path, args.only)
    except ValueError as error:
        print(f"sweepflow: {error}", file=sys.stderr)
        return 2
    return 0 if all(status == "success" for status in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
