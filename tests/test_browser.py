"""The real app in Debian's headless Chromium: every page renders, no exception box, fits 1280 and 1024 px.

Starts `streamlit run` on a free loopback port (no data folder: a newcomer's laptop), drives
Chromium over the DevTools protocol (websockets, already a streamlit dependency), opens a
bundled sample from the Home gallery, moves between pages with the sidebar links (one
session, so the scan carries over), waits until the script has finished (stApp's
data-test-script-state), fails when the page, a table (columns cut off: the grid scrolls
sideways) or an image/chart overflows its container, and saves a screenshot per page and
width to artifacts/screens/ (git-ignored; CI artefacts).
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
WIDTHS = [1280, 1024]
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
    empty = tmp_path_factory.mktemp("no-data")
    env = dict(os.environ, PYTHONUNBUFFERED="1", NERVSEG_DATA=str(empty), NERVSEG_SAMPLES_URL="http://127.0.0.1:9/")
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
        const name = (e) => (e.closest('[data-testid=stElementContainer]') || e).innerText.slice(0, 60);
        const over = (inner, outer) => inner.getBoundingClientRect().right - outer.getBoundingClientRect().right;
        const tables = [...document.querySelectorAll('[data-testid=stDataFrame]')].map(t => {
          const sc = t.querySelector('.dvn-scroller');
          return {clipped: sc ? sc.scrollWidth - sc.clientWidth : 0, overflow: over(t, main), head: name(t),
                  sizes: sc ? [sc.scrollWidth, sc.clientWidth, sc.offsetWidth, t.clientWidth] : []};
        });
        const visuals = [...document.querySelectorAll('[data-testid=stImage] img, .js-plotly-plot, video')].map(v => {
          const box = v.closest('[data-testid=stVerticalBlock]') || main;
          return {overflow: Math.max(over(v, box), over(v, main)), width: v.getBoundingClientRect().width,
                  kind: v.tagName};
        });
        return {
          exceptions: [...document.querySelectorAll('[data-testid=stException]')].map(e => e.innerText.slice(0, 300)),
          errors: [...document.querySelectorAll('[data-testid=stAlertContentError]')].map(e => e.innerText.slice(0, 300)),
          title: (document.querySelector('h1') || {}).innerText || '',
          sidebar: (document.querySelector('[data-testid=stSidebar]') || {}).innerText || '',
          overflow: main ? main.scrollWidth - main.clientWidth : -1,
          main_width: main ? main.clientWidth : 0,
          tables: tables, visuals: visuals,
          images: document.querySelectorAll('[data-testid=stImage] img, [data-testid=stFullScreenFrame] img').length,
          charts: document.querySelectorAll('.js-plotly-plot').length,
        };
    })()""")


def _check(slug: str, width: int, report: dict) -> None:
    where = f"{slug} at {width} px"
    assert not report["exceptions"], f"{where}: exception box: {report['exceptions']}"
    assert report["title"], f"{where}: page has no title"
    assert "not a medical device" in report["sidebar"], f"{where}: sidebar missing"
    assert report["overflow"] <= 0, f"{where}: {report['overflow']} px horizontal overflow"
    for t in report["tables"]:
        assert t["clipped"] <= 1, f"{where}: table columns cut off ({t['clipped']} px hidden): {t['head']!r} {t['sizes']}"
        assert t["overflow"] <= 1, f"{where}: table wider than the page by {t['overflow']} px: {t['head']!r}"
    for v in report["visuals"]:
        assert v["overflow"] <= 1, f"{where}: {v['kind']} overflows its container by {v['overflow']} px"


def _wait_for(cdp: CDP, condition: str, seconds: float) -> None:
    """Poll a JS condition (e.g. a chart painted after the script finished) up to `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline and not cdp.js(condition):
        time.sleep(0.5)


def _click_text(cdp: CDP, selector: str, text: str) -> bool:
    return cdp.js(f"""(() => {{const b = [...document.querySelectorAll({json.dumps(selector)})]
        .find(e => e.innerText.trim().endsWith({json.dumps(text)})); if (b) b.click(); return !!b;}})()""")


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_in_headless_chromium(app_url, browser, width):
    from nervseg import samples
    from nervseg.models import available

    SCREENS.mkdir(parents=True, exist_ok=True)
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=1000, deviceScaleFactor=1, mobile=False)
    has_models = bool(available())
    sample = next((s for s in samples.bundled() if "vessel" in s.structures), None)
    browser.call("Page.navigate", url=app_url + "/")
    browser.wait_idle()
    reports = {}
    for slug, title in PAGES:
        if slug == "segment" and has_models and sample is not None:
            assert _click_text(browser, "button", f"Open {sample.stem}"), "no gallery button on Home"
        else:
            link = (f"[data-testid=stSidebarNavLink][href$='/{slug}']" if slug != "home"
                    else "[data-testid=stSidebarNavLink]")
            present = browser.js(f"(() => {{const a = document.querySelector(\"{link}\"); if (a) a.click(); return !!a;}})()")
            if not present:
                assert slug == "cine", f"no sidebar link to {slug}"
                continue
        browser.wait_idle()
        if slug == "segment" and has_models and sample is not None:
            _wait_for(browser, "document.querySelectorAll('.js-plotly-plot').length > 0", 60)
        time.sleep(1.5)  # let images and charts paint
        browser.screenshot(SCREENS / f"{slug}-{width}.png")
        report = _page_report(browser)
        reports[slug] = report
        _check(slug, width, report)
    if has_models and sample is not None:
        seg = reports["segment"]
        assert seg["charts"] >= 1 and not seg["errors"], seg
        assert reports["home"]["images"] >= len(samples.bundled()), "the gallery shows no thumbnails"
    (SCREENS / f"report-{width}.json").write_text(json.dumps(reports, indent=2))
