"""Power at plan time: the smallest difference each task's test set can detect, and the warnings.

Reads: the design (replicates, `analysis:` alpha, power and min_difference), the test items
each task scores (`eval_sample_counts`) and, in the prior folders, earlier run groups'
`results/samples.csv` (written by summarize-experiment). Writes nothing. runs_plan.md's
"Statistical power" section and the approval form show the result.

A comparison is paired over test items. Its per-item SD is taken from earlier results of the same
task where they exist (the largest SD of a fine-tuned run's per-item difference from its base
model), else the conservative sqrt(0.5) of `tasks.evaluation.power`.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from tasks.evaluation.power import UNKNOWN_PAIRED_SD, detectable_difference, items_needed
from tasks.model.design import ExperimentDesign
from tasks.model.layout import RESULTS_DIR
from tasks.model.plan import Run, StatisticalPower, TaskPower

CONSERVATIVE = "conservative: two independent runs at 50 % accuracy; no earlier results of this task"
SAMPLES_CSV = f"{RESULTS_DIR}/samples.csv"


def _paired_sds(path: Path, task: str) -> list[float]:
    """SD of each fine-tuned run's per-item difference from its model's base run, on `task`, in one file."""
    base: dict[tuple[str, str], float] = {}
    tuned: dict[tuple[str, str, str], dict[str, float]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("task") != task or not row.get("score"):
                    continue
                score = float(row["score"])
                if row.get("kind") == "control":
                    base[(row["model"], row["sample_id"])] = score
                else:
                    tuned.setdefault((row["run"], row["model"], row["epoch"]), {})[row["sample_id"]] = score
    except (OSError, ValueError, KeyError, csv.Error):
        return []  # not a samples.csv sweepflow wrote: nothing to learn from
    sds = []
    for (_, model, _), scores in tuned.items():
        differences = [v - base[(model, i)] for i, v in scores.items() if (model, i) in base]
        if len(differences) >= 2:
            sds.append(statistics.stdev(differences))
    return sds


def prior_paired_sd(folders: list[Path], task: str) -> tuple[float, str] | None:
    """(largest per-item SD of a paired difference on `task` in earlier results, its source), or None."""
    files = dict.fromkeys(p for folder in folders for p in (*Path(folder).glob(SAMPLES_CSV),
                                                            *Path(folder).glob(f"*/{SAMPLES_CSV}")))
    found = [(sd, path) for path in files for sd in _paired_sds(path, task)]
    if not found:
        return None
    sd, path = max(found)
    return sd, f"largest of {len(found)} fine-tuned vs base comparison(s) of {task} in {path.parent.parent}"


def statistical_power(design: ExperimentDesign, runs: list[Run], counts: dict[str, int],
                      prior_folders: list[Path] | None = None) -> StatisticalPower:
    """Per task, the smallest detectable paired difference; warnings for unmeasured seeds and weak tests."""
    spec = design.analysis
    cells = len({r.cell_name for r in runs if not r.is_control})
    result = StatisticalPower(alpha=spec.alpha, power=spec.power, replicates=design.replicates, cells=cells)
    for task, n_items in counts.items():
        sd, source = prior_paired_sd(prior_folders or [], task) or (UNKNOWN_PAIRED_SD, CONSERVATIVE)
        detectable = detectable_difference(n_items, spec.alpha, spec.power, sd) if n_items >= 2 else None
        row = TaskPower(task=task, n_items=n_items, detectable=detectable, sd=sd, sd_source=source)
        if spec.min_difference is not None:
            row.items_for_target = items_needed(spec.min_difference, sd, spec.alpha, spec.power)
            if detectable is None or detectable > spec.min_difference:
                shown = "no test items" if detectable is None else f"differences of {detectable:.3f} or more"
                result.warnings.append(
                    f"task {task}: {n_items} test items detect {shown} (at {spec.power:.0%} power, alpha "
                    f"{spec.alpha:g}), not the {spec.min_difference:g} set in analysis.min_difference; about "
                    f"{row.items_for_target or 0:,} items would be needed")
        elif detectable is None:
            result.warnings.append(f"task {task}: fewer than 2 test items; no difference can be tested")
        result.tasks.append(row)
    if design.replicates == 1 and cells:
        result.warnings.append(
            "replicates: 1 - every cell is trained once, so seed-to-seed variance is unmeasured and a difference "
            "between two runs may be the seed's; `replicates: 2` or more measures it")
    return result


__all__ = ["prior_paired_sd", "statistical_power"]
