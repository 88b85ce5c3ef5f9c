"""One command-line definition per flow, shared by `python -m flows.<module>` and `sweepflow <command>`.

Each flow module builds a `FlowCommand`: its flow, a one-line summary, `add_arguments(parser)`
(the flow's own options), `parameters(args)` (the flow's parameters from the parsed options) and,
where running in this process needs more than calling the flow (plan-runs' dry run and terminal
approval), its own `run_here`. Every command also gets `--on-server`: the same parameters as a
run of the flow's deployment (prefect.yaml) on the Prefect server of PREFECT_API_URL, printing
the run's URL and, unless `--detach`, waiting for its final state.

Reads and writes nothing itself; exit codes: 0 the run completed, 1 it did not, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from prefect import Flow
from prefect.states import State

from tasks.core import SweepflowError

Parameters = dict[str, Any]
ADVANCE_HINT = "the scheduled advance-runs deployment carries the sweep on"


class UsageError(SweepflowError):
    """Options that cannot go together, or a value the command cannot use (exit 2)."""


def absolute(path: str) -> str:
    """A path given on the command line as an absolute path (a server's worker runs elsewhere)."""
    return str(Path(path).expanduser().resolve())


def show_result(result: Any) -> None:
    """A flow's result on stdout: text as it is, a mapping or a list as YAML."""
    if isinstance(result, dict | list):
        print(yaml.safe_dump(result, sort_keys=False, default_flow_style=False).rstrip())
    elif result is not None:
        print(result)


def cli_exit(flow_name: str, state: State, show: Callable[[Any], None] = show_result) -> int:
    """A flow run as a shell command ends: its result printed (exit 0), or how it ended (stderr, 1 or 2)."""
    if state.is_completed():
        show(state.result())
        return 0
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, SweepflowError):  # a domain error: the message says it all
        print(str(outcome), file=sys.stderr)
        return 2
    print(f"{flow_name} ended {state.name}: {state.message}", file=sys.stderr)
    return 1


@dataclass(frozen=True)
class FlowCommand:
    """A flow as a shell command: its options, its parameters from them, and how it runs."""

    flow: Flow[..., Any]
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    parameters: Callable[[argparse.Namespace], Parameters]
    run_here: Callable[[argparse.Namespace], int] | None = None
    after: Callable[[argparse.Namespace], None] | None = None  # once the run completed (status: the table)
    details: str = ""

    @property
    def deployment(self) -> str:
        """The deployment's full name (prefect.yaml names each deployment as its flow)."""
        return f"{self.flow.name}/{self.flow.name}"

    def configure(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add this flow's options and the server options to `parser`."""
        self.add_arguments(parser)
        server = parser.add_argument_group("running on a Prefect server")
        server.add_argument(
            "--on-server", action="store_true",
            help=f"run it as a run of the {self.deployment} deployment on the Prefect server of PREFECT_API_URL "
            "(make server deploy worker), print the run's URL and wait for it to end",
        )
        server.add_argument("--detach", action="store_true",
                            help="with --on-server: print the run's URL and return at once")
        parser.set_defaults(command=self)
        return parser

    def parser(self, prog: str) -> argparse.ArgumentParser:
        """A stand-alone parser (`python -m flows.<module>`)."""
        return self.configure(argparse.ArgumentParser(prog=prog, description=self.summary, epilog=self.details or None))

    def run(self, args: argparse.Namespace) -> int:
        """Run the flow as `args` say: here, or on the server; the exit code."""
        try:
            if args.detach and not args.on_server:
                raise UsageError("--detach goes with --on-server")
            if args.on_server:
                code = run_on_server(self, args)
            elif self.run_here is not None:
                code = self.run_here(args)
            else:
                code = self.run_flow(args)
        except SweepflowError as error:
            print(str(error), file=sys.stderr)
            return 2
        if code == 0 and self.after is not None and not args.detach:
            self.after(args)
        return code

    def run_flow(self, args: argparse.Namespace, show: Callable[[Any], None] = show_result) -> int:
        """Run the flow in this process (a temporary Prefect server when none is configured)."""
        state = cast(State, self.flow(**self.parameters(args), return_state=True))
        return cli_exit(self.flow.name, state, show)

    def main(self, prog: str, argv: Sequence[str] | None = None) -> int:
        """`python -m flows.<module>`: parse `argv` (default: sys.argv) and run; the exit code."""
        return self.run(self.parser(prog).parse_args(argv))


FINAL_WORDS = {"COMPLETED": "completed", "FAILED": "failed", "CRASHED": "crashed", "CANCELLED": "was cancelled"}


def run_on_server(command: FlowCommand, args: argparse.Namespace) -> int:
    """Start the command's deployment with its parameters; print the run's URL; wait for its final state."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL
    from prefect.utilities.urls import url_for

    parameters = command.parameters(args)  # bad input is said first
    api = PREFECT_API_URL.value()
    if not api:
        raise UsageError("--on-server needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api "
                         "after `make server deploy worker`), or leave --on-server out to run it here")
    try:
        flow_run = cast(FlowRun, run_deployment(command.deployment, parameters=parameters, timeout=0, as_subflow=False))
    except ObjectNotFound:
        raise UsageError(f"the server at {api} has no deployment {command.deployment}: run `make deploy` "
                         "(it creates every deployment of prefect.yaml)") from None
    link = url_for(flow_run) or f"{api} (flow run {flow_run.id})"
    print(f"{command.deployment}: flow run {flow_run.name} ({flow_run.id})\n  {link}", flush=True)
    if args.detach:
        return 0
    said_paused = False
    with get_client(sync_client=True) as client:
        while True:
            try:
                state = client.read_flow_run(flow_run.id).state
                if state is not None and state.is_final():
                    break
                if state is not None and state.is_paused() and not said_paused:
                    print(f"Paused: waiting for input (approve the plan in the UI at {link})", flush=True)
                    said_paused = True
                time.sleep(2)
            except KeyboardInterrupt:
                print(f"Stopped waiting; the flow run goes on: {link}", file=sys.stderr)
                return 130
    word = FINAL_WORDS.get(state.type.value, state.name)
    message = f": {state.message}" if state.message and not state.is_completed() else ""
    print(f"{command.flow.name} {word}{message}", file=sys.stdout if state.is_completed() else sys.stderr)
    return 0 if state.is_completed() else 1
