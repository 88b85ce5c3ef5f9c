"""Leakage: test inputs that also occur in the train split are counted, shown in the plan, warned about."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.planning.verify import leaked_test_inputs, normalise_text
from tests.support.setup_groups import planned


def test_normalised_exact_match() -> None:
    train = [{"input": "Hello  World"}, {"input": "river"}, {"other": "x"}]
    test = [{"input": "hello world"}, {"input": " River\n"}, {"input": "rivers"}, "not a record"]
    assert normalise_text("  A\tb  C ") == "a b c"
    assert leaked_test_inputs(train, test, "input") == ["hello world", " River\n"]
    assert leaked_test_inputs(None, test, "input") == []


def test_plan_reports_leakage(fake_site, tmp_path: Path) -> None:
    design = fake_site.design(name="leaky")
    path = Path(design["dataset"]["path"])
    data = json.loads(path.read_text())
    data["test"][:2] = [dict(data["train"][0]), {"input": data["train"][1]["input"].upper(), "output": "x"}]
    path.write_text(json.dumps(data))
    group = planned(design, base=tmp_path)
    text = (group / "runs_plan.md").read_text()
    assert "**Leakage warning**: 2 of 20 test inputs also occur in the train split" in text
    assert "`word0`, `WORD1`" in text


def test_clean_plan_says_no_leakage(fake_site, tmp_path: Path) -> None:
    group = planned(fake_site.design(name="clean"), base=tmp_path)
    assert "**Leakage**: no test input occurs in the train split" in (group / "runs_plan.md").read_text()
