"""Power at plan time: the smallest difference each task's test set can detect, and the warnings.

Reads: the design (replicates, `analysis:` alpha, power and min_difference) and the test items
each task scores (`eval_sample_counts`). Writes nothing. runs_plan.md's "Statistical power"
section and the approval form show the result.

A comparison is paired over test items. Without results of earlier runs the per-item SD of a
paired difference is the conservative sqrt(0.5) of `tasks.evaluation.power`.
"""

from __future__ import annotations

from tasks.evaluation.power import UNKNOWN_PAIRED_SD, detectable_difference, items_needed
from tasks.model.design import ExperimentDesign
from tasks.model.plan import Run, StatisticalPower, TaskPower

CONSERVATIVE = "conservative: two independent runs at 50 % accuracy (no earlier results of this task)"


def statistical_power(design: ExperimentDesign, runs: list[Run], counts: dict[str, int]) -> StatisticalPower:
    """Per task, the smallest detectable paired difference; warnings for unmeasured seeds and weak tests."""
    spec = design.analysis
    cells = len({r.cell_name for r in runs if not r.is_control})
    result = StatisticalPower(alpha=spec.alpha, power=spec.power, replicates=design.replicates, cells=cells)
    for task, n_items in counts.items():
        detectable = detectable_difference(n_items, spec.alpha, spec.power) if n_items >= 2 else None
        row = TaskPower(task=task, n_items=n_items, detectable=detectable, sd=UNKNOWN_PAIRED_SD, sd_source=CONSERVATIVE)
        if spec.min_difference is not None:
            row.items_for_target = items_needed(spec.min_difference, UNKNOWN_PAIRED_SD, spec.alpha, spec.power)
            if detectable is None or detectable > spec.min_difference:
                shown = "no test items" if detectable is None else f"differences of {detectable:.3f} or more"
                result.warnings.append(
                    f"task {task}: {n_items} test items detect {shown} (at {spec.power:.0%} power, alpha "
                    f"{spec.alpha:g}), not the {spec.min_difference:g} set in analysis.min_difference; about "
                    f"{row.items_for_target:,} items would be needed")
        elif detectable is None:
            result.warnings.append(f"task {task}: fewer than 2 test items; no difference can be tested")
        result.tasks.append(row)
    if design.replicates == 1 and cells:
        result.warnings.append(
            "replicates: 1 - every cell is trained once, so seed-to-seed variance is unmeasured and a difference "
            "between two runs may be the seed's; `replicates: 2` or more measures it")
    return result


__all__ = ["statistical_power"]
