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

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import State

from flows._cli import FlowCommand, absolute
from flows._common import TASK_OPTIONS, artifact_slug, domain_flow, fail, reworded
from tasks.setup import (
    FidelityCheck,
    SetupReport,
    check_rendered_fidelity,
    render_setup,
    tree,
    validate_rendered_configs,
    write_setup,
)

render_files_task = task(name="render-files", **TASK_OPTIONS)(render_setup)
validate_configs_task = task(name="validate-configs", **TASK_OPTIONS)(validate_rendered_configs)
check_fidelity_task = task(name="check-fidelity", **TASK_OPTIONS)(check_rendered_fidelity)
write_files_task = task(name="write-files", **TASK_OPTIONS)(write_setup)


def fidelity_markdown(checks: list[FidelityCheck]) -> list[str]:
    """The artifact's "Fidelity" section: each checked (model, prompt, task) and what it showed."""
    lines = ["## Fidelity: evaluation prompts = training prompts", ""]
    for c in checks:
        note = f"; note: {c.note}" if c.note else ""
        lines.append(
            f"- {c.model} on {c.task} (run `{c.run}`): {c.samples} samples identical token for token "
            f"({c.prompt_tokens} prompt tokens in the first){note}"
        )
    return [*lines, ""]


def report_markdown(report: SetupReport) -> str:
    """The setup artifact: what was written, the edits kept, the tree."""
    lines = [f"# Setup of `{report.group_dir.name}`", "", report.summary(), ""]
    edits = [c for c in report.changes if c.action in ("kept-edit", "overwrite-edit")]
    if edits:
        lines += ["## Files you edited", ""]
        lines += [
            f"- `{c.path}`: kept (not overwritten)" if c.action == "kept-edit"
            else f"- `{c.path}`: overwritten; your version is in `{c.backup}`"
            for c in edits
        ]
        lines.append("")
    changed = [c for c in report.changes if c.action in ("create", "update")]
    if report.dry_run and changed:
        lines += ["## Would write", ""] + [f"- `{c.path}` ({c.action})" for c in changed[:200]] + [""]
    lines += ["## Tree", "", "```", tree(report.group_dir, [c.path for c in report.changes], max_runs=20), "```"]
    return "\n".join(lines)


@domain_flow("setup-experiment")
def setup_experiment(
    group_dir: str,
    overwrite_edits: bool = False,
    dry_run: bool = False,
    validate_configs: bool = True,
    check_fidelity: bool = True,
) -> str | State:
    """Create run folders, torchtune configs and SLURM scripts for a planned run group.

    Args:
        group_dir: the run group folder that plan-runs wrote (holds experiment.yaml).
        overwrite_edits: replace files you edited since generation (backups are kept).
        dry_run: render into a temporary folder and report what would change.
        validate_configs: run `tune validate` on every generated finetune.yaml first.
        check_fidelity: check that evaluation prompts tokenize exactly as training's (needs
            the model folders' tokenizer files and the evaluation tasks' data).

    Returns:
        The run group folder (or, with dry_run, the preview folder).
    """
    logger = get_run_logger()
    rendered = render_files_task(group_dir)
    if validate_configs:
        failures = validate_configs_task(rendered)
        if failures:
            return fail("Generated torchtune configs do not validate:\n  - " + "\n  - ".join(failures))
        logger.info("Every generated finetune.yaml passes tune validate")
    checks: list[FidelityCheck] = []
    if check_fidelity:
        with reworded("Fidelity check failed; nothing was written.\n{}"):
            checks = check_fidelity_task(rendered)
        logger.info("Fidelity: %d (model, prompt, task) combinations tokenize identically", len(checks))
    report = write_files_task(rendered, overwrite_edits=overwrite_edits, preview=dry_run)
    logger.info(report.summary())
    for change in report.changes:
        if change.action == "kept-edit":
            logger.warning("Kept your edit of %s (pass overwrite_edits=true to replace it)", change.path)
    create_markdown_artifact(
        markdown=report_markdown(report) + ("\n\n" + "\n".join(fidelity_markdown(checks)) if checks else ""),
        key=f"setup-{artifact_slug(report.group_dir.name)}",
        description=f"setup-experiment for {report.group_dir.name}",
    )
    return str(report.preview_dir if report.dry_run else report.group_dir)


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
