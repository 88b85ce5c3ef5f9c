r"""summarize-experiment: what a run group found, and what it cost.

What it does
------------
1. **summarize**: read `experiment.yaml`, `runs_status.yaml`, every evaluation's inspect-ai
   `.eval` log (newest successful one per run and epoch), torchtune's metric logs and the
   fine-tunes' SLURM logs (`tasks.results._summarize.summarize`, `tasks.results._collect`).
2. **record-measurements**: write `measured_runs.yaml`: what each completed fine-tune measured
   (it/s, peak memory, checkpoint size, elapsed). The next plan-runs of a design without
   `paths.prior_runs` learns from these runs' logs (`tasks.results._measured`, `tasks.planning._planner`).
3. **write-summary**: write `summary.md` (results run x task x epoch with accuracy and sample
   counts, what the data support, the paired comparisons with intervals and Holm-adjusted
   p-values, the replicates' spread, training loss per run, estimated vs actual time and memory
   per run, GPU-hours per factor level with failed attempts included), the tables
   `results/samples.csv`, `results/effects.csv`, `results/replicates.csv` and the plots
   (`plots/loss_curves.png`, `plots/accuracy_by_<factor>.png` with 95 % intervals, and
   `plots/interaction_<a>_x_<b>.png` when two factors vary) into the run group
   (`tasks.results._analysis`, `tasks.results._effects`, `tasks.results._plots`).
4. **Publish**: `summary.md` as a markdown artifact (key `summary-<run group>`), the results
   as a table artifact (key `results-<run group>`: run, task, epoch, accuracy, samples, delta vs
   base) and the comparisons as a table artifact (key `effects-<run group>`: estimate, 95 % CI,
   Holm-adjusted p, items, replicates).

Missing results (a failed run, an evaluation without a log) show as "-" with the reason from
runs_status.yaml. It can run at any time, also while jobs still run; each run rewrites the files.

How to run it
-------------
    prefect deployment run summarize-experiment/summarize-experiment \
        --param group_dir=/abs/path/to/<run group> --watch

As Python: `from flows.summarize_experiment import summarize_experiment; summarize_experiment(group_dir)`,
or from a shell: `python -m flows.summarize_experiment GROUP_DIR` (prints the summary.md path).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows._cli import FlowCommand, absolute
from flows._common import TASK_OPTIONS, artifact_slug, domain_flow
from tasks.model import RunGroup
from tasks.results import Summary, record_measurements, render_summary, summarize, write_summary

summarize_task = task(name="summarize", **TASK_OPTIONS)(summarize)
record_measurements_task = task(name="record-measurements", **TASK_OPTIONS)(record_measurements)
write_summary_task = task(name="write-summary", **TASK_OPTIONS)(write_summary)


def publish_summary(summary: Summary) -> None:
    """The keyed markdown and table artifacts (the same keys every time: the UI shows the latest)."""
    slug = artifact_slug(summary.run_group)
    scored = sum(1 for r in summary.results if r.accuracy is not None)
    create_markdown_artifact(
        markdown=render_summary(summary), key=f"summary-{slug}",
        description=f"summary.md of {summary.run_group}",
    )
    create_table_artifact(
        table=summary.table(), key=f"results-{slug}",
        description=f"{summary.run_group}: {scored} of {len(summary.results)} evaluations scored",
    )
    if summary.analysis is not None and summary.analysis.effects:
        create_table_artifact(
            table=summary.analysis.table(), key=f"effects-{slug}",
            description=f"{summary.run_group}: paired comparisons, 95 % intervals, Holm-adjusted p-values",
        )


@domain_flow("summarize-experiment")
def summarize_experiment(group_dir: str, include_dropped: bool = False) -> str:
    """Write summary.md, plots and measured_runs.yaml for a run group and publish them as artifacts.

    Args:
        group_dir: the run group folder (holds experiment.yaml and runs_status.yaml).
        include_dropped: include the runs an extension dropped from the design (their results
            stay on disk; left out by default).

    Returns:
        The path of summary.md.
    """
    logger = get_run_logger()
    group = RunGroup(Path(group_dir))
    summary = summarize_task(group, include_dropped=include_dropped)
    measured = record_measurements_task(group)
    files = write_summary_task(group, summary, include_dropped=include_dropped)
    publish_summary(summary)
    scored = sum(1 for r in summary.results if r.accuracy is not None)
    logger.info("%s: %d of %d evaluations scored; %.3f GPU-hours used (%.3f on failed attempts)",
                summary.run_group, scored, len(summary.results), summary.gpu_hours_total, summary.gpu_hours_failed)
    if measured is not None:
        logger.info("Measured figures of the completed fine-tunes: %s", measured)
    for path in files:
        logger.info("Wrote %s", path)
    return str(files[0])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """summarize-experiment's options."""
    parser.add_argument("group_dir", help="the run group folder (it may still have jobs running)")
    parser.add_argument("--include-dropped", action="store_true",
                        help="include the runs an extension dropped from the design (left out by default)")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """summarize-experiment's parameters from the options."""
    return {"group_dir": absolute(args.group_dir), "include_dropped": args.include_dropped}


COMMAND = FlowCommand(
    flow=summarize_experiment,
    summary="Summarize a run group: summary.md with accuracy per run, task and epoch, which differences are real "
    "(paired comparisons with intervals), factor effects, seed spread, estimated vs actual cost; plots and "
    "results/*.csv.",
    add_arguments=add_arguments,
    parameters=parameters,
    details="Prints the path of summary.md (exit 0). It can run at any time; each run rewrites the files.",
)


def main(argv: list[str] | None = None) -> int:
    """Summarize from a shell (`python -m flows.summarize_experiment GROUP_DIR`); exit 0 done, 1 failed."""
    return COMMAND.main("python -m flows.summarize_experiment", argv)


if __name__ == "__main__":
    sys.exit(main())
