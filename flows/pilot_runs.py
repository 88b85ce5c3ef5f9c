r"""pilot-runs: measure before the sweep spends: a few steps of each model, one save, short evaluations.

What it does
------------
1. **plan** the sweep (as plan-runs does, nothing written): its batch sizes are what the pilot runs.
2. **pilot-design**: per model, the design's first run (every factor at its first level) at the
   plan's batch size, one epoch ended after `steps` optimizer steps (torchtune's
   `max_steps_per_epoch`), so one checkpoint save, and every evaluation task on the first
   `eval_samples` test samples (`tasks.planning.pilot`). No control runs.
3. **deliver** it as its own run group `<output_dir>/<name>-pilot-<hash6>_<date>/`, then run it
   like any sweep: **setup-experiment** and **launch-runs** (real jobs on the design's backend,
   retries by cause included: an OOM at the planned batch size is retried at half of it).
4. **report**: `measured_runs.yaml` in the pilot group, and the markdown artifact
   `pilot-<pilot group>`: the sweep planned again, each figure saying whether the pilot measured
   it (training speed, start-up, checkpoint save and size, peak GPU memory, evaluation time).

The next plan of the design reads the pilot's logs as prior runs whatever `paths.prior_runs`
says, preferring them, and names those figures `measured by pilot: ...` in runs_plan.md and on
plan-runs' approval form. `plan-runs --param pilot=true` runs this flow before its approval.
Running it again with the same settings resumes (or reuses) the same pilot group.

How to run it
-------------
    prefect deployment run pilot-runs/pilot-runs --param design=$PWD/examples/tiny_demo/design.yaml --watch

As Python: `from flows.pilot_runs import pilot_runs; pilot_runs("examples/tiny_demo/design.yaml")`;
from a shell: `python -m flows.pilot_runs DESIGN [--steps 20] [--eval-samples 20]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows._common import cli_exit
from flows._pilot import pilot_runs
from tasks.planning import DEFAULT_EVAL_SAMPLES, DEFAULT_STEPS

__all__ = ["main", "pilot_runs"]


def main(argv: list[str] | None = None) -> int:
    """Run the pilot from a shell; prints the pilot's run group folder (exit 0), else how it ended (exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m flows.pilot_runs", description=__doc__.splitlines()[0])
    parser.add_argument("design", help="design YAML file")
    parser.add_argument("--date", help="the pilot group's date YYYY-MM-DD (default: today)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps per pilot fine-tune")
    parser.add_argument("--eval-samples", type=int, default=DEFAULT_EVAL_SAMPLES, help="test samples per evaluation")
    args = parser.parse_args(argv)
    design = str(Path(args.design).expanduser().resolve())
    state = pilot_runs(design, date=args.date, steps=args.steps, eval_samples=args.eval_samples, return_state=True)
    return cli_exit("pilot-runs", state)


if __name__ == "__main__":
    sys.exit(main())
