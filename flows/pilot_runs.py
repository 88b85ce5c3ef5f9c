r"""pilot-runs: measure before the sweep spends: a few steps of each model, one save, short evaluations.

What it does
------------
1. **plan** the sweep (as plan-runs does, nothing written): its batch sizes are what the pilot runs.
2. **pilot-design**: per model, the design's first run (every factor at its first level) at the
   plan's batch size, one epoch ended after `steps` optimizer steps (torchtune's
   `max_steps_per_epoch`), so one checkpoint save, and every evaluation task on the first
   `eval_samples` test samples (`tasks.planning._pilot`). No control runs.
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
from a shell: `sweepflow pilot DESIGN [--steps 20] [--eval-samples 20]`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flows._cli import FlowCommand, absolute
from flows._pilot import pilot_runs
from tasks.model import read_design
from tasks.planning import DEFAULT_EVAL_SAMPLES, DEFAULT_STEPS

__all__ = ["COMMAND", "main", "pilot_runs"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """pilot-runs' options."""
    parser.add_argument("design", help="the design YAML file of the sweep to measure")
    parser.add_argument("--date", help="the pilot group's date, YYYY-MM-DD (default: today)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="optimizer steps of each pilot fine-tune (default: %(default)s)")
    parser.add_argument("--eval-samples", type=int, default=DEFAULT_EVAL_SAMPLES,
                        help="test samples of each pilot evaluation (default: %(default)s)")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """pilot-runs' parameters from the options; the design is read first, so a bad file fails at once."""
    design = absolute(args.design)
    read_design(design)
    return {"design": design, "date": args.date, "steps": args.steps, "eval_samples": args.eval_samples}


COMMAND = FlowCommand(
    flow=pilot_runs,
    summary="Measure before the sweep spends: a few training steps of each model, one checkpoint save and short "
    "evaluations, as real jobs; the next plan of the design uses what they measured.",
    add_arguments=add_arguments,
    parameters=parameters,
    details="Prints the pilot's run group folder (exit 0), or how it ended (exit 1).",
)


def main(argv: list[str] | None = None) -> int:
    """Run the pilot from a shell; prints the pilot's run group folder (exit 0), else how it ended (exit 1)."""
    return COMMAND.main("python -m flows.pilot_runs", argv)


if __name__ == "__main__":
    sys.exit(main())
