"""How good are the time estimates? Estimated vs actual per run and stage, for finished run groups.

Usage: python benchmarks/estimate_accuracy.py GROUP_DIR [GROUP_DIR ...]

For each finished run group (after launch-runs and its jobs ended), two tables:
- **hindcast**: the group's own design planned again with `paths.prior_runs` = the group itself
  (its own logs and evaluation jobs are the priors), against what its jobs took;
- **as planned**: the estimates its `experiment.yaml` holds (a forecast when it was planned
  from an earlier group, e.g. a second `make demo`), against the same actual times;
- **forecast from its pilot alone**, when the design has pilot groups (pilot-runs) beside it:
  the design planned from them only, against the same actual times.
Actual times are summary.md's: the successful fine-tune attempt's SLURM elapsed time, and every
evaluation attempt of the run together. Prints the error in percent per run and stage and the
mean absolute error. Reads the groups' files; writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.model import RunGroup
from tasks.model._design import PathsSpec
from tasks.model._layout import pilot_of
from tasks.model._plan import Plan
from tasks.planning import build_plan
from tasks.results._collect import estimate_error_pct
from tasks.results._summarize import summarize


def replanned(plan: Plan, group_dir: Path, folders: list[Path]) -> Plan:
    """The group's design planned again, learning from exactly `folders` (the group itself: a hindcast)."""
    if not isinstance(plan.design.paths, PathsSpec):
        raise SystemExit(f"{group_dir}: the plan's paths are not resolved; cannot plan again")
    return build_plan(plan.design, date="2099-01-01", priors_from=folders)


def own_pilots(plan: Plan) -> list[Path]:
    """The pilot groups of the group's design beside it."""
    assert isinstance(plan.design.paths, PathsSpec)
    return [p for p in sorted(Path(plan.design.paths.output_dir).glob(f"{plan.design.name}-pilot-*"))
            if pilot_of(p) == plan.design.name]


def table(title: str, plan: Plan, group_dir: Path) -> None:
    """One table of estimated vs actual minutes, then the mean absolute errors."""
    actual = {r.run: r for r in summarize(group_dir, compare=False).resources}
    head = f"{'run':42} {'train est':>9} {'actual':>7} {'error':>7}   {'eval est':>8} {'actual':>7} {'error':>7}"
    print(f"\n{title}\n{head}")
    errors: dict[str, list[float]] = {"train": [], "eval": []}
    for run in plan.runs:
        est, got = plan.estimates.runs.get(run.name), actual.get(run.name)
        if est is None or got is None:
            continue
        train_err = estimate_error_pct(est.train_minutes, got.train_minutes) if not run.is_control else None
        eval_err = estimate_error_pct(est.eval_minutes, got.eval_minutes)
        for stage, err in (("train", train_err), ("eval", eval_err)):
            if err is not None:
                errors[stage].append(abs(err))
        print(f"{run.name:42} {_n(est.train_minutes if not run.is_control else None):>9} "
              f"{_n(got.train_minutes if not run.is_control else None):>7} {_pct(train_err):>7}   "
              f"{_n(est.eval_minutes):>8} {_n(got.eval_minutes):>7} {_pct(eval_err):>7}")
    for stage, values in errors.items():
        mae = f"{sum(values) / len(values):.1f} % over {len(values)}, worst {max(values):.1f} %" if values else "-"
        print(f"  mean absolute error, {stage}: {mae}")


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def main(argv: list[str]) -> int:
    """Print both tables for each group named."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for name in argv:
        group_dir = Path(name).resolve()
        plan = RunGroup(group_dir).plan
        print(f"# {group_dir.name}")
        table("hindcast (planned again from its own jobs), minutes", replanned(plan, group_dir, [group_dir]), group_dir)
        table("as planned (experiment.yaml), minutes", plan, group_dir)
        pilots = own_pilots(plan)
        if pilots:
            title = f"forecast from its pilot alone ({', '.join(p.name for p in pilots)}), minutes"
            table(title, replanned(plan, group_dir, pilots), group_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
