"""Power at plan time: the smallest difference each task's test set can detect, and the warnings.

Reads: the design (replicates, `analysis:` alpha, power and min_difference), the test items
each task scores (`eval_sample_counts`) and, in the prior folders, earlier run groups'
`results/samples.csv` (written by summarize-experiment). Writes nothing. runs_plan.md's
"Statistical power" section and the approval form show the result.

A comparison is paired over test items. Its per-item SD is taken from earlier results of the same
task where they exist (the largest SD of a fine-tuned run's per-item difference from its base
model), else the conservative sqrt(0.5) of `tasks.evaluation._power`.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

from tasks.evaluation._power import UNKNOWN_PAIRED_SD, detectable_difference, items_needed
from tasks.model._design import ExperimentDesign
from tasks.model._layout import RESULTS_DIR
from tasks.model._plan import Run, StatisticalPower, TaskPower

CONSERVATIVE = "conservative: two independent runs at 50 % accuracy; no earlier results of this task"
SAMPLES_CSV = f"{RESULTS_DIR}/samples.csv"


def _paired_sds(path: Path) -> dict[str, list[float]]:
    """Task -> SD of each fine-tuned run's per-item difference from its model's base run, in one file."""
    base: dict[tuple[str, str, str], float] = {}
    tuned: dict[tuple[str, str, str, str], dict[str, float]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if not row.get("score"):
                    continue
                score = float(row["score"])
                if not math.isfinite(score):
                    continue  # a NaN or inf score (samples.csv written before they were refused) is no score
                if row.get("kind") == "control":
                    base[(row["task"], row["model"], row["sample_id"])] = score
                else:
                    key = (row["task"], row["run"], row["model"], row["epoch"])
                    tuned.setdefault(key, {})[row["sample_id"]] = score
    except (OSError, ValueError, KeyError, csv.Error):
        return {}  # not a samples.csv sweepflow wrote: nothing to learn from
    sds: dict[str, list[float]] = {}
    for (task, _, model, _), scores in tuned.items():
        differences = [v - base[(task, model, i)] for i, v in scores.items() if (task, model, i) in base]
        if len(differences) >= 2:
            sds.setdefault(task, []).append(statistics.stdev(differences))
    return sds


def prior_paired_sds(folders: list[Path]) -> dict[str, tuple[float, str]]:
    """Task -> (largest per-item SD of a paired difference in earlier results, its source); each file read once."""
    files = dict.fromkeys(p for folder in folders for p in (*Path(folder).glob(SAMPLES_CSV),
                                                            *Path(folder).glob(f"*/{SAMPLES_CSV}")))
    found: dict[str, list[tuple[float, Path]]] = {}
    for path in files:
        for task, sds in _paired_sds(path).items():
            found.setdefault(task, []).extend((sd, path) for sd in sds)
    chosen = {}
    for task, pairs in found.items():
        sd, path = max(pairs)
        chosen[task] = (sd, f"largest of {len(pairs)} fine-tuned vs base comparison(s) of {task} in "
                            f"{path.parent.parent}")
    return chosen


def statistical_power(design: ExperimentDesign, runs: list[Run], counts: dict[str, int],
                      prior_folders: list[Path] | None = None) -> StatisticalPower:
    """Per task, the smallest detectable paired difference; warnings for unmeasured seeds and weak tests."""
    spec = design.analysis
    cells = len({r.cell_name for r in runs if not r.is_control})
    result = StatisticalPower(alpha=spec.alpha, power=spec.power, replicates=design.replicates, cells=cells)
    priors = prior_paired_sds(prior_folders or [])
    for task, n_items in counts.items():
        sd, source = priors.get(task, (UNKNOWN_PAIRED_SD, CONSERVATIVE))
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


__all__ = ["prior_paired_sds", "statistical_power"]
