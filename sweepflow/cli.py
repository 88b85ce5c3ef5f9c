"""`sweepflow <command>`: one command for every flow, in this process or on a Prefect server.

Each subcommand is one row of `COMMANDS`: its name, where its definition is (a flow module's
`COMMAND`, a `flows._cli.FlowCommand`: the options, the flow's parameters from them, how it
runs) and the line `sweepflow --help` shows. A new flow's command is one more row. The same
definitions serve `python -m flows.<module>`, so both take the same options.

`sweepflow --help` imports no flow and answers at once; `sweepflow <command> ...` imports only
that command's module. Reads and writes nothing itself: the flows do.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flows._cli import FlowCommand


@dataclass(frozen=True)
class Subcommand:
    """Where a subcommand is defined (`module`, or `module:ATTRIBUTE`; default COMMAND) and its one-line help."""

    target: str
    help: str

    def load(self) -> FlowCommand:
        """The `FlowCommand` (importing its flow module)."""
        module, _, attribute = self.target.partition(":")
        command: FlowCommand = getattr(importlib.import_module(module), attribute or "COMMAND")
        return command


COMMANDS: dict[str, Subcommand] = {
    "plan": Subcommand("flows.plan_runs", "plan a sweep from a design: runs, checks, estimates, approval, the plan "
                       "files (--dry-run: only print the plan)"),
    "check-site": Subcommand("flows.check_site", "check the cluster before a sweep: one short job per resource shape"),
    "pilot": Subcommand("flows.pilot_runs", "measure a few steps of each model and short evaluations, for the plan"),
    "setup": Subcommand("flows.setup_experiment", "write the run folders: torchtune configs, job scripts, eval inputs"),
    "launch": Subcommand("flows.launch_runs", "submit the jobs and follow them to the end, retrying by cause"),
    "advance": Subcommand("flows.advance_runs", "move every unfinished sweep one step now (sync, retries, submits)"),
    "status": Subcommand("flows.sync_status", "show a run group's progress and runs table (synced first)"),
    "cancel": Subcommand("flows.cancel_runs", "cancel a run group's jobs (or some runs'), with a reason"),
    "extend": Subcommand("flows.plan_runs:EXTEND_COMMAND", "grow a run group with a changed design: new runs join "
                         "it, dropped ones are marked, finished runs stay as they are"),
    "rerun": Subcommand("flows.rerun_runs", "run chosen runs or stages again (finished or failed), with a reason"),
    "summarize": Subcommand("flows.summarize_experiment", "write summary.md, plots and results/*.csv"),
    "run": Subcommand("flows.run_experiment", "all of it in one go: plan, setup, launch, summarize (resumable)"),
}

DESCRIPTION = (
    "Plan, set up, run, watch and summarize LoRA fine-tuning sweeps (torchtune + inspect-ai) on SLURM. "
    "Each command runs its Prefect flow here, or with --on-server as a run of its deployment on the Prefect "
    "server of PREFECT_API_URL."
)
EPILOG = """\
the usual order:
  sweepflow plan design.yaml --dry-run       look at the plan; nothing is written
  sweepflow plan design.yaml                 approve it (terminal, or the Prefect UI with --on-server)
  sweepflow setup GROUP && sweepflow launch GROUP
  sweepflow status GROUP                     progress and the runs table
  sweepflow summarize GROUP                  results and which differences are real
GROUP is the run group folder plan prints. `sweepflow COMMAND --help` shows a command's options.
"""


def _version() -> str:
    try:
        return version("sweepflow")
    except PackageNotFoundError:  # a checkout that was never installed
        return "(not installed)"


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser: every subcommand listed, the `chosen` one with its options (its module imported)."""
    parser = argparse.ArgumentParser(prog="sweepflow", description=textwrap.fill(DESCRIPTION, 79), epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sweepflow {_version()}")
    commands = parser.add_subparsers(dest="name", metavar="COMMAND", required=True)
    for name, row in COMMANDS.items():
        sub = commands.add_parser(name, help=row.help, description=row.help)
        if name == chosen:
            command = row.load()
            sub.description, sub.epilog = command.summary, command.details or None
            command.configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `sweepflow ARGV`; the exit code (0 done, 1 the run did not complete, 2 bad input)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_in if not a.startswith("-")), None)
    args = build_parser(chosen if chosen in COMMANDS else None).parse_args(args_in)
    command: FlowCommand = args.command
    return command.run(args)
