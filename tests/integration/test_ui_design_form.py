"""The design as a typed form in the Prefect UI, and `sweepflow plan --on-server` through a real server.

1. A real `prefect server start` on a free 127.0.0.1 port (own PREFECT_HOME), the `sweepflow`
   process work pool, and `prefect deploy --name plan-runs` from prefect.yaml: the deployment's
   stored parameter schema holds the design as the ExperimentDesign model or a file path.
2. Headless chromium (tests/integration/browser.py) opens the deployment's custom-run page: the
   `design` parameter is a form with a tab per kind ("Experiment design", "Design file"), and every
   top-level field of the design shows its description. Screenshot: <tmp>/design_form.png (its path
   is printed; a copy goes to tests/artifacts/ui/design_form.png, git-ignored).
3. A process worker, then `python -m sweepflow plan DESIGN --on-server --auto-approve`: the command
   prints the flow run's URL and "plan-runs completed", and the run group holds the plan.

Skipped without /usr/bin/chromium (CI installs it in .ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tasks.model import ExperimentDesign
from tests.integration.browser import CHROMIUM, Browser
from tests.integration.processes import PREFECT, start_prefect_server, stop
from tests.support.fakesite import DATE, FILES, delivered, design, group_dir

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "tests" / "artifacts" / "ui"

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def _words(text: str) -> str:
    return " ".join(text.split())


def _deploy_plan_runs(env: dict[str, str]) -> None:
    for command in ([PREFECT, "work-pool", "create", "sweepflow", "--type", "process", "--overwrite"],
                    [PREFECT, "deploy", "--name", "plan-runs", "--no-prompt"]):
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def _deployment(api: str) -> tuple[str, dict]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("plan-runs/plan-runs")
    return str(deployment.id), deployment.parameter_openapi_schema


def _wait_log(log: Path, text: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.3)
    pytest.fail(f"{text!r} not in {log.name}:\n{log.read_text()[-3000:]}")


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                    reason=f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium (.ci/run does)")
def test_design_form_and_sweepflow_on_server(tmp_path: Path) -> None:
    server = browser = worker = None
    worker_log = tmp_path / "worker.log"
    try:
        server = start_prefect_server(tmp_path, ROOT, SWEEPFLOW_HOME=str(ROOT), PREFECT_WORKER_QUERY_SECONDS="1")
        _deploy_plan_runs(server.env)
        deployment_id, schema = _deployment(server.api)
        kinds = schema["properties"]["design"]["anyOf"]
        assert {"$ref": "#/definitions/ExperimentDesign"} in kinds, kinds
        assert {"title": "Design file", "type": "string"} in kinds, kinds

        browser = Browser(tmp_path, height=1100)
        browser.goto(f"{server.url}/deployments/deployment/{deployment_id}/run")
        question = "The research question this experiment answers"  # the description of `question`
        browser.wait_for(f"document.body && document.body.innerText.includes('{question}')",
                         what="the design form's fields")
        time.sleep(1)  # let the form finish laying out before the screenshot
        shot = tmp_path / "design_form.png"
        browser.screenshot(shot)
        print(f"design form screenshot: {shot}")
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SHOTS / "design_form.png")
        assert shot.stat().st_size > 20_000, "a blank page?"
        page = _words(browser.js("document.body.innerText"))
        (tmp_path / "design_form.txt").write_text(page)
        for text in ("Experiment design", "Design file", "fill in the design form"):
            assert text in page, f"{text!r} not on the run page (see {tmp_path / 'design_form.txt'})"
        for name, field in ExperimentDesign.model_fields.items():
            assert field.description and _words(field.description) in page, f"{name}: its description is not shown"

        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "sweepflow"], cwd=tmp_path, env=server.env,
                                  stdout=worker_log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        _wait_log(worker_log, "started", worker)
        # the worker plans against this machine's real free disk: adapters only keeps it small
        path = tmp_path / "design.yaml"
        path.write_text(yaml.safe_dump(design(tmp_path, name="on_server",
                                              training={"epochs": 2, "save_adapter_weights_only": True})))
        done = subprocess.run(
            [sys.executable, "-m", "sweepflow", "plan", str(path), "--on-server", "--auto-approve", "--no-check-site",
             "--date", DATE], cwd=tmp_path, env={**server.env, "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, timeout=300,
        )
        said = f"{done.stdout}\n{done.stderr[-3000:]}\n{worker_log.read_text()[-3000:]}"
        assert done.returncode == 0, said
        assert "plan-runs/plan-runs: flow run " in done.stdout and f"{server.url}/runs/flow-run/" in done.stdout, said
        assert done.stdout.rstrip().endswith("plan-runs completed"), said
        assert delivered(group_dir(tmp_path, "on_server")) == FILES
    finally:
        if browser is not None:
            browser.close()
        for process in (worker, server.process if server else None):
            if process is not None:
                stop(process)
