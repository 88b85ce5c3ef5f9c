"""flows/_common.domain_flow on a real (ephemeral) Prefect.

A domain error raised in a task ends the flow Failed with its message, logged once and without a
traceback; a bug keeps its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from prefect import task

from flows._cli import cli_exit
from flows._common import TASK_OPTIONS, FlowFailed, domain_flow, reworded, subflow_result
from tasks.core import DesignError, FileSystemError, Problem, SweepflowError
from tests.support.fakesite import DATE, FakeSite

MESSAGE = "The experiment design has problems (1):\n  - models[1]: no folder Llama-9-Huge under models/"


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


class Records(logging.Handler):
    """Every record that reaches Prefect's run loggers past their filters, formatted as a console would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("prefect.task_runs", "prefect.flow_runs")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def _bad_design() -> None:
    raise DesignError([Problem(field="models[1]", message="no folder Llama-9-Huge under models/")])


def _full_disk() -> None:
    raise OSError(28, "No space left on device", "/scratch/out/runs_status.yaml")


def _bug() -> None:
    raise RuntimeError("a bug in sweepflow")


steps = {fn.__name__: task(name=fn.__name__.strip("_"), **TASK_OPTIONS)(fn) for fn in (_bad_design, _full_disk, _bug)}


@domain_flow("probe")
def probe(step: str, prefix: str = "") -> str:
    """Run one step that raises; optionally with its message reworded."""
    if prefix:
        with reworded(prefix + "{}"):
            steps[step]()
    else:
        steps[step]()
    return "not reached"


@domain_flow("probe-parent")
def probe_parent(step: str) -> str:
    """Run `probe` as a subflow; a failed subflow ends the parent naming the stage."""
    return str(subflow_result(probe(step, return_state=True), "probe"))


@domain_flow("probe-stop")
def probe_stop() -> str:
    """A flow that cannot go on though its input was fine."""
    raise FlowFailed("the pilot did not finish")


def test_a_domain_error_ends_the_flow_failed_with_its_message_once_and_no_traceback(prefect_server, records):
    state = probe("_bad_design", return_state=True)
    assert state.is_failed()
    assert state.message == MESSAGE
    assert isinstance(state.result(raise_on_failure=False), DesignError)
    assert records.lines.count(f"ERROR prefect.flow_runs {MESSAGE}") == 1  # the flow's one error line
    assert "Traceback" not in records.text and "Task run failed" not in records.text
    with pytest.raises(DesignError, match=r"models\[1\]"):  # a plain call raises the error itself
        probe("_bad_design")
    assert cli_exit("probe", state) == 2


def test_an_os_error_is_said_plainly_naming_the_file(prefect_server, records):
    state = probe("_full_disk", return_state=True)
    assert state.is_failed()
    assert state.message.startswith("/scratch/out/runs_status.yaml: no space left on the device")
    assert isinstance(state.result(raise_on_failure=False), FileSystemError)
    assert "Traceback" not in records.text


def test_a_bug_keeps_its_traceback(prefect_server, records):
    state = probe("_bug", return_state=True)
    assert state.is_failed()
    assert "a bug in sweepflow" in state.message
    assert "Traceback" in records.text and 'raise RuntimeError("a bug in sweepflow")' in records.text
    assert isinstance(state.result(raise_on_failure=False), RuntimeError)


def test_reworded_and_subflow_messages(prefect_server, records):
    state = probe("_bad_design", "Fidelity check failed; nothing was written.\n", return_state=True)
    assert state.message == f"Fidelity check failed; nothing was written.\n{MESSAGE}"
    assert isinstance(state.result(raise_on_failure=False), SweepflowError)

    parent = probe_parent("_bad_design", return_state=True)
    assert parent.is_failed()
    assert parent.message == f"probe ended Failed: {MESSAGE}"
    assert not isinstance(parent.result(raise_on_failure=False), SweepflowError)
    assert cli_exit("probe-parent", parent) == 1  # a stage failed: not bad input
    assert "Traceback" not in records.text


def test_flow_failed_ends_the_run_failed_without_bad_input(prefect_server, records):
    state = probe_stop(return_state=True)
    assert state.is_failed() and state.message == "the pilot did not finish"
    assert cli_exit("probe-stop", state) == 1
    assert "Traceback" not in records.text


def test_run_experiment_stops_at_the_first_failed_stage_and_names_it(prefect_server, fake_site: FakeSite, tmp_path):
    from flows.run_experiment import run_experiment

    bad = fake_site.design(name="broken", models=["Llama-3.2-1B-Instruct", "Llama-9-Huge"])
    state = run_experiment(bad, auto_approve=True, date=DATE, return_state=True)
    assert state.is_failed()
    assert state.message.startswith("plan-runs ended Failed: The experiment design has problems (1):")
    assert "Llama-9-Huge" in state.message
    assert cli_exit("run-experiment", state) == 1  # a stage failed (its own run said why)
    assert not (tmp_path / "out").exists()  # nothing planned, set up or launched
