"""runs_plan.md / runs_status.yaml rendering, against golden files for the seed's 2x2 example.

The Plan is built by hand (tests/support/seed_plan.py: runs from `expand_design`, fixed fake
paths, hand-made estimates) so the golden files do not depend on where the repository or tmp lives.
Regenerate the golden files with `UPDATE_GOLDEN=1 pytest tests/planning/test_render.py`.
"""

from __future__ import annotations

import os
import re

import pytest

from tasks.core._templating import fmt_gib, fmt_minutes, fmt_num, fmt_size, render_template
from tasks.model._plan import Figure
from tasks.model._status import initial_status
from tasks.model._status_file import dump_status
from tasks.planning._plan_markdown import render_plan_markdown
from tests.support.paths import GOLDEN_DIR
from tests.support.seed_plan import DEFAULT, FAKE_REPO, NOW, PRIOR_1B, build_plan, design_data

GOLDEN = GOLDEN_DIR / "seed_2x2"


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from {path} (UPDATE_GOLDEN=1 regenerates it)"


def test_runs_plan_md_matches_golden() -> None:
    text = render_plan_markdown(build_plan())
    _check_golden("runs_plan.md", text)
    assert "{" not in text and "}" not in text, "a {placeholder} or Jinja leftover remains"


def test_runs_status_yaml_matches_golden() -> None:
    text = dump_status(initial_status(build_plan()), NOW)
    _check_golden("runs_status.yaml", text)
    assert "{{" not in text and "{%" not in text
    assert text.startswith("# Run Status Tracker\n# Auto-generated and updated by sweepflow (update-run-status / sync-status flows)\n"
                           f"# Last updated: {NOW}\n")


SECTIONS = [
    "# Run Plan: ", "## Overview", "## Variables", "## All Runs", "## Resources", "### Models", "### Dataset",
    "## Evaluations", "### Evaluation Configuration", "### Evaluation Tasks", "### Evaluation Matrix",
    "## Configuration", "## Directory Structure", "## Compute Estimates", "### Training Time Estimates",
    "**Total training compute:**", "### Evaluation Time Estimates", "### Disk Space Estimates",
    "### Wall-Clock Time Scenarios", "### Summary", "## Quick Reference", "## Notes",
]


def test_every_seed_section_in_order() -> None:
    text = render_plan_markdown(build_plan())
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)


def test_seed_example_content() -> None:
    text = render_plan_markdown(build_plan())
    assert "- **Type**: 2×2 Factorial Design" in text
    assert "- **Total Runs**: 6 (4 fine-tuned + 2 controls)" in text
    assert "| Model | Llama-3.2-1B-Instruct, Llama-3.2-3B-Instruct |" in text
    assert "| LoRA Rank | 4, 64 |" in text
    assert "| Llama-3.2-1B-Instruct_rank4 | Llama-3.2-1B-Instruct | 4 | 16 | Fine-tuned | ~20 min |" in text
    assert "| Llama-3.2-1B-Instruct_base | ✓ | - |" in text
    assert "  - Fine-tuned: 4 runs × 2 tasks × 1 epoch = 8 evaluations" in text
    assert "  - Base models: 1 run × 1 task × 1 eval + 1 run × 2 tasks × 1 eval = 3 evaluations" in text
    assert "**Total: 11 evaluations** in 6 evaluation jobs: one per evaluated checkpoint" in text
    # every figure names its source; prior-log figures and defaults both appear
    assert f"- Prior run data: 8000 samples, batch_size=16, speed=0.35 it/s (source: {PRIOR_1B})" in text
    assert f"(source: {DEFAULT})" in text
    assert "- Steps per epoch: 8000 samples ÷ 2.8 per packed sequence ÷ batch_size 16 = 179 steps" in text
    # 002: evaluations inside each run folder, and the machine-readable plan
    assert ("  Llama-3.2-1B-Instruct_base/\n    evaluations/   (one job per evaluated checkpoint: eval[_epoch_N].slurm"
            " + .tasks.yaml)\n      capitalization_8L/\n  Llama-3.2-3B-Instruct_base/") in text
    assert "  experiment.yaml" in text
    assert ("prefect deployment run setup-experiment/setup-experiment --param "
            "group_dir=/scratch/me/experiments/cap_8L_llama32_lora_comparison_2025-10-18") in text
    for flow in ("launch-runs/launch-runs", "sync-status/sync-status", "summarize-experiment/summarize-experiment"):
        assert f"prefect deployment run {flow} --param group_dir=" in text


def test_varied_learning_rate_gets_a_column_and_one_model_is_not_a_factor() -> None:
    data = design_data(models=["Llama-3.2-1B-Instruct"], factors={"lora_rank": [8], "learning_rate": [1e-4, 3e-4]}, controls=False)
    data["evaluation"].pop("matrix")
    text = render_plan_markdown(build_plan(data))
    assert "| Run Name | Model | LoRA Rank | Learning Rate | Batch Size | Type | Est. Time |" in text
    assert "| Llama-3.2-1B-Instruct_lr1e-4_rank8 | Llama-3.2-1B-Instruct | 8 | 1e-4 | 16 | Fine-tuned | ~20 min |" in text
    assert "| Model |" not in text.split("## Variables")[1].split("## All Runs")[0]
    assert "| Learning Rate | 1e-4, 3e-4 |" in text
    assert "- **Total Runs**: 2 (2 fine-tuned + 0 controls)" in text
    assert "Base models: none (no control runs)" in text
    assert "{" not in text


def test_all_epochs_listed_and_status_keys_follow_evaljob_key() -> None:
    data = design_data()
    data["evaluation"]["epochs"] = "all"
    plan = build_plan(data)
    text = render_plan_markdown(plan)
    assert "Fine-tuned models: all epochs (epoch_0, epoch_1)" in text
    assert "4 runs × 2 tasks × 2 epochs = 16 evaluations" in text
    status = initial_status(plan)
    assert list(status.runs["Llama-3.2-1B-Instruct_rank4"].evaluations) == [
        "capitalization_8L_epoch_0", "capitalization_8L_epoch_1", "reasoning_epoch_0", "reasoning_epoch_1"]
    assert list(status.runs["Llama-3.2-3B-Instruct_base"].evaluations) == ["capitalization_8L", "reasoning"]


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [(fmt_minutes, 0.4, "<1 min"), (fmt_minutes, 20.2, "~20 min"), (fmt_minutes, 150, "~2.5 h"),
     (fmt_gib, 2.4, "2.40 GiB"), (fmt_gib, 39.2265, "39.2 GiB"), (fmt_num, 16.0, "16"), (fmt_num, 2.80, "2.8"),
     (fmt_size, 671_088, "655.4 KiB"), (fmt_size, 2_471_645_608, "2.30 GiB")],
)
def test_number_filters(fn, value, expected) -> None:
    assert fn(value) == expected


def test_render_template_is_strict() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        render_template("state/runs_status.yaml.j2", now=NOW)  # `body` missing


def test_no_placeholder_pattern_in_templates_output() -> None:
    text = render_plan_markdown(build_plan())
    assert not re.search(r"\{[A-Za-z_][A-Za-z0-9_]*\}", text)
    assert "None" not in text and "Undefined" not in text


def test_variants_render_cleanly() -> None:
    """Dataset factor (two datasets), best-epoch evaluation, no prior logs, design notes."""
    data = design_data(
        models=["Llama-3.2-3B-Instruct"],
        factors={"dataset": [f"{FAKE_REPO}/data/words_5L.json", f"{FAKE_REPO}/data/words_9L.json"], "lora_rank": [16]},
        controls=False,
        notes="Pilot for the 13L sweep.",
    )
    data["training"] = {**data["training"], "validation": True}
    data["evaluation"] = {**data["evaluation"], "epochs": "best"}
    data["evaluation"].pop("matrix")
    plan = build_plan(data)
    defaults = {m: me.model_copy(update={"speed_it_s": Figure(value=0.2, source=DEFAULT), "prior_samples": None})
                for m, me in plan.estimates.per_model.items()}
    plan = plan.model_copy(update={"estimates": plan.estimates.model_copy(update={"per_model": defaults})})
    text = render_plan_markdown(plan)
    assert "| Dataset | 5L (`/home/researcher/sweepflow/data/words_5L.json`), 9L (`/home/researcher/sweepflow/data/words_9L.json`) |" in text
    assert "| Llama-3.2-3B-Instruct_5L_rank16 | Llama-3.2-3B-Instruct | 16 | 5L | 8 | Fine-tuned | ~45 min |" in text
    assert "#### `words_9L.json`" in text
    assert "Fine-tuned models: best epoch by validation loss" in text
    assert "capitalization_8L_epoch_best" not in text  # folders are per task
    assert "Based on prior runs from `/scratch/me/old` where a figure's source names a prior log" in text
    assert "- Prior run data: none matched; speed=0.2 it/s (source: default, preliminary)" in text
    assert "Pilot for the 13L sweep." in text
    assert "{" not in text and "None" not in text
    keys = list(initial_status(plan).runs["Llama-3.2-3B-Instruct_9L_rank16"].evaluations)
    assert keys == ["capitalization_8L_epoch_best", "reasoning_epoch_best"]
