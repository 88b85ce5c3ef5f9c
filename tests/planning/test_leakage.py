"""Leakage: evaluated test inputs that also occur in the training data are refused, unless acknowledged (then shown)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.core._errors import DesignError
from tasks.model._design_file import parse_design
from tasks.planning._planner import build_plan
from tasks.planning._verify import leaked_test_inputs, normalise_text
from tests.support.setup_groups import planned


def test_normalised_exact_match() -> None:
    train = [{"input": "Hello  World"}, {"input": "river"}, {"other": "x"}]
    test = [{"input": "hello world"}, {"input": " River\n"}, {"input": "rivers"}, "not a record"]
    assert normalise_text("  A\tb  C ") == "a b c"
    assert leaked_test_inputs(train, test, "input") == ["hello world", " River\n"]
    assert leaked_test_inputs(None, test, "input") == []


def test_leakage_is_refused_with_counts_unless_accepted(fake_site, tmp_path: Path) -> None:
    design = fake_site.design(name="leaky")
    path = Path(design["dataset"]["path"])
    data = json.loads(path.read_text())
    data["test"][:2] = [dict(data["train"][0]), {"input": " " + data["train"][1]["input"].upper(), "output": "x"}]
    path.write_text(json.dumps(data))
    with pytest.raises(DesignError) as error:
        build_plan(parse_design(design, base=tmp_path), date="2026-01-02")
    [problem] = error.value.problems
    assert problem.field == "evaluation.tasks[0]"
    assert "2 of 20 test inputs of the words_5L.json test split also occur in the training data" in problem.message
    assert "'word0', ' WORD1'" in problem.message and "accept_train_test_overlap: true" in problem.message
    design["evaluation"]["accept_train_test_overlap"] = True  # acknowledged: planned, and still shown
    group = planned(design, base=tmp_path)
    text = (group / "runs_plan.md").read_text()
    assert "**Leakage warning**: 2 of 20 test inputs also occur in the train split" in text
    assert "`word0`, ` WORD1`" in text


def test_a_transfer_set_is_parsed_and_compared_with_the_training_data(fake_site, tmp_path: Path) -> None:
    design = fake_site.design(name="transfer")
    train = json.loads(Path(design["dataset"]["path"]).read_text())["train"]
    transfer = tmp_path / "transfer.jsonl"
    transfer.write_text("\n".join(json.dumps(r) for r in [{"input": "zebra", "output": "Zebra"},
                                                             {"input": train[5]["input"], "output": "W"}]))
    design["evaluation"]["tasks"].append({"name": "cap_transfer", "script": design["evaluation"]["tasks"][0]["script"],
                                          "dataset": str(transfer)})
    with pytest.raises(DesignError) as error:
        build_plan(parse_design(design, base=tmp_path), date="2026-01-02")
    [problem] = error.value.problems
    assert problem.field == "evaluation.tasks[1].dataset"
    assert f"1 of 2 test inputs of its own dataset transfer.jsonl also occur" in problem.message
    transfer.write_text(json.dumps({"test": [{"question": "zebra"}]}))  # parsed at plan time: fields checked
    with pytest.raises(DesignError) as error:
        build_plan(parse_design(design, base=tmp_path), date="2026-01-02")
    assert "cap_transfer: record 0 lacks 'input' or 'output'" in str(error.value)
    transfer.write_text(json.dumps({"train": [{"input": "zebra", "output": "Zebra"}]}))
    with pytest.raises(DesignError) as error:
        build_plan(parse_design(design, base=tmp_path), date="2026-01-02")
    assert "has no 'test' split (splits present: 'train')" in str(error.value)


def test_clean_plan_says_no_leakage(fake_site, tmp_path: Path) -> None:
    group = planned(fake_site.design(name="clean"), base=tmp_path)
    assert "**Leakage**: no test input occurs in the train split" in (group / "runs_plan.md").read_text()
