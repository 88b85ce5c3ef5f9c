"""Evaluation jobs (= model loads) per sweep: one per (checkpoint, task) before, one per checkpoint now.

Reads: examples/tiny_demo/design.yaml (as `make demo` runs it, and with a second task) and the
seed's example (examples/seed_2x2/design.yaml widened to 12 fine-tuned runs x 3 tasks x 2 epochs,
the seed's "12 fine-tuned runs × 3 tasks × 2 epochs = 72 evaluation jobs"). Expands each design
into its runs (nothing verified, nothing written) and prints, per design, the evaluations (one
stage and one .eval log each) and the evaluation jobs (one model load each).

    .venv/bin/python benchmarks/model_loads.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.model._design_file import parse_design
from tasks.model._plan import checkpoint_jobs
from tasks.planning._expand import expand_design

ROOT = Path(__file__).resolve().parents[1]


def _demo(second_task: bool) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "examples" / "tiny_demo" / "design.yaml").read_text())
    if second_task:
        first = data["evaluation"]["tasks"][0]
        data["evaluation"]["tasks"].append({**first, "name": "capitalization_again"})
    return data


def _seed_12x3x2() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "examples" / "seed_2x2" / "design.yaml").read_text())
    data["factors"] = {"lora_rank": [4, 16, 64], "learning_rate": [1e-4, 3e-4]}  # x 2 models = 12 runs
    data["controls"] = False  # the seed's count is of fine-tuned runs
    data["training"]["epochs"] = 2
    data["evaluation"]["epochs"] = "all"
    first = data["evaluation"]["tasks"][0]
    data["evaluation"]["tasks"] = [{**first, "name": name, "dataset": None} for name in ("task_a", "task_b", "task_c")]
    data["evaluation"].pop("matrix", None)
    return data


def count(data: dict[str, Any]) -> tuple[int, int, int]:
    """(runs, evaluations, evaluation jobs) of a design."""
    runs = expand_design(parse_design(data))
    evaluations = [e for r in runs for e in r.evaluations]
    return len(runs), len(evaluations), len(checkpoint_jobs(evaluations))


def main() -> None:
    """Print the table (markdown)."""
    print("| design | runs | evaluations (.eval logs, status entries) "
          "| evaluation jobs before (one per checkpoint x task) | after (one per checkpoint) |")
    print("|---|---|---|---|---|")
    for name, data in (("make demo (examples/tiny_demo)", _demo(False)),
                       ("make demo + a second task", _demo(True)),
                       ("seed example: 12 fine-tunes x 3 tasks x 2 epochs", _seed_12x3x2())):
        runs, evaluations, jobs = count(data)
        print(f"| {name} | {runs} | {evaluations} | {evaluations} | {jobs} |")


if __name__ == "__main__":
    main()
