"""Helpers for integration tests that start real servers: free ports, health waits, a Prefect
server of the test's own, and stopping exactly the process group a test started (never by name)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Stop the process group this test started (SIGTERM, then SIGKILL after 20 s)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def wait_healthy(api: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Wait until the Prefect API at `api` answers /health (fail with the log's tail otherwise)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{api}/health", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


@dataclass
class PrefectServer:
    process: subprocess.Popen
    url: str  # http://127.0.0.1:<port>: the UI
    api: str  # <url>/api
    env: dict[str, str]  # this environment plus the settings that point Prefect at this server
    log: Path


def start_prefect_server(tmp_path: Path, cwd: Path, **extra_env: str) -> PrefectServer:
    """`prefect server start` on a free 127.0.0.1 port, with its own PREFECT_HOME (its own SQLite
    database) under tmp_path; returned once healthy. Stop it with `stop(server.process)`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"{url}/api",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_PROMPT": "false",
        **extra_env,
    }
    log = tmp_path / "server.log"
    process = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_healthy(f"{url}/api", process, log)
    except BaseException:
        stop(process)
        raise
    return PrefectServer(process, url, f"{url}/api", env, log)
