r"""setup-experiment: create the run folders of a planned run group.

What it does
------------
1. **render-files**: read `experiment.yaml`, the resolved plan that plan-runs wrote (never
   runs_plan.md), and render in memory: per fine-tuned run `setup_finetune.yaml`,
   `finetune.yaml` (torchtune), `finetune.slurm`; per run and task `evaluations/{task}/`
   with one job script per evaluated epoch (base models: one); at the group root
   `README.md` and `submit_all.sh`.
2. **validate-configs**: `tune validate` on every rendered finetune.yaml (can be skipped).
   **check-fidelity**: for each model, system prompt and evaluation task, a few test rows are
   tokenized by torchtune (the run's config) and by inspect's hf/ provider (exactly as the
   evaluation job calls it); any difference stops the flow with the first differing tokens.
3. **write-files**: write them atomically. Unchanged files are left byte-identical; a file
   you edited since sweepflow wrote it is kept, unless `overwrite_edits` is set (then your
   version is kept as `<file>.bak-<time>`). runs_status.yaml gains any missing entries (none
   is removed or reset) and runs_plan.md gets a "Setup" section.
   With `dry_run` everything is rendered into a temporary folder instead and the flow
   reports what would change.

How to run it
-------------
    prefect deployment run setup-experiment/setup-experiment \
        --param group_dir=/abs/path/to/<run group> --watch

As Python: `from flows.setup_experiment import setup_experiment; setup_experiment(group_dir)`,
or from a shell: `python -m flows.setup_experiment GROUP_DIR [--dry-run] [--overwrite-edits]`.
plan-runs continues into this flow after approval when started with `continue_to_setup=true`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flows._cli import FlowCommand, absolute
from flows._setup import setup_experiment

__all__ = ["COMMAND", "main", "setup_experiment"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """setup-experiment's options."""
    parser.add_argument("group_dir", help="the run group folder that plan wrote (holds experiment.yaml)")
    parser.add_argument("--dry-run", action="store_true",
                        help="render everything into a temporary folder and say what would change; write nothing")
    parser.add_argument("--overwrite-edits", action="store_true",
                        help="replace files you edited since sweepflow wrote them (your versions kept as backups)")
    parser.add_argument("--no-validate", action="store_true", help="skip `tune validate` of each finetune.yaml")
    parser.add_argument("--no-fidelity-check", action="store_true",
                        help="skip the check that evaluation sees exactly the tokens training saw")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """setup-experiment's parameters from the options."""
    return {"group_dir": absolute(args.group_dir), "overwrite_edits": args.overwrite_edits, "dry_run": args.dry_run,
            "validate_configs": not args.no_validate, "check_fidelity": not args.no_fidelity_check}


COMMAND = FlowCommand(
    flow=setup_experiment,
    summary="Set up a planned run group: torchtune configs (checked by tune validate), job scripts, evaluation "
    "inputs, README.md and submit_all.sh; files already right are left alone.",
    add_arguments=add_arguments,
    parameters=parameters,
    details="Prints the run group folder (exit 0), or why it failed (exit 1; a bad group folder: exit 2).",
)


def main(argv: list[str] | None = None) -> int:
    """Set up from a shell (`python -m flows.setup_experiment GROUP_DIR`); exit 0 done, 1 failed, 2 bad input."""
    return COMMAND.main("python -m flows.setup_experiment", argv)


if __name__ == "__main__":
    sys.exit(main())
