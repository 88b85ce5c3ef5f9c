"""inspect eval resolves an absolute task file only as `file@task`: find the task function."""

from pathlib import Path

from tasks.evaluation._inspect_tasks import inspect_task_functions, task_reference


def test_single_task_function_is_named(tmp_path: Path) -> None:
    script = tmp_path / "eval.py"
    script.write_text("from inspect_ai import task\n\n@task\ndef capitalization(dataset=None):\n    pass\n\ndef helper():\n    pass\n")
    assert inspect_task_functions(script) == ["capitalization"]
    assert task_reference(script, None) == f"{script}@capitalization"


def test_explicit_function_wins_and_ambiguity_keeps_the_path(tmp_path: Path) -> None:
    script = tmp_path / "eval.py"
    script.write_text("import inspect_ai\n\n@inspect_ai.task\ndef a():\n    pass\n\n@inspect_ai.task(name='b')\ndef b():\n    pass\n")
    assert inspect_task_functions(script) == ["a", "b"]
    assert task_reference(script, "b") == f"{script}@b"
    assert task_reference(script, None) == str(script)
    assert task_reference(tmp_path / "missing.py", None) == str(tmp_path / "missing.py")
