"""How far this site's earlier estimates were off: the accuracy a new plan can honestly promise.

Reads: the earlier run groups under the folders the plan learns from (each `experiment.yaml`'s
per-run training estimate, read as YAML without validating or caching the whole plan, and its
`runs_status.yaml`). Writes: nothing. For every fine-tune that completed in one attempt (a retry's
time is not the estimate's), the estimate against the job's elapsed time, as summary.md's
resource table compares them; `accuracy_text` states the mean and worst absolute error over those
runs, or that none has been measured yet, instead of a fixed margin.
"""

from __future__ import annotations

from pathlib import Path

from tasks.core._errors import SweepflowError
from tasks.core._files import read_yaml
from tasks.model._layout import GroupLayout
from tasks.model._status_file import load_status


def _group_errors(group: Path) -> list[float]:
    layout = GroupLayout(group)
    try:
        plan = read_yaml(layout.plan_file)
        status = load_status(layout.status_file)
    except (OSError, SweepflowError):
        return []
    estimates = ((plan or {}).get("estimates") or {}).get("runs") or {} if isinstance(plan, dict) else {}
    errors: list[float] = []
    for run, entry in status.runs.items():
        stage = entry.finetune
        row = estimates.get(run) if isinstance(estimates, dict) else None
        estimate = row.get("train_minutes") if isinstance(row, dict) else None
        if stage.status != "completed" or len(stage.attempts) != 1 or not isinstance(estimate, int | float):
            continue
        elapsed = stage.attempts[0].elapsed_s
        if elapsed:
            errors.append(abs(float(estimate) - elapsed / 60.0) / (elapsed / 60.0) * 100.0)
    return errors


def estimate_errors(folders: list[Path]) -> tuple[list[float], int]:
    """Absolute training-time errors (percent) of completed one-attempt fine-tunes, and the groups they are from."""
    errors: list[float] = []
    groups = 0
    for folder in folders:
        for plan_file in sorted(Path(folder).glob("*/experiment.yaml")) + sorted(Path(folder).glob("experiment.yaml")):
            found = _group_errors(plan_file.parent)
            errors += found
            groups += bool(found)
    return errors, groups


def accuracy_text(folders: list[Path]) -> str:
    """One sentence on how far estimates made here were off (training time), from the measured history."""
    errors, groups = estimate_errors(folders)
    if not errors:
        return ("No earlier run group here has finished fine-tunes to compare with their estimates, so the error of "
                "these figures is not yet measured: compare the first jobs' elapsed times (runs_status.yaml) with "
                "the estimates above before launching everything.")
    mean = sum(errors) / len(errors)
    return (f"Training-time estimates made here were off by {mean:.0f} % on average (worst {max(errors):.0f} %) on "
            f"{len(errors)} completed fine-tune(s) of {groups} earlier run group(s) (estimate against job elapsed "
            "time); expect similar errors, more where a figure's source is a default or another model.")
