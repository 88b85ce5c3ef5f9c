"""expand_design: runs, the seed's naming convention, determinism, and evaluation jobs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.core._templating import format_number
from tasks.model._design import ExperimentDesign, design_type
from tasks.model._design_file import load_design, parse_design
from tasks.model._plan import Run
from tasks.planning._expand import count_runs, expand_design
from tests.support.paths import REPO_DIR

EXAMPLE = REPO_DIR / "examples" / "seed_2x2" / "design.yaml"
BASE: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
SEED_RUNS = [
    "Llama-3.2-1B-Instruct_rank4",
    "Llama-3.2-1B-Instruct_rank64",
    "Llama-3.2-3B-Instruct_rank4",
    "Llama-3.2-3B-Instruct_rank64",
    "Llama-3.2-1B-Instruct_base",
    "Llama-3.2-3B-Instruct_base",
]


def design(**changes: Any) -> ExperimentDesign:
    """The seed example with top-level sections replaced (dicts are merged one level deep)."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict) and key != "factors":
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_design(data, base=EXAMPLE.parent)


def jobs(runs: list[Run]) -> dict[str, list[str]]:
    return {r.name: [e.key for e in r.evaluations] for r in runs}


def test_seed_example_as_written() -> None:
    runs = expand_design(load_design(EXAMPLE))
    assert [r.name for r in runs] == SEED_RUNS
    assert [r.kind for r in runs] == ["finetune"] * 4 + ["control"] * 2
    assert [r.params.lora_rank for r in runs[:4]] == [4, 64, 4, 64]
    assert [r.params.lora_alpha for r in runs] == [2 * r.params.lora_rank for r in runs]
    assert runs[0].model_dir == Path("/models/Llama-3.2-1B-Instruct")
    assert runs[0].factors == {"lora_rank": "rank4"}
    assert runs[4].factors == {} and runs[4].is_control
    assert runs[0].params.dataset.path == EXAMPLE.parent / "tasks/capitalization/input/words_8L_80P_10000.json"
    assert all(r.params.epochs == 2 and r.params.batch_size is None for r in runs)


def test_seed_example_evaluations() -> None:
    runs = expand_design(load_design(EXAMPLE))
    assert jobs(runs) == {
        **{name: ["capitalization_8L_epoch_1", "reasoning_epoch_1"] for name in SEED_RUNS[:4]},
        "Llama-3.2-1B-Instruct_base": ["capitalization_8L"],
        "Llama-3.2-3B-Instruct_base": ["capitalization_8L", "reasoning"],
    }
    assert sum(len(r.evaluations) for r in runs) == 4 * 2 + 1 + 2 == 11
    base = runs[4].evaluations[0]
    assert base.epoch is None and base.run == "Llama-3.2-1B-Instruct_base"


def test_expansion_is_deterministic() -> None:
    first = [r.model_dump(mode="json") for r in expand_design(load_design(EXAMPLE))]
    second = [r.model_dump(mode="json") for r in expand_design(load_design(EXAMPLE))]
    assert first == second


def test_dataset_factor_names_runs_by_what_differs() -> None:
    levels = ["data/words_5L_80P_10000.json", "data/words_13L_80P_10000.json"]
    runs = expand_design(design(models=["Llama-3.2-1B-Instruct"], factors={"dataset": levels, "lora_rank": [4, 64]}, evaluation={"matrix": None}))
    assert [r.name for r in runs] == [
        "Llama-3.2-1B-Instruct_5L_rank4",
        "Llama-3.2-1B-Instruct_5L_rank64",
        "Llama-3.2-1B-Instruct_13L_rank4",
        "Llama-3.2-1B-Instruct_13L_rank64",
        "Llama-3.2-1B-Instruct_base",
    ]
    assert runs[2].params.dataset.path == EXAMPLE.parent / "data/words_13L_80P_10000.json"
    assert runs[2].factors == {"dataset": "13L", "lora_rank": "rank4"}
    # the rank label always comes last, whatever the factor order
    again = expand_design(design(models=["Llama-3.2-1B-Instruct"], factors={"lora_rank": [4], "dataset": levels}, evaluation={"matrix": None}))
    assert again[0].name == "Llama-3.2-1B-Instruct_5L_rank4"


def test_learning_rate_from_yaml_text() -> None:
    text = EXAMPLE.read_text().replace("lora_rank: [4, 64]", "learning_rate: [3e-4, 1e-3]\n  lora_rank: [4]")
    data = yaml.safe_load(text)
    assert data["factors"]["learning_rate"][0] == "3e-4"  # PyYAML reads 3e-4 as a string
    runs = expand_design(parse_design(data, base=EXAMPLE.parent))
    assert [r.name for r in runs[:2]] == ["Llama-3.2-1B-Instruct_lr3e-4_rank4", "Llama-3.2-1B-Instruct_lr1e-3_rank4"]
    assert runs[0].params.learning_rate == pytest.approx(3e-4)
    assert runs[0].factors["learning_rate"] == "lr3e-4"


@pytest.mark.parametrize(
    ("value", "text"),
    [(3e-4, "3e-4"), ("3e-4", "3e-4"), (1e-5, "1e-5"), (2.5e-4, "2.5e-4"), (0.05, "0.05"), (64, "64"), (2.0, "2"), (True, "true")],
)
def test_format_number(value: Any, text: str) -> None:
    assert format_number(value) == text


def test_mapping_levels_use_their_labels() -> None:
    runs = expand_design(design(factors={"lora_rank": {"small": 4, "rank64": 64}, "system_prompt": {"plain": "", "expert": "You are an expert."}}, evaluation={"matrix": None}, controls=False))
    names = [r.name for r in runs]
    assert names[:4] == [
        "Llama-3.2-1B-Instruct_plain_ranksmall",
        "Llama-3.2-1B-Instruct_expert_ranksmall",
        "Llama-3.2-1B-Instruct_plain_rank64",
        "Llama-3.2-1B-Instruct_expert_rank64",
    ]
    assert runs[1].params.system_prompt == "You are an expert."
    assert runs[0].params.lora_alpha == 8 and runs[2].params.lora_alpha == 128


def test_no_rank_factor_uses_training_rank() -> None:
    runs = expand_design(design(factors={}, training={"lora_rank": 16}, evaluation={"matrix": None}))
    assert [r.name for r in runs] == ["Llama-3.2-1B-Instruct_rank16", "Llama-3.2-3B-Instruct_rank16", "Llama-3.2-1B-Instruct_base", "Llama-3.2-3B-Instruct_base"]
    assert runs[0].params.lora_alpha == 32


def test_controls_off() -> None:
    runs = expand_design(design(controls=False, evaluation={"matrix": None}))
    assert [r.name for r in runs] == SEED_RUNS[:4]
    assert all(r.kind == "finetune" for r in runs)


def test_batch_size_per_model() -> None:
    runs = expand_design(design(training={"batch_size": {"Llama-3.2-1B-Instruct": 16, "Llama-3.2-3B-Instruct": 8}}))
    assert {r.name: r.params.batch_size for r in runs}["Llama-3.2-3B-Instruct_rank64"] == 8
    assert runs[0].params.batch_size == 16


@pytest.mark.parametrize(
    ("epochs", "finetuned_keys"),
    [
        ("last", ["capitalization_8L_epoch_2", "reasoning_epoch_2"]),
        ("all", [f"{t}_epoch_{e}" for t in ("capitalization_8L", "reasoning") for e in range(3)]),
        ([2, 0], ["capitalization_8L_epoch_0", "capitalization_8L_epoch_2", "reasoning_epoch_0", "reasoning_epoch_2"]),
        ("best", ["capitalization_8L_epoch_best", "reasoning_epoch_best"]),
    ],
)
def test_evaluated_epochs(epochs: Any, finetuned_keys: list[str]) -> None:
    d = design(training={"epochs": 3, "validation": True}, evaluation={"epochs": epochs})
    runs = expand_design(d)
    assert jobs(runs)["Llama-3.2-3B-Instruct_rank4"] == finetuned_keys
    # base models: once per task, no epoch suffix, whatever the epoch setting
    assert jobs(runs)["Llama-3.2-3B-Instruct_base"] == ["capitalization_8L", "reasoning"]
    finetuned = [r for r in runs if r.kind == "finetune"]
    expected = len(finetuned) * 2 * len(finetuned_keys) // 2 + 1 + 2
    assert sum(len(r.evaluations) for r in runs) == expected


def test_epochs_as_a_factor_with_all() -> None:
    runs = expand_design(design(models=["Llama-3.2-1B-Instruct"], factors={"epochs": [1, 2]}, controls=False, evaluation={"epochs": "all", "matrix": None}))
    assert jobs(runs) == {
        "Llama-3.2-1B-Instruct_ep1_rank8": ["capitalization_8L_epoch_0", "reasoning_epoch_0"],
        "Llama-3.2-1B-Instruct_ep2_rank8": ["capitalization_8L_epoch_0", "capitalization_8L_epoch_1", "reasoning_epoch_0", "reasoning_epoch_1"],
    }


def test_matrix_selects_tasks_in_task_order() -> None:
    matrix = {"Llama-3.2-3B-Instruct_rank4": ["reasoning", "capitalization_8L"], "Llama-3.2-1B-Instruct_rank4": ["reasoning"]}
    runs = {r.name: r for r in expand_design(design(evaluation={"matrix": matrix}))}
    assert [e.key for e in runs["Llama-3.2-3B-Instruct_rank4"].evaluations] == ["capitalization_8L_epoch_1", "reasoning_epoch_1"]
    assert [e.key for e in runs["Llama-3.2-1B-Instruct_rank4"].evaluations] == ["reasoning_epoch_1"]
    assert len(runs["Llama-3.2-1B-Instruct_base"].evaluations) == 2  # not in the matrix: every task


def test_design_type_and_count() -> None:
    d = load_design(EXAMPLE)
    assert design_type(d) == "2×2 Factorial Design"
    assert count_runs(d) == 6 == len(expand_design(d))
    one = design(models=["Llama-3.2-1B-Instruct"], factors={}, evaluation={"matrix": None})
    assert design_type(one) == "Single configuration"
    assert count_runs(one) == 2
