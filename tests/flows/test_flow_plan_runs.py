"""The plan-runs flow through Prefect's test harness (a temporary server), approval pause included.

Resources are faked under tmp_path (the `fake_site` fixture): model folders with config.json and
the weight files torchtune expects, a dataset JSON with train/validation/test, and an eval script.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import UUID

import pytest

from tests.support.fakesite import DATE, FILES, delivered
from tests.support.paths import REPO_DIR

pytestmark = pytest.mark.prefect

ROOT = REPO_DIR


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    # answer checks every second; a run left paused by a failing test gives up after 2 minutes
    os.environ["SWEEPFLOW_APPROVAL_POLL_S"] = "1"
    os.environ["SWEEPFLOW_APPROVAL_TIMEOUT_S"] = "120"
    with prefect_test_harness(server_startup_timeout=60):
        yield
    os.environ.pop("SWEEPFLOW_APPROVAL_POLL_S", None)
    os.environ.pop("SWEEPFLOW_APPROVAL_TIMEOUT_S", None)


def _artifact_keys(flow_run_id: UUID) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key for a in artifacts if a.key}


def test_auto_approved_run_writes_plan_and_artifacts(prefect_server, fake_site):
    from flows.plan_runs import plan_runs

    state = plan_runs(fake_site.design(name="cap_8L_llama32"), auto_approve=True, date=DATE, return_state=True)
    assert state.is_completed(), state.message
    out = fake_site.group_dir("cap_8L_llama32")
    assert state.result() == str(out)
    assert delivered(out) == FILES
    assert _artifact_keys(state.state_details.flow_run_id) == {
        "plan-cap-8l-llama32-2026-01-02",
        "runs-cap-8l-llama32-2026-01-02",
    }


def _wait_for_state(flow_name: str, state_type: str, timeout: float = 90):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[state_type]))),
            )
            if runs:
                return runs[0]
            time.sleep(0.3)
    raise AssertionError(f"no {flow_name} run reached {state_type} within {timeout} s")


def _start_in_thread(**kwargs):
    from flows.plan_runs import plan_runs

    box: dict = {}

    def target():
        box["state"] = plan_runs(return_state=True, **kwargs)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "reject"])
def test_run_pauses_for_approval(prefect_server, fake_site, tmp_path, approve):
    from prefect.flow_runs import resume_flow_run

    name = f"paused_{'yes' if approve else 'no'}"
    thread, box = _start_in_thread(design=fake_site.design(name=name), date=DATE)
    paused = _wait_for_state("plan-runs", "PAUSED")
    try:
        assert paused.state.name == "Paused"
        # nothing is written before approval
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
        assert {f"plan-{name.replace('_', '-')}-2026-01-02", f"runs-{name.replace('_', '-')}-2026-01-02"} <= _artifact_keys(paused.id)
        resume_flow_run(paused.id, run_input={"approve": approve, "comment": "looks right" if approve else "rank 64 is too big"})
    finally:
        thread.join(timeout=90)
    assert not thread.is_alive()
    state = box["state"]
    if approve:
        assert state.is_completed(), state.message
        assert delivered(fake_site.group_dir(name)) == FILES
    else:
        assert state.is_cancelled()
        assert "rank 64 is too big" in state.message
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_task_that_cannot_get_what_fidelity_needs_is_refused_and_nothing_written(prefect_server, fake_site, tmp_path):
    from flows.plan_runs import plan_runs

    design = fake_site.design(name="contract", training={"epochs": 1, "system_prompt": "Capitalize."})
    design["evaluation"]["tasks"][0]["args"] = {"shots": 3}
    Path(design["evaluation"]["tasks"][0]["script"]).write_text(
        "from inspect_ai import task\n\n@task\ndef cap(dataset=None, prompt=''):\n    pass\n"
    )
    state = plan_runs(design, auto_approve=True, date=DATE, return_state=True)
    assert state.is_failed()
    assert "evaluation.tasks[0].args: task cap: args names 'shots', which the task does not have " \
        "(its parameters: dataset, prompt)" in state.message
    assert "task cap: training uses a system prompt (run " in state.message
    assert "add `<its system-prompt parameter>: ${system_prompt}` under the task's `args:`" in state.message
    assert "Traceback" not in state.message
    assert not (tmp_path / "out").exists()


def test_invalid_design_fails_with_clear_message(prefect_server, fake_site, tmp_path, caplog):
    from flows.plan_runs import plan_runs
    from tasks.core._errors import DesignError

    bad = fake_site.design(name="broken", models=["Llama-3.2-1B-Instruct", "Llama-9-Huge"])
    state = plan_runs(bad, auto_approve=True, date=DATE, return_state=True)
    assert state.is_failed()
    assert "models[1]" in state.message and "Llama-9-Huge" in state.message
    assert "Traceback" not in state.message
    assert not (tmp_path / "out").exists()
    # as a plain function call, the DesignError itself is raised
    missing = fake_site.design(name="missing")
    missing["dataset"] = {"path": str(tmp_path / "nope.json")}
    with pytest.raises(DesignError, match="dataset.path"):
        plan_runs(missing, auto_approve=True, date=DATE)


def test_design_file_and_saved_blocks(prefect_server, fake_site, tmp_path):
    """A design file naming saved paths and cluster blocks."""
    import yaml

    from blocks import ExperimentPaths, SlurmCluster
    from flows.plan_runs import plan_runs
    from tasks.model._plan_file import load_plan

    data = fake_site.design(name="blocks")
    paths = data.pop("paths")
    ExperimentPaths(**paths).save("test-site", overwrite=True)
    SlurmCluster(account="lab", partition="gpu", env_setup=["module load cuda"]).save("test-cluster", overwrite=True)
    data["paths"] = "test-site"
    data["cluster"] = "test-cluster"
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(data))

    group = plan_runs(str(path), auto_approve=True, date=DATE)
    plan = load_plan(group)
    assert plan.design.cluster["account"] == "lab"
    assert Path(plan.design.paths.output_dir) == tmp_path / "out"

    data["paths"] = "no-such-site"
    path.write_text(yaml.safe_dump(data))
    state = plan_runs(str(path), auto_approve=True, date=DATE, return_state=True)
    assert state.is_failed() and "no-such-site" in state.message and "paths" in state.message


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(env or {})}
    full_env.pop("PREFECT_API_URL", None)  # the CLI runs as plain Python (temporary server)
    return subprocess.run(
        [sys.executable, "-m", "flows.plan_runs", *args],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=240,
    )


def test_cli_bad_design_exits_2_without_traceback(tmp_path):
    path = tmp_path / "design.yaml"
    path.write_text("name: x\nmodels: [Llama-3.2-1B-Instruct]\n")
    result = _cli(str(path), "--auto-approve")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "question: required field is missing" in result.stderr


@pytest.mark.slow
def test_cli_plain_python_run(fake_site, tmp_path):
    """No server configured: the flow runs against Prefect's temporary local server."""
    import yaml

    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(fake_site.design(name="cli")))
    result = _cli(str(path), "--auto-approve", "--date", DATE)
    assert result.returncode == 0, result.stderr[-3000:]
    out = fake_site.group_dir("cli")
    assert result.stdout.splitlines()[0] == str(out)
    assert delivered(out) == FILES


def test_read_design_accepts_path_text_and_mapping(fake_site, tmp_path, monkeypatch):
    import yaml

    from tasks.model import read_design

    data = fake_site.design(name="forms")
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(data))
    from_file = read_design(str(path))
    from_text = read_design(yaml.safe_dump(data))
    from_dict = read_design(data)
    assert from_file == from_text == from_dict
    # relative paths in a mapping resolve against the working directory
    monkeypatch.chdir(tmp_path)
    relative = {**data, "dataset": {"path": "data/words_5L.json"}}
    assert read_design(relative).dataset.path == tmp_path / "data" / "words_5L.json"


def test_artifact_keys_are_valid():
    import re

    from flows._common import artifact_slug

    for group in ("cap_8L_llama32_lora_comparison_2025-10-18", "A.b__C-1_2026-01-01", "___"):
        slug = artifact_slug(group)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug), slug
    assert artifact_slug("cap_8L_x_2025-10-18") == "cap-8l-x-2025-10-18"


CPU_LOCAL = {"backend": "local", "device": "cpu", "mem": "2G", "eval_mem": "2G"}


def test_site_check_result_reaches_the_plan_and_its_artifact(prefect_server, fake_site):
    from prefect.client.orchestration import get_client

    from flows.plan_runs import plan_runs

    state = plan_runs(fake_site.design(name="checked", cluster=CPU_LOCAL), auto_approve=True, date=DATE,
                      check_site=True, return_state=True)
    assert state.is_completed(), state.message
    plan_md = (fake_site.group_dir("checked") / "runs_plan.md").read_text()
    assert "## Site Check" in plan_md and "**Passed**" in plan_md and "torchtune 0.6.1" in plan_md
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
        markdown = next(a.data for a in artifact if a.key == "plan-checked-2026-01-02")
    assert "## Site Check" in markdown and "Llama-3.2-1B-Instruct: config.json matches" in markdown
    assert "site_check:" in (fake_site.group_dir("checked") / "experiment.yaml").read_text()


def test_failed_site_check_stops_an_auto_approved_plan_and_writes_nothing(prefect_server, fake_site, tmp_path):
    from flows.plan_runs import plan_runs

    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    cluster = {**CPU_LOCAL, "job_env": {"venv": str(bare)}}
    state = plan_runs(fake_site.design(name="badenv", cluster=cluster), auto_approve=True, date=DATE,
                      check_site=True, return_state=True)
    assert state.is_failed()
    assert "The site check failed; nothing was written" in state.message
    assert "torchtune is not installed" in state.message and "Traceback" not in state.message
    assert not fake_site.group_dir("badenv").exists()


def test_approval_form_shows_a_failed_site_check():
    from flows._plan_approval import _site_check_line
    from tasks.model import SiteCheckReport

    report = SiteCheckReport.model_validate({
        "checked_at": "2026-01-02T10:00:00+00:00", "backend": "slurm",
        "shapes": [{"shape": {"stages": ["finetune"], "partition": "gpu", "gpus": 2, "mem": "64G", "cpus": 8},
                    "outcome": "failed", "message": "device cuda was asked for, but torch.cuda.is_available() is False"}],
    })

    class _Plan:
        site_check = report

    line = _site_check_line(_Plan())  # type: ignore[arg-type]
    assert line.startswith("**Site check FAILED**")
    assert "finetune: partition gpu, 2 x GPU, 64G: failed: device cuda was asked for" in line
    _Plan.site_check = report.model_copy(update={"shapes": [report.shapes[0].model_copy(update={"outcome": "passed"})]})
    assert _site_check_line(_Plan()) == ""  # type: ignore[arg-type]


def test_approval_form_names_the_figures_a_pilot_measured():
    """The form's figures table says "measured by pilot" where the pilot measured a figure, else its source."""
    from flows._plan_approval import _approval_form
    from tasks.planning._formulas import measured_figure
    from tests.support.seed_plan import build_plan as seed_plan

    plan = seed_plan()
    model = next(iter(plan.estimates.per_model))
    m = plan.estimates.per_model[model]
    pilot_speed = measured_figure(m.speed_it_s.value, "prior log /x/slurm-1.out", by_pilot=True)
    per_model = {**plan.estimates.per_model, model: m.model_copy(update={"speed_it_s": pilot_speed})}
    plan = plan.model_copy(update={"estimates": plan.estimates.model_copy(update={"per_model": per_model})})

    text = _approval_form(plan, "plan-x", pilot_problem=None)._description
    assert f"| {model} | training speed | {pilot_speed.value:.3g} it/s | measured by pilot |" in text
    assert f"| {model} | checkpoint per epoch |" in text and "measured by pilot |" not in text.split("checkpoint per epoch")[1].split("\n")[0]
    failed = _approval_form(plan, "plan-x", pilot_problem="pilot-runs ended Failed: OOM twice")._description
    assert "**Pilot FAILED**: pilot-runs ended Failed: OOM twice" in failed
