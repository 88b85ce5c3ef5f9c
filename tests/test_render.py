"""runs_plan.md / runs_status.yaml rendering, against golden files for the seed's 2x2 example.

The Plan is built by hand here (runs from `expand_design`, fixed fake paths, hand-made
estimates) so the golden files do not depend on where the repository or tmp lives.
Regenerate the golden files with `UPDATE_GOLDEN=1 pytest tests/test_render.py`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.core.templating import fmt_gib, fmt_minutes, fmt_num, fmt_size, render_template
from tasks.model.design_file import parse_design
from tasks.model.plan import (
    DatasetInfo,
    DiskEstimate,
    Estimates,
    Figure,
    ModelEstimate,
    ModelInfo,
    Plan,
    RunEstimate,
    Scenario,
    SplitCounts,
    VerifiedResources,
)
from tasks.model.status import initial_status
from tasks.model.status_file import dump_status
from tasks.planning.expand import expand_design
from tasks.planning.plan_markdown import render_plan_markdown

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "seed_2x2"
FAKE_REPO = "/home/researcher/sweepflow"  # where the design's relative paths "live"
NOW = "2025-10-18T09:45:00+00:00"
PRIOR_1B = "prior log /scratch/me/old/ck-out-bright_horizon/slurm-4471.out"
PRIOR_3B = "prior log /scratch/me/old/ck-out-quiet_river/slurm-4502.out"
DEFAULT = "default, preliminary"

# per-model figures a prior-log scan could have produced
MODEL_FIGURES: dict[str, dict[str, Any]] = {
    "Llama-3.2-1B-Instruct": dict(batch=16, speed=0.35, peak=2.41, ckpt=2.4, eval=2.0, epoch_min=10.0, size=2_471_645_608, src=PRIOR_1B),
    "Llama-3.2-3B-Instruct": dict(batch=8, speed=0.30, peak=6.02, ckpt=6.1, eval=4.0, epoch_min=22.5, size=6_425_529_112, src=PRIOR_3B),
}
TRAIN, DENSITY = 8000, 2.8


def design_data(**changes: Any) -> dict[str, Any]:
    """The seed example design with its relative paths made absolute under FAKE_REPO."""
    data = yaml.safe_load((REPO / "examples" / "seed_2x2" / "design.yaml").read_text())
    data["dataset"]["path"] = f"{FAKE_REPO}/{data['dataset']['path']}"
    for task in data["evaluation"]["tasks"]:
        task["script"] = f"{FAKE_REPO}/{task['script']}"
        if task.get("dataset"):
            task["dataset"] = f"{FAKE_REPO}/{task['dataset']}"
    data.update(changes)
    return data


def _estimates(plan_runs: list, gpus: int) -> tuple[list, Estimates]:
    per_model = {
        m: ModelEstimate(
            model=m,
            batch_size=Figure(value=f["batch"], source=f["src"]),
            packing_density=Figure(value=DENSITY, source=f["src"]),
            peak_memory_gib=Figure(value=f["peak"], source=f["src"]),
            speed_it_s=Figure(value=f["speed"], source=f["src"]),
            prior_samples=TRAIN,
            prior_batch_size=f["batch"],
            checkpoint_gib_per_epoch=Figure(value=f["ckpt"], source=f["src"]),
            eval_minutes=Figure(value=f["eval"], source=DEFAULT),
        )
        for m, f in MODEL_FIGURES.items()
        if any(r.model == m for r in plan_runs)
    }
    runs, run_est = [], {}
    for run in plan_runs:
        f = MODEL_FIGURES[run.model]
        control = run.is_control
        bs = f["batch"]
        run = run.model_copy(update={"params": run.params.model_copy(update={"batch_size": bs})})
        runs.append(run)
        epochs = 0 if control else run.params.epochs
        train = f["epoch_min"] * epochs
        evals = len(run.evaluations) * f["eval"]
        run_est[run.name] = RunEstimate(
            run=run.name, model=run.model, batch_size=bs,
            steps_per_epoch=0 if control else math.ceil(TRAIN / DENSITY / bs),
            minutes_per_epoch=0.0 if control else f["epoch_min"], train_minutes=train,
            eval_jobs=len(run.evaluations), eval_minutes=evals, gpu_hours=round((train * gpus + evals) / 60, 4),
            disk_gib=round(epochs * f["ckpt"] + 0.01 * len(run.evaluations), 4),
        )
    ft = [e for r, e in zip(runs, run_est.values()) if not r.is_control]
    train_seq = sum(e.train_minutes for e in ft)
    eval_seq = sum(e.eval_minutes for e in run_est.values())
    n_evals = sum(e.eval_jobs for e in run_est.values())
    per_model_gib = {m: round(sum(r.params.epochs * MODEL_FIGURES[m]["ckpt"] for r in runs if r.model == m and not r.is_control), 4)
                     for m in per_model}
    ckpt, logs = sum(per_model_gib.values()), 0.01 * n_evals
    longest_eval = max(MODEL_FIGURES[r.model]["eval"] for r in runs)
    chunks = sorted(e.train_minutes for e in ft)
    mixed_train = sum(max(chunks[i:i + 2]) for i in range(0, len(chunks), 2))
    estimates = Estimates(
        per_model=per_model,
        runs=run_est,
        training_gpu_hours=round(train_seq * gpus / 60, 4),
        eval_gpu_hours=round(eval_seq / 60, 4),
        training_minutes_sequential=train_seq,
        eval_minutes_sequential=eval_seq,
        disk=DiskEstimate(checkpoints_gib=round(ckpt, 4), eval_logs_gib=round(logs, 4), margin_gib=round(0.15 * (ckpt + logs), 4),
                          total_gib=round(1.15 * (ckpt + logs), 4), per_model_gib=per_model_gib),
        scenarios=[  # as tasks/estimate.py words them
            Scenario(name="parallel", gpus=max(len(ft) * gpus, n_evals), training_minutes=max(chunks), eval_minutes=longest_eval,
                     detail=f"{len(ft)} fine-tunes at once (longest {max(chunks):.1f} min), "
                            f"then {n_evals} evaluations at once (longest {longest_eval:.1f} min)"),
            Scenario(name="sequential", gpus=gpus, training_minutes=train_seq, eval_minutes=eval_seq, detail="one job at a time"),
            Scenario(name="mixed", gpus=2, training_minutes=mixed_train, eval_minutes=math.ceil(n_evals / 2) * longest_eval,
                     detail=f"training: {math.ceil(len(ft) / 2)} batches; evaluations: {math.ceil(n_evals / 2)} batches × {longest_eval:.1f} min"),
        ],
        notes=["Evaluation times are preliminary defaults: no prior inspect-ai logs were found."],
    )
    return runs, estimates


def build_plan(data: dict[str, Any] | None = None, group_dir: Path | None = None, design_hash: str | None = None) -> Plan:
    """A realistic, fully resolved Plan of the seed example (or of a variant of its design)."""
    design = parse_design(data or design_data(), source="design.yaml", base=Path(FAKE_REPO))
    runs, estimates = _estimates(expand_design(design), design.gpu.count)
    run_group = f"{design.name}_2025-10-18"
    resources = VerifiedResources(
        models=[ModelInfo(name=m, path=Path("/models") / m, size_bytes=MODEL_FIGURES[m]["size"]) for m in design.models],
        datasets=[DatasetInfo(path=path, size_bytes=671_088, sha256=hashlib.sha256(str(path).encode()).hexdigest(),
                              splits=SplitCounts(train=TRAIN, validation=1000, test=1000))
                  for path in dict.fromkeys(r.params.dataset.path for r in runs)],
        eval_scripts={t.name: t.script for t in design.evaluation.tasks},
        eval_datasets={t.name: t.dataset for t in design.evaluation.tasks if t.dataset},
        free_disk_gib=812.5,
    )
    return Plan(
        run_group=run_group,
        created="2025-10-18T09:30:00+00:00",
        design_hash=design_hash or hashlib.sha256(repr(sorted(design.model_dump(mode="json").items())).encode()).hexdigest(),
        design=design,
        group_dir=group_dir or Path("/scratch/me/experiments") / run_group,
        recipe="lora_finetune_single_device",
        runs=runs,
        resources=resources,
        estimates=estimates,
    )


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
    assert "**Total: 11 evaluations**" in text
    # every figure names its source; prior-log figures and defaults both appear
    assert f"- Prior run data: 8000 samples, batch_size=16, speed=0.35 it/s (source: {PRIOR_1B})" in text
    assert f"(source: {DEFAULT})" in text
    assert "- Steps per epoch: 8000 samples ÷ 2.8 per packed sequence ÷ batch_size 16 = 179 steps" in text
    # 002: evaluations inside each run folder, and the machine-readable plan
    assert "  Llama-3.2-1B-Instruct_base/\n    evaluations/\n      capitalization_8L/\n  Llama-3.2-3B-Instruct_base/" in text
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
