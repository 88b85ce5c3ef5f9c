"""A researcher approves a plan in the Prefect UI's form: headless chromium clicks and types.

1. A real `prefect server start` on a free 127.0.0.1 port (own PREFECT_HOME), stopped by its
   process group at the end.
2. `python -m flows.plan_runs design.yaml` (no auto-approval) against it: the flow publishes
   the plan and pauses for input; the test waits until the run is Paused.
3. Chromium (tests/integration/browser.py) opens the flow run's page, clicks Resume, finds
   the approval form (the plan's summary, the `approve` switch, the `comment` field),
   screenshots it (tests/artifacts/ui/approval_form.png), types a comment and submits.
4. The flow resumes and writes the plan: the CLI exits 0, the run group holds the deliverables,
   the run is Completed, and its log says "Plan approved: <the comment>".

Skipped without /usr/bin/chromium (CI installs it in .ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.browser import CHROMIUM, Browser
from tests.integration.processes import start_prefect_server, stop
from tests.support.fakesite import DATE, FILES, delivered, design, group_dir

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"

pytestmark = [pytest.mark.slow, pytest.mark.prefect]

SHOTS = TESTS / "artifacts" / "ui"
COMMENT = "ranks 4 and 64 as agreed"

# JavaScript run in the page: the visible buttons whose text is exactly `label`
BUTTON = "[...document.querySelectorAll('button')].filter(b => b.innerText.trim() === {label} && b.offsetParent)"


def _paused_run(api: str, timeout: float = 120) -> str:
    """The id of the plan-runs flow run once it is Paused."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs()
            paused = [r for r in runs if r.state and r.state.is_paused()]
            if paused:
                return str(paused[0].id)
            time.sleep(0.5)
    raise AssertionError("plan-runs did not pause for approval")


def _final_state_and_logs(api: str, run_id: str) -> tuple[str, list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return (state.type.value if state else "?"), [log.message for log in logs]


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                    reason=f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium (.ci/run does)")
def test_plan_is_approved_through_the_ui_form(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    # the flow plans against this machine's real free disk: adapters only keeps it at ~1 GiB (merged: ~39)
    small = design(tmp_path, name="ui_approval", training={"epochs": 2, "save_adapter_weights_only": True})
    path.write_text(yaml.safe_dump(small))
    SHOTS.mkdir(parents=True, exist_ok=True)
    flow_log = tmp_path / "plan_runs.log"
    server = flow = browser = None
    try:
        server = start_prefect_server(tmp_path, ROOT, SWEEPFLOW_APPROVAL_POLL_S="1", SWEEPFLOW_APPROVAL_TIMEOUT_S="300")
        base_url, api, env = server.url, server.api, server.env
        flow = subprocess.Popen([sys.executable, "-m", "flows.plan_runs", str(path), "--date", DATE, "--no-check-site"], cwd=ROOT, env=env,
                                stdout=flow_log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        run_id = _paused_run(api)
        assert not group_dir(tmp_path, "ui_approval").exists()  # nothing written before approval

        browser = Browser(tmp_path)
        browser.goto(f"{base_url}/runs/flow-run/{run_id}")
        resume = BUTTON.format(label=json.dumps("Resume"))
        browser.wait_for(f"{resume}.length > 0", what="the Resume button of the paused run")
        browser.js(f"{resume}[0].click()")
        browser.wait_for("document.querySelector('[role=dialog], .p-modal') && "
                         "document.querySelector('[role=dialog], .p-modal').innerText.includes('Comment')",
                         what="the approval form")
        time.sleep(1)  # let the form's Markdown description finish rendering before the screenshot
        browser.screenshot(SHOTS / "approval_form.png")
        form = browser.js("document.querySelector('[role=dialog], .p-modal').innerText")
        (SHOTS / "approval_form.txt").write_text(form)
        for text in ("Approve the plan for", "ui_approval_" + DATE, "Approve (Optional)", "Comment (Optional)",
                     "Untick to reject the plan", "Rejecting writes nothing"):
            assert text in form, f"{text!r} not in the approval form (see {SHOTS / 'approval_form.txt'})"

        typed = browser.js(
            "(() => { const dialog = document.querySelector('[role=dialog], .p-modal');"
            " const field = [...dialog.querySelectorAll('textarea, input[type=text], input:not([type])')].pop();"
            " if (!field) return false;"
            f" field.focus(); field.value = {json.dumps(COMMENT)};"
            " field.dispatchEvent(new Event('input', {bubbles: true}));"
            " field.dispatchEvent(new Event('change', {bubbles: true})); return true; })()"
        )
        assert typed, "no text field for the comment in the approval form"
        submit = BUTTON.format(label=json.dumps("Submit"))
        browser.wait_for(f"{submit}.length > 0", what="the form's Submit button")
        browser.js(f"{submit}[0].click()")

        assert flow.wait(timeout=180) == 0, flow_log.read_text()[-3000:]
        out = group_dir(tmp_path, "ui_approval")
        assert delivered(out) == FILES
        state, messages = _final_state_and_logs(api, run_id)
        assert state == "COMPLETED", state
        assert f"Plan approved: {COMMENT}" in messages, messages
    finally:
        if browser is not None:
            browser.close()
        for process in (flow, server.process if server else None):
            if process is not None:
                stop(process)
        for log in (server.log if server else None, flow_log):
            if log is not None and log.exists():
                shutil.copy(log, SHOTS / f"approval_{log.name}")
