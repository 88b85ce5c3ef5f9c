"""End to end through a real Prefect server: work pool, `prefect deploy` from prefect.yaml,
a process worker, and `prefect deployment run plan-runs/plan-runs --watch`.

Starts its own server on a free 127.0.0.1 port with its own PREFECT_HOME (so its own SQLite
database) under tmp_path, and stops exactly the processes it started (each in its own
session, stopped by process group).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.processes import PREFECT, start_prefect_server, stop
from tests.support.fakesite import DATE, FILES, delivered, design, group_dir

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def _wait_log(log: Path, text: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.3)
    pytest.fail(f"{text!r} not in {log.name}:\n{log.read_text()[-3000:]}")


def test_deployment_run_through_worker(tmp_path):
    timings: dict[str, float] = {}
    started: list[subprocess.Popen] = []
    try:
        t = time.monotonic()
        server = start_prefect_server(tmp_path, ROOT, PREFECT_WORKER_QUERY_SECONDS="1", SWEEPFLOW_HOME=str(ROOT))
        started.append(server.process)
        api, env = server.api, server.env
        timings["server start"] = time.monotonic() - t

        t = time.monotonic()
        for command in (
            [PREFECT, "work-pool", "create", "sweepflow", "--type", "process", "--overwrite"],
            [PREFECT, "deploy", "--all", "--no-prompt"],
        ):
            result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        timings["pool + deploy"] = time.monotonic() - t
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            deployed = {d.name for d in client.read_deployments()}
        declared = {d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
        assert declared <= deployed, f"not deployed: {sorted(declared - deployed)}"  # every flow loaded

        t = time.monotonic()
        worker_log = tmp_path / "worker.log"
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "sweepflow"],
            cwd=tmp_path, env=env, stdout=worker_log.open("w"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        started.append(worker)
        _wait_log(worker_log, "started", worker)
        timings["worker start"] = time.monotonic() - t

        # run from another folder: the pull step must bring the flow run back to the clone
        t = time.monotonic()
        # the fake site's models ask for CUDA, which this machine lacks: no site check here
        # (tests/integration/test_job_environment.py runs it for real)
        # the worker plans against this machine's real free disk: adapters only keeps it at ~1 GiB (merged: ~39)
        small = design(tmp_path, name="deployed", training={"epochs": 2, "save_adapter_weights_only": True})
        params = {"design": small, "auto_approve": True, "date": DATE, "check_site": False}
        result = subprocess.run(
            [PREFECT, "deployment", "run", "plan-runs/plan-runs", "--params", json.dumps(params), "--watch"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
        )
        timings["deployment run --watch"] = time.monotonic() - t
        assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{worker_log.read_text()[-3000:]}"
        assert delivered(group_dir(tmp_path, "deployed")) == FILES

        # a design problem: the deployed run ends Failed with the message, logged without a traceback
        t = time.monotonic()
        before = len(worker_log.read_text(errors="replace"))
        broken = design(tmp_path, name="broken", models=["Llama-3.2-1B-Instruct", "Llama-9-Huge"])
        params = {"design": broken, "auto_approve": True, "date": DATE, "check_site": False}
        result = subprocess.run(
            [PREFECT, "deployment", "run", "plan-runs/plan-runs", "--params", json.dumps(params), "--watch"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
        )
        timings["failing run --watch"] = time.monotonic() - t
        deadline = time.monotonic() + 60
        while not re.search(r"Flow run '[^']+' - Finished in state Failed", log := worker_log.read_text()[before:]):
            assert time.monotonic() < deadline, log[-3000:]
            time.sleep(0.3)
        time.sleep(3)  # a runner's repeat of the flow's error (dropped by flows/_common) would come right after
        log = worker_log.read_text(errors="replace")[before:]
        assert result.returncode != 0 and "Failed" in result.stdout + result.stderr, result.stdout[-3000:]
        assert "models[1]" in log and "Llama-9-Huge" in log, log[-3000:]
        assert "Traceback" not in log, log[-5000:]
        assert not group_dir(tmp_path, "broken").exists()
    finally:
        for process in reversed(started):
            stop(process)
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
