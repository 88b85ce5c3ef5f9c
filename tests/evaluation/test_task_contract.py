"""The task contract by need: the design's `args:` mapping, name matches, and what fidelity requires.

inspect only warns "param 'x' not used by task" and then evaluates without it; these tests pin
what reaches a task, which tasks read their own data, and that every refusal names the task and
says what to add (the plan-time refusals through plan-runs: tests/planning/test_task_args_plan.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.evaluation._inspect_tasks import TaskNotFound, TaskSignature, script_signature
from tasks.evaluation._task_contract import bound_arguments, contract_problems, own_data
from tasks.model._design import TASK_PLACEHOLDERS, EvalTask
from tests.support.fakesite import TASK_FILE

HEAD = "from inspect_ai import task\n\n@task\n"
ALL = {p: f"${{{p}}}" for p in TASK_PLACEHOLDERS}


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "eval.py"
    path.write_text(body)
    return path


def _task(**fields) -> EvalTask:
    return EvalTask.model_validate({"name": "t", "script": "eval.py", **fields})


def test_the_example_and_fake_site_tasks_get_every_placeholder_by_name(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    for script in (repo / "examples" / "capitalization" / "eval.py", _script(tmp_path, TASK_FILE)):
        signature = script_signature(script, None)
        assert bound_arguments(_task(), signature) == ALL
        assert contract_problems(_task(), signature, [("r", "You are terse.")]) == []
        assert not own_data(_task(), signature)


def test_a_task_with_its_own_data_and_names_is_accepted_when_training_has_no_prompt() -> None:
    signature = TaskSignature(("data_path", "instructions", "split"))
    task = _task()
    assert own_data(task, signature)
    # its `split` is a split of its own data: not the design's test split by name
    assert bound_arguments(task, signature) == {}
    assert contract_problems(task, signature, [("r1", ""), ("r2", "")]) == []


def test_the_system_prompt_must_reach_the_task_when_training_used_one() -> None:
    signature = TaskSignature(("data_path", "instructions"))
    (problem,) = contract_problems(_task(), signature, [("r1", ""), ("r2", "Answer in one word.")])
    assert problem.startswith("task t: training uses a system prompt (run r2: 'Answer in one word.')")
    assert "add `<its system-prompt parameter>: ${system_prompt}` under the task's `args:` " \
        "(its parameters: data_path, instructions)" in problem
    mapped = _task(args={"instructions": "${system_prompt}"})
    assert contract_problems(mapped, signature, [("r2", "Answer in one word.")]) == []
    assert bound_arguments(mapped, signature) == {"instructions": "${system_prompt}"}


def test_a_mapping_plus_name_matches_and_literals() -> None:
    signature = TaskSignature(("data_file", "system_prompt", "part", "limit"))
    task = _task(args={"data_file": "${dataset}", "part": "${split}", "limit": 5})
    assert not own_data(task, signature)
    assert bound_arguments(task, signature) == {
        "data_file": "${dataset}", "part": "${split}", "limit": 5, "system_prompt": "${system_prompt}",
    }
    assert contract_problems(task, signature, [("r", "p")]) == []


def test_a_mapping_naming_a_parameter_the_task_lacks_is_refused() -> None:
    signature = TaskSignature(("data_file",))
    (problem,) = contract_problems(_task(args={"data_file": "${dataset}", "shots": 3}), signature, [])
    assert problem == "task t: args names 'shots', which the task does not have (its parameters: data_file)"
    assert contract_problems(_task(args={"shots": 3}), TaskSignature((), takes_any=True), []) == []


def test_a_task_declared_to_evaluate_a_file_must_receive_it() -> None:
    signature = TaskSignature(("path",))
    (problem,) = contract_problems(_task(dataset="/data/x.json"), signature, [])
    assert problem.startswith("task t evaluates the file /data/x.json but none of its parameters receives it; add "
                              "`<its data parameter>: ${dataset}` under the task's `args:` (its parameters: path)")
    assert "or set `own_data: true`" in problem
    (declared,) = contract_problems(_task(own_data=False), signature, [])
    assert "evaluates the design's dataset (own_data: false)" in declared
    assert contract_problems(_task(own_data=False, args={"path": "${dataset}"}), signature, []) == []
    # the file named for a task that reads it itself: accepted, nothing passed
    assert contract_problems(_task(dataset="/data/x.json", own_data=True), signature, []) == []


def test_own_data_true_keeps_the_design_data_away() -> None:
    signature = script_signature(Path(__file__).resolve().parents[2] / "examples" / "capitalization" / "eval.py", None)
    task = _task(own_data=True)
    assert bound_arguments(task, signature) == {"system_prompt": "${system_prompt}"}
    (problem,) = contract_problems(_task(own_data=True, args={"dataset": "${dataset}"}), signature, [])
    assert "own_data is true but args passes ${dataset}" in problem


@pytest.mark.parametrize(("value", "message"), [
    ("${datset}", "unknown placeholder '${datset}' (placeholders: ${system_prompt}, ${dataset}"),
    ("Q: ${system_prompt}", "a placeholder must be the whole value"),
    (["${split}"], "not inside a list or mapping"),
])
def test_bad_placeholders_are_refused_by_the_design(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="task t, parameter p: ") as caught:
        _task(args={"p": value})
    assert message in str(caught.value)


def test_script_or_registered_task_exactly_one() -> None:
    with pytest.raises(ValueError, match="give either script"):
        EvalTask.model_validate({"name": "t"})
    with pytest.raises(ValueError, match="give either script"):
        _task(inspect_task="pkg/t")
    with pytest.raises(ValueError, match="name a registered task as inspect does"):
        EvalTask.model_validate({"name": "t", "inspect_task": "pkg/sub/t.py"})


def test_var_keyword_takes_everything_and_keyword_only_counts(tmp_path: Path) -> None:
    assert script_signature(_script(tmp_path, HEAD + "def t(**kwargs):\n    pass\n"), None).takes_any
    params = ", ".join(f"{p}=None" for p in TASK_PLACEHOLDERS)
    signature = script_signature(_script(tmp_path, HEAD + f"def t(*, {params}):\n    pass\n"), None)
    assert signature.parameters == TASK_PLACEHOLDERS


def test_no_task_ambiguous_tasks_and_a_wrong_name(tmp_path: Path) -> None:
    with pytest.raises(TaskNotFound, match="has no @task function"):
        script_signature(_script(tmp_path, "def t():\n    pass\n"), None)
    two = _script(tmp_path, HEAD + "def a(**kw):\n    pass\n\n@task\ndef b(x, **kw):\n    pass\n")
    with pytest.raises(TaskNotFound, match=r"has 2 @task functions \(a, b\); name one in task_function"):
        script_signature(two, None)
    assert script_signature(two, "b").parameters == ("x",)
    with pytest.raises(TaskNotFound, match=r"has no @task function 'c' \(found: a, b\)"):
        script_signature(two, "c")
