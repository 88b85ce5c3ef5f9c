r"""check-site: before a sweep spends GPU-hours, prove the site can run its jobs.

What it does
------------
1. **load-design**, **resolve-site**, **build-plan**: as plan-runs does (the design is
   verified and planned in memory; nothing is written to a run group).
2. **check-site**: for each distinct resource shape the plan's jobs request (partition,
   constraint, GPUs and GPU type, memory; fine-tunes and evaluations may differ), one short
   job goes through the real backend. In the job environment of the cluster settings it runs
   the jobs' own preflight (`tasks/core/preflight.py`: the exact torchtune / torchao /
   inspect_ai / transformers versions, CUDA, the GPU count), then loads each planned model's
   config.json, torchtune tokenizer and Hugging Face tokenizer from disk, offline, checks the
   checkpoint files, and reports the GPUs' names and memory and the free space on output and
   scratch (`tasks/core/site_probe.py`). Jobs still unfinished after `timeout_minutes`
   (a long queue) are cancelled and reported as timed out.
3. **Present**: the result as a markdown artifact (key `site-check-<run group>`). Each
   passing shape is remembered in `<output_dir>/.site_checks/passed.yaml`, which plan-runs
   reads to skip a check that passed within 7 days for the same site, environment and models.

The run ends Failed when a shape failed (the message lists each shape and what is wrong),
Completed otherwise. It returns the report as a mapping.

How to run it
-------------
    prefect deployment run check-site/check-site --param design=/abs/path/design.yaml --watch

As Python: `from flows.check_site import check_site; check_site("design.yaml")`; from a shell:
`sweepflow check-site DESIGN [--timeout-minutes 15]` (exit 0 passed, 1 failed, 2 bad input).
plan-runs runs the same check before its approval form (`check_site`, on by default on SLURM).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import State

from flows._cli import FlowCommand, absolute
from flows._common import artifact_slug, domain_flow, fail, plan_design, reworded, site_check_step
from tasks.model import DesignInput, read_design
from tasks.planning import render_site_check_markdown


@domain_flow("check-site")
def check_site(design: DesignInput, timeout_minutes: float = 15) -> dict[str, Any] | State:
    """Run one short check job per resource shape of the design's plan; report what each found.

    Args:
        design: The experiment: fill in the design form (each field says what it means), or give
            the path of a design YAML file (absolute, or relative to the working directory;
            relative paths inside it resolve against its folder) or YAML text.
        timeout_minutes: how long the check jobs may take, queue wait included.

    Returns:
        The `SiteCheckReport` as a mapping (Failed state when a shape failed).
    """
    logger = get_run_logger()
    plan = plan_design(design)
    with reworded("The site check could not run: {}"):
        report = site_check_step(plan, True, timeout_s=timeout_minutes * 60)
    if report is None:  # not reached: a check asked for is always run
        return fail("The site check did not run")
    create_markdown_artifact(
        markdown=f"# Site check for `{plan.run_group}`\n\n" + render_site_check_markdown(report),
        key=f"site-check-{artifact_slug(plan.run_group)}", description=f"check-site for {plan.run_group}",
    )
    if not report.passed:
        return fail("The site check failed:\n  - " + "\n  - ".join(report.failures()))
    logger.info("Every job shape of %s can run here", plan.run_group)
    return report.model_dump(mode="json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """check-site's options."""
    parser.add_argument("design", help="the design YAML file whose jobs are checked")
    parser.add_argument("--timeout-minutes", type=float, default=15,
                        help="how long the check jobs may take, queue wait included (default: %(default)s)")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """check-site's parameters from the options; the design is read first, so a bad file fails at once."""
    design = absolute(args.design)
    read_design(design)
    return {"design": design, "timeout_minutes": args.timeout_minutes}


COMMAND = FlowCommand(
    flow=check_site,
    summary="Before a sweep: one short job per resource shape through the real scheduler checks the job "
    "environment, the GPUs, each model's files and tokenizers, and free disk.",
    add_arguments=add_arguments,
    parameters=parameters,
    details="Prints the report (exit 0 passed); a shape failed: exit 1; a bad design: exit 2.",
)


def main(argv: list[str] | None = None) -> int:
    """Check from a shell (`python -m flows.check_site DESIGN`); exit 0 passed, 1 failed, 2 bad input."""
    return COMMAND.main("python -m flows.check_site", argv)


if __name__ == "__main__":
    sys.exit(main())
