"""plan-runs on an existing run group (Prefect's test harness): extend, no-op, refusal, approval of the delta.

Resources are faked under tmp_path (`fake_site`); setup-experiment's files are written with
`set_up_group` (what the setup-experiment flow runs), so that a finished run's files can be
checked byte for byte after the group grows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tasks.model._layout import SETUP_BEGIN
from tasks.model._status_file import StatusStore
from tests.flows.test_flow_plan_runs import _start_in_thread, _wait_for_state, prefect_server  # noqa: F401
from tests.support.fakesite import DATE

pytestmark = pytest.mark.prefect

M = "Llama-3.2-1B-Instruct"
DONE, PENDING = f"{M}_rank4", f"{M}_rank64"


def _files(group: Path, run: str) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(group)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted((group / run).rglob("*")) if p.is_file()}


def _finish(group: Path, run: str) -> None:
    def done(status) -> None:
        status.stage(run).mark("completed", job_id="101")
        for stage in status.runs[run].evaluations.values():
            stage.mark("completed", job_id="102")

    StatusStore(group / "runs_status.yaml").update(done)


def _planned_and_set_up(fake_site, name: str) -> Path:
    from flows.plan_runs import plan_runs
    from tasks.setup._experiment import set_up_group

    state = plan_runs(fake_site.design(name=name), auto_approve=True, date=DATE, check_site=False, return_state=True)
    assert state.is_completed(), state.message
    group = Path(state.result())
    set_up_group(group)
    _finish(group, DONE)
    return group


def test_extension_adds_runs_and_leaves_finished_files_alone(prefect_server, fake_site):  # noqa: F811
    from flows.plan_runs import plan_runs
    from tasks.setup._experiment import set_up_group

    group = _planned_and_set_up(fake_site, "grow")
    finished, pending = _files(group, DONE), _files(group, PENDING)
    grown = fake_site.design(name="grow", factors={"lora_rank": [4, 64, 16]})
    state = plan_runs(grown, auto_approve=True, date=DATE, check_site=False, return_state=True)
    assert state.is_completed(), state.message
    status = StatusStore(group / "runs_status.yaml").read()
    assert status.stage(f"{M}_rank16").status == "pending" and status.stage(DONE).status == "completed"

    report = set_up_group(group)
    # rank 4: 3 fine-tune files; its one evaluation job: script, tasks file, task + model args
    assert report.kept_started == 3 + 4
    assert _files(group, DONE) == finished  # same bytes, same mtimes: not even rewritten
    assert _files(group, PENDING) != pending  # a pending run's configs name the new design
    assert (group / f"{M}_rank16" / "finetune.yaml").exists()
    text = (group / "runs_plan.md").read_text()
    assert text.count(SETUP_BEGIN) == 1 and "## Extensions" in text


def test_identical_design_is_a_no_op_without_asking(prefect_server, fake_site):  # noqa: F811
    from flows.plan_runs import plan_runs

    group = _planned_and_set_up(fake_site, "same")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in group.iterdir() if p.is_file()}
    # no auto_approve: an identical design asks nothing (a pause would hang this call)
    state = plan_runs(fake_site.design(name="same"), date=DATE, check_site=False, return_state=True)
    assert state.is_completed() and Path(state.result()) == group, state.message
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in group.iterdir() if p.is_file()} == before


def test_a_change_to_existing_runs_fails_naming_the_field(prefect_server, fake_site):  # noqa: F811
    from flows.plan_runs import plan_runs

    group = _planned_and_set_up(fake_site, "refuse")
    before = (group / "experiment.yaml").read_bytes()
    changed = fake_site.design(name="refuse", training={"epochs": 3})
    state = plan_runs(changed, auto_approve=True, date=DATE, check_site=False, return_state=True)
    assert state.is_failed()
    assert "training.epochs" in state.message and "that is a new run group" in state.message
    assert (group / "experiment.yaml").read_bytes() == before


def test_extend_only_needs_a_group(prefect_server, fake_site):  # noqa: F811
    from flows.plan_runs import plan_runs

    state = plan_runs(fake_site.design(name="nothing_yet"), auto_approve=True, extend_only=True, check_site=False,
                      return_state=True)
    assert state.is_failed() and "no run group" in state.message and "to extend" in state.message
    assert not fake_site.group_dir("nothing_yet").exists()


def test_extend_only_finds_the_group_of_an_earlier_date_and_asks_for_the_delta(prefect_server, fake_site):  # noqa: F811
    from prefect.flow_runs import resume_flow_run

    group = _planned_and_set_up(fake_site, "later")
    thread, box = _start_in_thread(design=fake_site.design(name="later", replicates=2), extend_only=True,
                                   check_site=False)  # no date: the newest group of the name
    paused = _wait_for_state("plan-runs", "PAUSED")
    try:
        assert StatusStore(group / "runs_status.yaml").read().runs.get(f"{DONE}_rep2") is None  # nothing yet
        resume_flow_run(paused.id, run_input={"approve": True, "comment": "two seeds"})
    finally:
        thread.join(timeout=90)
    state = box["state"]
    assert state.is_completed() and Path(state.result()) == group, state.message
    status = StatusStore(group / "runs_status.yaml").read()
    assert status.stage(f"{DONE}_rep2").status == "pending" and status.stage(DONE).status == "completed"


def test_the_approval_form_shows_the_delta(fake_site):
    from flows._plan_approval import _approval_form
    from tasks.model import read_design
    from tasks.planning import build_plan, plan_extension

    old = build_plan(read_design(fake_site.design(name="form")), date=DATE)
    new = build_plan(read_design(fake_site.design(name="form", factors={"lora_rank": [4]})), date=DATE)
    delta = plan_extension(old, new, None, "2026-01-03T00:00:00+00:00")
    text = _approval_form(delta.plan, "plan-form", delta=delta.delta_text())._description
    assert "Approve the extension for `form_2026-01-02`" in text
    assert f"2 dropped ({M}_rank64, Llama-3.2-3B-Instruct_rank64)" in text
    assert "`factors.lora_rank[rank64]`: 64 -> -" in text


def test_sweepflow_extend_dry_run_shows_the_delta_and_writes_nothing(fake_site, tmp_path, capsys):
    import yaml

    from sweepflow.cli import main
    from tasks.model import read_design
    from tasks.planning import build_plan, deliver_plan

    group = deliver_plan(build_plan(read_design(fake_site.design(name="cli")), date=DATE), "2026-01-02T00:00:00+00:00")
    before = {p.name: p.read_bytes() for p in group.iterdir() if p.is_file()}
    grown = tmp_path / "grown.yaml"
    grown.write_text(yaml.safe_dump(fake_site.design(name="cli", factors={"lora_rank": [4, 64, 16]})))
    assert main(["extend", str(grown), "--dry-run"]) == 0  # no date: the newest group of the name
    err = capsys.readouterr().err
    assert f"Extend the run group `cli_{DATE}`: 2 new run(s) ({M}_rank16, Llama-3.2-3B-Instruct_rank16)" in err
    assert {p.name: p.read_bytes() for p in group.iterdir() if p.is_file()} == before
    nothing = tmp_path / "nothing.yaml"
    nothing.write_text(yaml.safe_dump(fake_site.design(name="no_group_yet")))
    assert main(["extend", str(nothing), "--dry-run"]) == 2
    assert "no run group" in capsys.readouterr().err
