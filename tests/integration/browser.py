"""A headless Debian chromium driven over the Chrome DevTools Protocol, for UI tests that click.

`--screenshot` / `--dump-dom` (tests/integration/test_ui_screenshot.py) only load a page; the
approval form of a paused flow run opens behind a button, so that test needs clicks and typing.
The protocol is spoken with `websockets` (a Prefect dependency): nothing more is installed.
Chromium listens on a free 127.0.0.1 port, and its process group is stopped at the end.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from tests.integration.processes import free_port, stop

CHROMIUM = "/usr/bin/chromium"
# flags that keep chromium off the network and quiet here (REFERENCE.md, env notes)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


class Browser:
    """One page of a headless chromium: goto, evaluate JavaScript, wait for a condition, screenshot."""

    def __init__(self, tmp_path: Path, width: int = 1400, height: int = 900):
        self.port = free_port()
        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={self.port}",
             "--remote-debugging-address=127.0.0.1", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self._next_id = 0
        self.ws = connect(self._page_socket(), max_size=64 * 1024 * 1024, open_timeout=30)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _page_socket(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as answer:
                    pages = [t for t in json.load(answer) if t.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not open its DevTools port {self.port} (exit {self.process.poll()})")
            time.sleep(0.2)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are dropped)."""
        self._next_id += 1
        self.ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60, what: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.3)
        text = self.js("document.body ? document.body.innerText.slice(0, 1500) : ''")
        raise AssertionError(f"timed out waiting for {what or expression}; the page says:\n{text}")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            stop(self.process)
