"""The factor table is the one place a factor is declared: a new row is a new factor everywhere.

The design's validation, run names, the plan's tables and the experiment README read
`tasks.model._factors.FACTORS`; these tests add a row (monkeypatched) and see it work through
expand and runs_plan.md, and see the design refuse a factor without a row.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

import tasks.model._factors as factors
from tasks.core._errors import DesignError
from tasks.model._design_file import parse_design
from tasks.model._factors import FACTORS, Factor, factor_levels, factor_title
from tasks.planning._expand import expand_design
from tests.support.paths import REPO_DIR

EXAMPLE = REPO_DIR / "examples" / "seed_2x2" / "design.yaml"


def seed(**factor_levels_: Any) -> dict[str, Any]:
    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    data["factors"] = {**data["factors"], **factor_levels_}
    data["training"] = {**data["training"], "validation": True}
    return data


def test_a_setting_without_a_row_is_not_a_factor() -> None:
    with pytest.raises(DesignError) as caught:
        parse_design(seed(validate_every_n_steps=[10, 20]), base=EXAMPLE.parent)
    assert "unknown factor 'validate_every_n_steps'" in str(caught.value)


def test_one_row_makes_a_training_setting_a_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    row = Factor("validate_every_n_steps", "Validation Interval", "val")
    monkeypatch.setitem(factors.FACTORS, row.name, row)
    design = parse_design(seed(validate_every_n_steps=[10, 20]), base=EXAMPLE.parent)
    runs = [r for r in expand_design(design) if not r.is_control]
    assert [r.name for r in runs][:2] == ["Llama-3.2-1B-Instruct_val10_rank4", "Llama-3.2-1B-Instruct_val20_rank4"]
    assert {r.params.validate_every_n_steps for r in runs} == {10, 20}  # copied into the run's parameters
    assert {r.factors["validate_every_n_steps"] for r in runs} == {"val10", "val20"}
    assert factor_title("validate_every_n_steps") == "Validation Interval"
    # each level is validated as the training setting it is
    with pytest.raises(DesignError) as caught:
        expand_design(parse_design(seed(validate_every_n_steps=[10, 0]), base=EXAMPLE.parent))
    assert "factors.validate_every_n_steps[1]" in str(caught.value)


def test_level_labels_come_from_the_row() -> None:
    assert factor_levels("learning_rate", [3e-4, 1e-4]) == [("lr3e-4", 3e-4), ("lr1e-4", 1e-4)]
    assert factor_levels("packed", [True, False]) == [("packed", True), ("unpacked", False)]
    assert [label for label, _ in factor_levels("dataset", ["d/words_5L_x.json", "d/words_8L_x.json"])] == ["5L", "8L"]
    with pytest.raises(ValueError, match="system_prompt levels as a mapping"):
        factor_levels("system_prompt", ["be brief"])
    assert set(FACTORS) >= {"lora_rank", "learning_rate", "dataset", "system_prompt"}
