"""The runner of a checkpoint's evaluation job: one model load, each task its own .eval log.

Real inspect-ai (its `mockllm/model` provider stands in for hf/, whose load is what the job saves):
the fixture task of tests/fixtures/own_data_task twice under two names, and a task that cannot be
loaded. The model is loaded once for all tasks; a broken task fails alone; naming tasks runs only those.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.evaluation import run_tasks as runner
from tasks.evaluation._eval_logs import read_log_headers

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "own_data_task"


def _tasks_file(folder: Path, tasks: list[dict[str, Any]]) -> Path:
    task_dir = folder / "own_task"
    shutil.copytree(FIXTURE, task_dir)
    (folder / "model_args.yaml").write_text("{}\n")
    for entry in tasks:
        (folder / entry["name"]).mkdir()
        (folder / entry["name"] / "task_args.yaml").write_text(yaml.safe_dump(entry.pop("args")))
        entry.update(task_args=f"{entry['name']}/task_args.yaml", log_dir=f"{entry['name']}/logs")
    spec = {"run": "r1", "epoch": "0", "model": "mockllm/model", "model_args": "model_args.yaml", "max_tokens": 8,
            "limit": None, "metadata": {"run": "r1", "epoch": 0, "is_finetuned": True, "design_hash": "abc"},
            "tasks": tasks}
    path = folder / "eval_epoch_0.tasks.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _answer(messages: list[Any], *_: Any) -> Any:
    """Mockllm's reply, with its token usage given (else it counts tokens with tiktoken, which downloads)."""
    from inspect_ai.model import ModelOutput, ModelUsage

    output = ModelOutput.from_content(model="mockllm", content=str(messages[-1].text).upper())
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    return output


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model load (inspect's get_model) the runner makes."""
    import inspect_ai.model

    made: list[str] = []
    real = inspect_ai.model.get_model

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(str(args[0] if args else kwargs.get("model")))
        kwargs.pop("model_path")  # the hf/ provider's argument; mockllm has no model to load
        return real(*args, custom_outputs=_answer, memoize=False, **kwargs)

    monkeypatch.setattr(inspect_ai.model, "get_model", counting)
    return made


def test_every_task_on_one_model_load_each_its_own_log(tmp_path: Path, loads: list[str], capsys) -> None:
    task = str(tmp_path / "own_task" / "own_task.py") + "@own_words"
    path = _tasks_file(tmp_path, [
        {"name": "first", "task": task, "args": {"count": 2}},
        {"name": "broken", "task": str(tmp_path / "missing.py") + "@nothing", "args": {}},
        {"name": "second", "task": task, "args": {"count": 3, "instructions": "Capitalize."}},
    ])
    assert runner.main([str(path), "--model-path", "/models/ckpt"]) == 1  # one task failed
    assert loads == ["mockllm/model"]  # one load for the three tasks
    out = capsys.readouterr().out
    assert out.count("sweepflow: loaded model /models/ckpt once for 3 task(s)") == 1
    assert "sweepflow: task broken: error: " in out and "sweepflow: task second: success" in out  # it went on
    for name, samples in (("first", 2), ("second", 3)):
        [log] = read_log_headers(tmp_path / name / "logs")
        assert log.status == "success" and log.is_for("r1", 0)  # the job's metadata reaches each log
        assert log.header.results.total_samples == samples  # each task's own arguments
        assert log.metadata["design_hash"] == "abc" and log.metadata["is_finetuned"] is True
    assert not (tmp_path / "broken" / "logs").exists() or not list((tmp_path / "broken" / "logs").glob("*.eval"))


def test_naming_tasks_runs_those_alone(tmp_path: Path, loads: list[str]) -> None:
    task = str(tmp_path / "own_task" / "own_task.py") + "@own_words"
    path = _tasks_file(tmp_path, [{"name": "first", "task": task, "args": {"count": 1}},
                                  {"name": "second", "task": task, "args": {"count": 1}}])
    assert runner.main([str(path), "--model-path", "/m", "second"]) == 0
    assert loads == ["mockllm/model"]
    assert not list((tmp_path / "first").glob("logs/*.eval"))
    assert len(list((tmp_path / "second").glob("logs/*.eval"))) == 1
    assert runner.main([str(path), "--model-path", "/m", "third"]) == 2  # a task the job does not have
    assert len(loads) == 1  # refused before any load


def test_an_unusable_tasks_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "eval.tasks.yaml"
    path.write_text("run: r1\ntasks: nope\n")
    with pytest.raises(ValueError, match=f"{path}: not a usable tasks file"):
        runner.read_tasks_file(path)
