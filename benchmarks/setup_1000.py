"""Benchmark: plan + setup of a 1,000-run design (target: setup under 3 s, without `tune validate`).

Builds the same fake site and 1,000-run design as `benchmarks/plan_1000.py` (4 models x 10
LoRA ranks x 25 learning rates, last epoch evaluated on one task) in a temporary folder, then
times separately:

- `build_plan` (expand, verify, estimate; the free-disk verdict is ignored, as in plan_1000),
- `deliver_plan` (experiment.yaml, runs_plan.md, runs_status.yaml),
- `setup_experiment`, first run (creates every file: finetune.yaml/.slurm, setup_finetune.yaml,
  eval scripts, task_args.yaml, README, submit_all.sh, the manifest, the runs_plan.md section),
- `setup_experiment` again (nothing changes: every file compared, none rewritten),
- `set_up_group(preview=True)` (dry run into a temporary folder).

`tune validate` is not part of setup and is not run here. No Prefect.

    python benchmarks/setup_1000.py [--repeat 3] [--keep] [--dir /dev/shm]

Reads/writes: only its temporary folder (removed unless --keep) and the dry-run preview folder
(removed).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from plan_1000 import _ignore_disk_verdict, best_of, design_1000  # noqa: E402

from tasks.model._design_file import parse_design  # noqa: E402

TARGET_S = 3.0
NOW = "2026-01-01T00:00:00+00:00"


def run_once(root: Path) -> dict[str, float]:
    from tasks.planning._deliver import deliver_plan
    from tasks.planning._planner import build_plan
    from tasks.setup._experiment import set_up_group

    times: dict[str, float] = {}
    design = parse_design(design_1000(root), source="benchmark", base=root)
    t = time.perf_counter()
    plan = build_plan(design, date="2026-01-01")
    times["build_plan"] = time.perf_counter() - t
    t = time.perf_counter()
    group = deliver_plan(plan, now=NOW)
    times["deliver_plan"] = time.perf_counter() - t
    t = time.perf_counter()
    report = set_up_group(group)
    times["setup (first)"] = time.perf_counter() - t
    t = time.perf_counter()
    again = set_up_group(group)
    times["setup (again)"] = time.perf_counter() - t
    t = time.perf_counter()
    preview = set_up_group(group, preview=True)
    times["setup (dry run)"] = time.perf_counter() - t
    assert again.count("unchanged") == len(again.changes), again.summary()
    shutil.rmtree(preview.preview_dir, ignore_errors=True)
    times["_runs"] = len(plan.runs)
    times["_files"] = len(report.changes)
    times["_created"] = report.count("create")
    shutil.rmtree(group)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (the best is reported)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the temporary folder goes (default: the system temp dir; "
                             "/dev/shm measures the code without the disk)")
    args = parser.parse_args()

    needed = _ignore_disk_verdict()
    root, best, runs = best_of(run_once, args.repeat, args.keep, "sweepflow-bench-setup-", args.dir)
    print(f"1,000-run design: {int(best['_runs'])} runs, {int(best['_files'])} generated files "
          f"({int(best['_created'])} created by the first setup); best of {runs}, under {root.parent}; "
          f"the plan estimates {needed[0]} of disk (free-disk verdict ignored):")
    for key, seconds in best.items():
        if not key.startswith("_"):
            print(f"  {key:<18} {seconds:7.3f} s")
    setup_s = best["setup (first)"]
    verdict = "OK" if setup_s < TARGET_S else "SLOWER THAN TARGET"
    print(f"  {'plan + setup':<18} {best['build_plan'] + best['deliver_plan'] + setup_s:7.3f} s")
    print(f"  setup (first) {setup_s:.3f} s; target < {TARGET_S:.0f} s without tune validate: {verdict}")
    if args.keep:
        print(f"files kept in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
