"""The real app in Debian's headless Chromium: every page renders, no exception box, fits 1280 px.

Starts `streamlit run` on a free loopback port, drives Chromium over the DevTools
protocol (websockets, already a streamlit dependency), moves between pages with the
sidebar links (one session, so the uploaded scan carries over), waits until the
script has finished (stApp's data-test-script-state), and saves a screenshot per
page to artifacts/screens/ (git-ignored; CI artefacts).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import app_pages
import nervseg

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "artifacts" / "screens"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--window-size=1280,1000"]
PAGES = [(p.slug, p.title) for p in app_pages.PAGES]

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f}s")


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
        return res["result"].get("value")

    def wait_idle(self, timeout: float = 180.0) -> None:
        """Until the script has run and stayed finished for ~1.5 s."""
        deadline, calm = time.time() + timeout, 0
        state_js = ("(() => {const a = document.querySelector('[data-testid=stApp]');"
                    " return a ? a.getAttribute('data-test-script-state') + '|' + a.getAttribute('data-test-connection-state') : 'none';})()")
        while time.time() < deadline:
            state = self.js(state_js) or ""
            calm = calm + 1 if state.startswith("notRunning|") and "CONNECTED" in state.upper() else 0
            if calm >= 3:
                return
            time.sleep(0.5)
        raise TimeoutError(f"script did not finish in {timeout:.0f}s (state {state})")

    def set_files(self, nth: int, path: Path) -> None:
        doc = self.call("DOM.getDocument", depth=-1)
        nodes = self.call("DOM.querySelectorAll", nodeId=doc["root"]["nodeId"], selector="input[type=file]")["nodeIds"]
        self.call("DOM.setFileInputFiles", files=[str(path)], nodeId=nodes[nth])

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health", 90)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a child process, killing it if it does not exit within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.time() > deadline or proc.poll() is not None:
                pytest.fail("chromium did not start its DevTools endpoint")
            time.sleep(0.3)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        cdp = CDP(page["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1, mobile=False)
        yield cdp
        cdp.close()
    finally:
        _stop(proc)


def _page_report(cdp: CDP) -> dict:
    return cdp.js("""(() => {
        const main = document.querySelector('[data-testid=stMain]');
        return {
          exceptions: [...document.querySelectorAll('[data-testid=stException]')].map(e => e.innerText.slice(0, 300)),
          errors: [...document.querySelectorAll('[data-testid=stAlertContentError]')].map(e => e.innerText.slice(0, 300)),
          title: (document.querySelector('h1') || {}).innerText || '',
          sidebar: (document.querySelector('[data-testid=stSidebar]') || {}).innerText || '',
          overflow: main ? main.scrollWidth - main.clientWidth : -1,
          images: document.querySelectorAll('[data-testid=stImage] img, [data-testid=stFullScreenFrame] img').length,
        };
    })()""")


def test_every_page_in_headless_chromium(app_url, browser):
    SCREENS.mkdir(parents=True, exist_ok=True)
    data = nervseg.data_root()
    scan = data / "usgra-seg" / "images" / "0003.png"
    mask = data / "usgra-seg" / "masks" / "0003.png"
    from nervseg.models import available

    has_models = bool(available())
    browser.call("Page.navigate", url=app_url + "/")
    browser.wait_idle()
    reports = {}
    for slug, title in PAGES:
        link = f"[data-testid=stSidebarNavLink][href$='/{slug}']" if slug != "home" else "[data-testid=stSidebarNavLink]"
        present = browser.js(f"(() => {{const a = document.querySelector(\"{link}\"); if (a) a.click(); return !!a;}})()")
        if not present:
            assert slug == "cine", f"no sidebar link to {slug}"
            continue
        browser.wait_idle()
        if has_models and scan.is_file() and slug == "segment":
            browser.set_files(0, scan)
            browser.wait_idle()
        if has_models and mask.is_file() and slug == "metrics":
            n_inputs = browser.js("document.querySelectorAll('input[type=file]').length")
            if n_inputs >= 2:
                browser.set_files(1, mask)
                browser.wait_idle()
        time.sleep(1.0)  # let images and charts paint
        browser.screenshot(SCREENS / f"{slug}.png")
        report = _page_report(browser)
        reports[slug] = report
        assert not report["exceptions"], f"{slug}: exception box: {report['exceptions']}"
        assert report["title"], f"{slug}: page has no title"
        assert "not a medical device" in report["sidebar"], f"{slug}: sidebar missing"
        assert report["overflow"] <= 0, f"{slug}: {report['overflow']} px horizontal overflow at 1280 px"
    if has_models and scan.is_file():
        assert reports["segment"]["images"] >= 1 and not reports["segment"]["errors"], reports["segment"]
    (SCREENS / "report.json").write_text(json.dumps(reports, indent=2))
