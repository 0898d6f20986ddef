"""The real app in Debian's headless Chromium, driven over the DevTools protocol (CDP).

Shared by the browser test (tests/test_browser.py) and the browser benchmark
(scripts/browser_bench.py): start the app (dashboard.serve, as `make app`) on a free loopback port, start Chromium with
its DevTools endpoint, and talk to one page through `CDP` (websockets, already a streamlit
dependency). Written by hand because the usual drivers (Selenium, Playwright) download their
own browsers, and CI may use only Debian's chromium.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project root
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--window-size=1280,1000"]
SCRIPT_STATE_JS = ("(() => {const a = document.querySelector('[data-testid=stApp]');"
                   " return a ? a.getAttribute('data-test-script-state') + '|' + "
                   "a.getAttribute('data-test-connection-state') : 'none';})()")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float, poll: float = 0.5) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(poll)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a child process, killing it if it does not exit within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


class CDP:
    """Minimal synchronous Chrome DevTools Protocol client for one page."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=20)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails'].get('text')} "
                               f"{res['exceptionDetails'].get('exception', {}).get('description', '')[:300]}")
        return res["result"].get("value")

    def script_state(self) -> str:
        return self.js(SCRIPT_STATE_JS) or ""

    def wait_idle(self, timeout: float = 180.0, calm_polls: int = 3, poll: float = 0.5) -> None:
        """Until the script has run and stayed finished for `calm_polls` polls."""
        deadline, calm, state = time.time() + timeout, 0, ""
        while time.time() < deadline:
            state = self.script_state()
            calm = calm + 1 if state.startswith("notRunning|") and "CONNECTED" in state.upper() else 0
            if calm >= calm_polls:
                return
            time.sleep(poll)
        raise TimeoutError(f"script did not finish in {timeout:.0f}s (state {state})")

    def wait_for(self, condition: str, seconds: float, poll: float = 0.5) -> bool:
        """Poll a JS condition up to `seconds`; whether it came true."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.js(condition):
                return True
            time.sleep(poll)
        return False

    def set_files(self, nth: int, path: Path) -> None:
        doc = self.call("DOM.getDocument", depth=-1)
        nodes = self.call("DOM.querySelectorAll", nodeId=doc["root"]["nodeId"], selector="input[type=file]")["nodeIds"]
        self.call("DOM.setFileInputFiles", files=[str(path)], nodeId=nodes[nth])

    def click_text(self, selector: str, text: str) -> bool:
        """Click the first `selector` element whose text ends with `text`; whether there was one."""
        return self.js(f"""(() => {{const b = [...document.querySelectorAll({json.dumps(selector)})]
            .find(e => e.innerText.trim().endsWith({json.dumps(text)})); if (b) b.click(); return !!b;}})()""")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def streamlit_app(log: Path, env: dict | None = None, port: int | None = None,
                  wait: bool = True) -> Iterator[tuple[str, subprocess.Popen]]:
    """The app as `make app` starts it (dashboard.serve) on a loopback port: yields (url, process); output to `log`."""
    port = port or free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.serve", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})), stdout=out,
            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        if wait:
            wait_http(url + "/_stcore/health", 90)
        yield url, proc
    finally:
        stop(proc)


@contextlib.contextmanager
def chromium(profile: Path, width: int = 1280, height: int = 1000) -> Iterator[CDP]:
    """Headless Chromium with a fresh profile; yields a CDP client on its one page."""
    if CHROMIUM is None:
        raise RuntimeError("chromium not installed (apt-get install chromium)")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.3)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        cdp = CDP(page["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        try:
            yield cdp
        finally:
            cdp.close()
    finally:
        stop(proc)
