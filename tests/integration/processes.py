"""Helpers for integration tests that start real servers: free ports, health waits, and
stopping exactly the process group a test started (never by name)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


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
