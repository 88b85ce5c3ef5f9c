"""The setup-experiment flow itself (render, validate, check fidelity, write).

A helper module so that plan-runs (`continue_to_setup`) and pilot-runs run it as a subflow
through a shared helper, not another flow. What it does and how to run it: flows/setup_experiment.py.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import State

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
    """Create run folders, torchtune configs and job scripts for a planned run group.

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
