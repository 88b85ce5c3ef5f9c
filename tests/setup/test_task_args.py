"""Bring your own inspect task: a plain task with its own data and names, and an installed registered task.

Planned over the fake site (real Llama-3 tokenizer), set up, and checked for fidelity: what
reaches each task (task_args.yaml), what inspect is told to run (the job script), what the plan
says ("own data"), and that every refusal happens at plan time, names the task and field, and
writes nothing. The registered task comes from tests/fixtures/task_package, copied into a
temporary `site-packages` folder on the path (inspect namespaces a task by its package only
there) and found through its `inspect_ai` entry point: nothing is installed in the environment.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.core._errors import DesignError
from tasks.setup import check_rendered_fidelity, render_setup
from tests.support import fakesite
from tests.support.paths import REPO_DIR
from tests.support.setup_groups import planned

FIXTURES = REPO_DIR / "tests" / "fixtures"
PROMPT = "You capitalize words. Answer with the word only."
REGISTERED = "sweepflow_fixture_tasks/capitals"


@pytest.fixture
def task_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture task package importable from a temporary site-packages folder, for this test only."""
    from inspect_ai._util.entrypoints import clear_entry_points_state

    site = tmp_path / "site-packages"
    shutil.copytree(FIXTURES / "task_package", site)
    monkeypatch.syspath_prepend(str(site))
    clear_entry_points_state()
    yield site
    clear_entry_points_state()
    for name in [m for m in sys.modules if m.startswith("sweepflow_fixture_tasks")]:
        monkeypatch.delitem(sys.modules, name)


def _design(root: Path, tasks: list[dict[str, Any]], system_prompt: str = PROMPT) -> dict[str, Any]:
    data = fakesite.design(root, name="byo", models=["Llama-3.2-1B-Instruct"], factors={"lora_rank": [4]},
                           training={"epochs": 1, "system_prompt": system_prompt})
    data["evaluation"]["tasks"] = tasks
    return data


def _own_task(root: Path, **fields: Any) -> dict[str, Any]:
    folder = root / "own"
    shutil.copytree(FIXTURES / "own_data_task", folder, dirs_exist_ok=True)
    return {"name": "own", "script": str(folder / "own_task.py"), **fields}


def _args(group: Path, run: str, task: str) -> dict[str, Any]:
    return yaml.safe_load((group / run / "evaluations" / task / "task_args.yaml").read_text())


def _refused(root: Path, data: dict[str, Any]) -> DesignError:
    with pytest.raises(DesignError) as caught:
        planned(data, base=root)
    assert not (root / "out").exists()  # nothing written
    return caught.value


def test_own_data_task_with_its_own_names_plans_and_passes_fidelity(tmp_path: Path) -> None:
    data = _design(tmp_path, [_own_task(tmp_path, args={"instructions": "${system_prompt}", "count": 3})])
    group = planned(data, base=tmp_path)
    plan_md = (group / "runs_plan.md").read_text()
    assert "| own | `" in plan_md and "own_task.py` | Own data (the task reads it) |" in plan_md
    assert "- **own**: `instructions` = `${system_prompt}`, `count` = `3`" in plan_md
    rendered = render_setup(group)
    files = rendered.files
    run = "Llama-3.2-1B-Instruct_rank4"
    assert yaml.safe_load(files[f"{run}/evaluations/own/task_args.yaml"].content) == {
        "instructions": PROMPT, "count": 3,
    }
    [own] = yaml.safe_load(files[f"{run}/evaluations/eval_epoch_0.tasks.yaml"].content)["tasks"]
    assert own["name"] == "own" and own["task"].endswith("own_task.py@own_words")
    checks = check_rendered_fidelity(rendered)
    # the fine-tune and the base-model control share the model and prompt: one check, on the task's own items
    assert [(c.run, c.task, c.samples) for c in checks] == [(run, "own", 3)]


def test_own_data_task_without_a_prompt_in_training_needs_no_mapping(tmp_path: Path) -> None:
    group = planned(_design(tmp_path, [_own_task(tmp_path)], system_prompt=""), base=tmp_path)
    rendered = render_setup(group)
    assert yaml.safe_load(rendered.files["Llama-3.2-1B-Instruct_rank4/evaluations/own/task_args.yaml"].content) == {}
    assert [c.samples for c in check_rendered_fidelity(rendered)] == [3]  # SAMPLES of its 4 items


def test_own_data_task_refused_when_the_training_prompt_would_not_reach_it(tmp_path: Path) -> None:
    error = _refused(tmp_path, _design(tmp_path, [_own_task(tmp_path)]))
    (problem,) = error.problems
    assert problem.field == "evaluation.tasks[0].args"
    assert problem.message.startswith("task own: training uses a system prompt (run Llama-3.2-1B-Instruct_rank4: ")
    assert "add `<its system-prompt parameter>: ${system_prompt}` under the task's `args:` " \
        "(its parameters: instructions, count)" in problem.message


def test_bad_mappings_are_refused_at_plan_time_naming_task_and_field(tmp_path: Path) -> None:
    lacking = _own_task(tmp_path, args={"instructions": "${system_prompt}", "shots": 5})
    (problem,) = _refused(tmp_path, _design(tmp_path, [lacking])).problems
    assert (problem.field, problem.message) == (
        "evaluation.tasks[0].args",
        "task own: args names 'shots', which the task does not have (its parameters: instructions, count)",
    )
    unknown = _own_task(tmp_path, args={"instructions": "${prompt}"})
    (problem,) = _refused(tmp_path, _design(tmp_path, [unknown])).problems
    assert problem.field == "evaluation.tasks[0].args"
    assert "task own, parameter instructions: unknown placeholder '${prompt}'" in problem.message


def test_registered_task_planned_set_up_and_checked(tmp_path: Path, task_package: Path) -> None:
    task = {"name": "caps", "inspect_task": REGISTERED,
            "args": {"data_file": "${dataset}", "instructions": "${system_prompt}", "part": "${split}", "limit": 3}}
    group = planned(_design(tmp_path, [task]), base=tmp_path)
    plan_md = (group / "runs_plan.md").read_text()
    assert f"| caps | `{REGISTERED}` (registered) | Same as training (test split) |" in plan_md
    rendered = render_setup(group)
    run = "Llama-3.2-1B-Instruct_rank4"
    args = yaml.safe_load(rendered.files[f"{run}/evaluations/caps/task_args.yaml"].content)
    assert args == {"data_file": str(tmp_path / "data" / "words_5L.json"), "instructions": PROMPT, "part": "test",
                    "limit": 3}
    [caps] = yaml.safe_load(rendered.files[f"{run}/evaluations/eval_epoch_0.tasks.yaml"].content)["tasks"]
    assert caps == {"name": "caps", "task": REGISTERED, "task_args": "caps/task_args.yaml", "log_dir": "caps/logs"}
    checks = check_rendered_fidelity(rendered)
    assert [(c.run, c.task, c.samples) for c in checks] == [(run, "caps", 3)]


def test_registered_task_with_an_unmapped_data_parameter_is_refused(tmp_path: Path, task_package: Path) -> None:
    task = {"name": "caps", "inspect_task": REGISTERED, "own_data": False, "args": {"instructions": "${system_prompt}"}}
    (problem,) = _refused(tmp_path, _design(tmp_path, [task])).problems
    assert problem.field == "evaluation.tasks[0].args"
    assert "task caps evaluates the design's dataset (own_data: false) but none of its parameters receives it; add " \
        "`<its data parameter>: ${dataset}` under the task's `args:` " \
        "(its parameters: data_file, instructions, part, limit)" in problem.message


@pytest.mark.parametrize("name", ["sweepflow_fixture_tasks/missing", "no_such_package/task"])
def test_registered_task_that_does_not_resolve_is_refused(tmp_path: Path, task_package: Path, name: str) -> None:
    task = {"name": "caps", "inspect_task": name, "args": {"instructions": "${system_prompt}"}}
    (problem,) = _refused(tmp_path, _design(tmp_path, [task])).problems
    assert problem.field == "evaluation.tasks[0].inspect_task"
    assert problem.message.startswith(f"caps: inspect has no registered task {name!r} in this Python")


def test_the_design_hash_ignores_the_new_task_settings_while_unset(tmp_path: Path) -> None:
    from tasks.model import parse_design
    from tasks.planning._planner import design_hash

    data = fakesite.design(tmp_path)
    before = design_hash(parse_design(data, base=tmp_path))  # a run group planned before args: existed
    data["evaluation"]["tasks"][0].update({"args": {}, "own_data": None, "inspect_task": None})
    assert design_hash(parse_design(data, base=tmp_path)) == before
    data["evaluation"]["tasks"][0]["args"] = {"system_prompt": "${system_prompt}"}
    assert design_hash(parse_design(data, base=tmp_path)) != before
