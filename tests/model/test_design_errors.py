"""Every invalid design gets an error naming the field and what is wrong; nothing is written."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tasks.core._errors import DesignError
from tasks.model._design_file import load_design, parse_design
from tasks.planning._expand import expand_design
from tests.support.paths import REPO_DIR

EXAMPLE = REPO_DIR / "examples" / "seed_2x2" / "design.yaml"
BASE: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())


def plan_errors(change: Callable[[dict[str, Any]], Any], tmp_path: Path) -> DesignError:
    """Apply `change` to the seed example, load it from a file and expand it; return the error."""
    data = copy.deepcopy(BASE)
    data["paths"] = {"models_dir": str(tmp_path / "models"), "output_dir": str(tmp_path / "out")}
    change(data)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(DesignError) as caught:
        expand_design(parse_design(data, source="design.yaml", base=tmp_path))
    assert sorted(tmp_path.rglob("*")) == before, "a failed design must not write anything"
    text = str(caught.value)
    assert text.startswith("The experiment design has problems") and "Traceback" not in text
    return caught.value


def messages(error: DesignError) -> dict[str, str]:
    return {p.field: p.message for p in error.problems}


CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    ("unknown model", lambda d: d["models"].append("Llama-9-1B"), "models[2]", "unknown model 'Llama-9-1B'"),
    ("model with organization", lambda d: d["models"].append("meta-llama/Llama-3.2-1B"), "models[2]", "without the organization"),
    ("model with shell characters", lambda d: d["models"].insert(0, "Llama;rm -rf"), "models[0]", "may contain only letters"),
    ("model listed twice", lambda d: d["models"].append("Llama-3.2-1B-Instruct"), "models", "listed twice: Llama-3.2-1B-Instruct"),
    ("no models", lambda d: d.update(models=[]), "models", "is empty"),
    ("name with slash", lambda d: d.update(name="cap/8L"), "name", "'cap/8L' may contain only letters"),
    ("name with shell characters", lambda d: d.update(name="cap$(whoami)"), "name", "may contain only letters"),
    ("task label with space", lambda d: d.update(task="cap 8L"), "task", "may contain only letters"),
    ("eval task name with slash", lambda d: d["evaluation"]["tasks"][1].update(name="reason/ing"), "evaluation.tasks[1].name", "may contain only letters"),
    ("factor label with shell characters", lambda d: d["factors"].update(seed={"a;b": 1}), "factors.seed[0]", "level label 'a;b' may contain only"),
    ("zero rank", lambda d: d["factors"].update(lora_rank=[4, 0]), "factors.lora_rank[1]", "level 0: Input should be greater than 0"),
    ("negative rank", lambda d: d["training"].update(lora_rank=-8), "training.lora_rank", "greater than 0"),
    ("rank not a number", lambda d: d["factors"].update(lora_rank=["big"]), "factors.lora_rank[0]", "level 'big'"),
    ("zero epochs", lambda d: d["training"].update(epochs=0), "training.epochs", "greater than 0"),
    ("negative epochs level", lambda d: d["factors"].update(epochs=[-1]), "factors.epochs[0]", "greater than 0"),
    ("empty factor list", lambda d: d["factors"].update(lora_rank=[]), "factors.lora_rank", "is empty"),
    ("empty factor mapping", lambda d: d["factors"].update(learning_rate={}), "factors.learning_rate", "is empty"),
    ("factor not a list", lambda d: d["factors"].update(lora_rank=4), "factors.lora_rank", "a list of levels, or a mapping"),
    ("unknown factor", lambda d: d["factors"].update(colour=["red"]), "factors", "unknown factor 'colour'"),
    ("model as a factor", lambda d: d["factors"].update(model=["x"]), "factors", "listed under `models:`"),
    ("system prompt levels as a list", lambda d: d["factors"].update(system_prompt=["a", "b"]), "factors.system_prompt", "mapping {label: prompt}"),
    ("same run names after expansion", lambda d: d["factors"].update(learning_rate=[3e-4, "3e-4"]), "factors.learning_rate", "same name (label 'lr3e-4' repeats)"),
    ("same dataset file names", lambda d: d["factors"].update(dataset=["a/words.json", "b/words.json"]), "factors.dataset", "same name"),
    ("best without validation", lambda d: d["evaluation"].update(epochs="best"), "evaluation.epochs", "training.validation must be true"),
    ("epoch that is never saved", lambda d: d["evaluation"].update(epochs=[0, 5]), "evaluation.epochs", "there is no epoch 5"),
    ("empty epoch list", lambda d: d["evaluation"].update(epochs=[]), "evaluation.epochs", "is empty"),
    ("unknown epoch word", lambda d: d["evaluation"].update(epochs="first"), "evaluation.epochs", "last, all, best, or a list"),
    ("matrix names unknown run", lambda d: d["evaluation"]["matrix"].update({"Llama-3.2-1B_rank4": ["reasoning"]}), "evaluation.matrix.Llama-3.2-1B_rank4", "no run is named"),
    ("matrix names unknown task", lambda d: d["evaluation"]["matrix"].update({"Llama-3.2-3B-Instruct_base": ["math"]}), "evaluation.matrix.Llama-3.2-3B-Instruct_base", "unknown task 'math'"),
    ("matrix entry without tasks", lambda d: d["evaluation"]["matrix"].update({"Llama-3.2-3B-Instruct_base": []}), "evaluation.matrix.Llama-3.2-3B-Instruct_base", "at least one evaluation task"),
    ("no eval tasks", lambda d: d["evaluation"].update(tasks=[]), "evaluation.tasks", "is empty"),
    ("duplicate eval tasks", lambda d: d["evaluation"]["tasks"].append(dict(d["evaluation"]["tasks"][0])), "evaluation.tasks", "task names must be unique"),
    ("dataset missing", lambda d: d.pop("dataset"), "dataset", "required field is missing"),
    ("dataset path missing", lambda d: d.update(dataset={"train_split": "tr"}), "dataset.path", "required field is missing"),
    ("misspelled field", lambda d: d["training"].update(epoch=2), "training.epoch", "unknown field"),
    ("batch size zero", lambda d: d["training"].update(batch_size=0), "training.batch_size", "greater than 0"),
    ("batch size word", lambda d: d["training"].update(batch_size="big"), "training.batch_size", "'auto', a positive integer"),
    ("batch size for unknown model", lambda d: d["training"].update(batch_size={"Llama-3.2-1B-Instruct": 4}), "training.batch_size", "no entry for: Llama-3.2-3B-Instruct"),
    ("paths of the wrong type", lambda d: d.update(paths=3), "paths", "a mapping (models_dir:"),
    ("paths without output_dir", lambda d: d["paths"].pop("output_dir"), "paths.output_dir", "required field is missing"),
]


@pytest.mark.parametrize(("case", "change", "field", "says"), CASES, ids=[c[0] for c in CASES])
def test_bad_design(case: str, change: Callable[[dict[str, Any]], Any], field: str, says: str, tmp_path: Path) -> None:
    error = plan_errors(change, tmp_path)
    found = messages(error)
    assert field in found, f"{case}: expected a problem for {field}, got {error}"
    assert says in found[field], f"{case}: {found[field]!r}"
    assert f"  - {field}: " in str(error)


def test_field_problems_and_cross_field_problems_come_together(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["training"]["epochs"] = 0
        d["factors"]["lora_rank"] = []
        d["evaluation"]["epochs"] = "best"

    found = messages(plan_errors(change, tmp_path))
    assert set(found) == {"training.epochs", "factors.lora_rank", "evaluation.epochs"}


def test_union_branch_names_never_reach_the_user(tmp_path: Path) -> None:
    error = plan_errors(lambda d: d["training"].update(batch_size={"Llama-3.2-1B-Instruct": 0, "Llama-3.2-3B-Instruct": 8}), tmp_path)
    text = str(error)
    assert "training.batch_size.Llama-3.2-1B-Instruct: Input should be greater than 0" in text
    for tag in ("constrained-int", "literal[", "dict[", "list[", "PathsSpec"):
        assert tag not in text


def test_every_problem_is_reported(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["models"].append("Llama-9-1B")
        d["factors"]["lora_rank"] = [0, 4]

    found = messages(plan_errors(change, tmp_path))
    assert {"models[2]", "factors.lora_rank[0]"} <= set(found)


# --- load_design: the file itself -------------------------------------------------------


def load_error(path: Path) -> DesignError:
    with pytest.raises(DesignError) as caught:
        load_design(path)
    assert "Traceback" not in str(caught.value)
    (problem,) = caught.value.problems
    assert problem.field == "design" and problem.path == str(path)
    return caught.value


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in str(load_error(tmp_path / "nope.yaml"))


def test_directory(tmp_path: Path) -> None:
    assert "is a folder, not a YAML file" in str(load_error(tmp_path))


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert "not UTF-8 text" in str(load_error(path))


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    path.write_text("name: x\n")
    path.chmod(0)
    try:
        assert "cannot be read: Permission denied" in str(load_error(path))
    finally:
        path.chmod(0o644)


def test_invalid_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    path.write_text("name: x\nmodels: [a, b\ntask: y\n")
    text = str(load_error(path))
    assert "is not valid YAML (line 3, column 5)" in text


def test_yaml_list_instead_of_mapping(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    path.write_text("- name: x\n- models: []\n")
    assert "must be a YAML mapping" in str(load_error(path))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    path.write_text("# nothing yet\n")
    assert "is empty" in str(load_error(path))


def test_errors_name_the_design_file(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    data = copy.deepcopy(BASE)
    data["training"]["epochs"] = 0
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DesignError) as caught:
        load_design(path)
    assert f"training.epochs: Input should be greater than 0 [{path}]" in str(caught.value)


def test_seed_example_loads_as_written() -> None:
    design = load_design(EXAMPLE)
    assert design.name == "cap_8L_llama32_lora_comparison"
    assert len(expand_design(design)) == 6
