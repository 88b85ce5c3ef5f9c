"""The task contract: a task must take every argument sweepflow passes, or the plan refuses it.

inspect only warns "param 'dataset' not used by task" and then evaluates the task's own
default data without the training prompt; these tests pin that the refusal names the task and
the parameter (the plan-time refusal through plan-runs: tests/flows/test_flow_plan_runs.py).
"""

from __future__ import annotations

from pathlib import Path

from tasks.evaluation.inspect_tasks import TASK_PARAMETERS, contract_problems
from tests.support.fakesite import TASK_FILE

HEAD = "from inspect_ai import task\n\n@task\n"


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "eval.py"
    path.write_text(body)
    return path


def test_the_example_and_fake_site_tasks_meet_the_contract(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    assert contract_problems(repo / "examples" / "capitalization" / "eval.py", None) == []
    assert contract_problems(_script(tmp_path, TASK_FILE), None) == []


def test_each_missing_parameter_is_named(tmp_path: Path) -> None:
    script = _script(tmp_path, HEAD + "def mine(data_path=None, system_prompt=''):\n    pass\n")
    problems = contract_problems(script, None)
    assert [p.split("'")[1] for p in problems] == ["dataset", "split", "input_field", "output_field"]
    assert problems[0].startswith("task mine has no parameter 'dataset'; sweepflow passes " + ", ".join(TASK_PARAMETERS))


def test_var_keyword_takes_everything_and_keyword_only_counts(tmp_path: Path) -> None:
    assert contract_problems(_script(tmp_path, HEAD + "def t(**kwargs):\n    pass\n"), None) == []
    params = ", ".join(f"{p}=None" for p in TASK_PARAMETERS)
    assert contract_problems(_script(tmp_path, HEAD + f"def t(*, {params}):\n    pass\n"), None) == []


def test_no_task_ambiguous_tasks_and_a_wrong_name(tmp_path: Path) -> None:
    assert "has no @task function" in contract_problems(_script(tmp_path, "def t():\n    pass\n"), None)[0]
    two = _script(tmp_path, HEAD + "def a(**kw):\n    pass\n\n@task\ndef b(**kw):\n    pass\n")
    assert "has 2 @task functions (a, b); name one in task_function" in contract_problems(two, None)[0]
    assert contract_problems(two, "b") == []
    assert "has no @task function 'c' (found: a, b)" in contract_problems(two, "c")[0]
