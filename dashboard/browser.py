"""The real app in Debian's headless Chromium, driven by Playwright: the one launcher for browser tests and benchmarks.

Shared by the browser tests (tests/test_browser.py, tests/test_browser_sessions.py) and the browser
benchmark (scripts/browser_bench.py): start the app as `make app` does (`python -m dashboard.serve`) on
a free loopback port, launch Debian's chromium through Playwright (`executable_path`, so no browser is
ever downloaded: never `playwright install`), and wait for Streamlit's script to finish from the
attributes it puts on stApp. The JavaScript conditions are strings, so the sync API (tests, bench)
and the async one (many sessions at once) share them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent  # the project root
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--hide-scrollbars"]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}

# True once Streamlit's script has finished and the page is connected, for `calm` polls in a row (a rerun that
# a widget's callback triggers starts between two polls, so one quiet poll is not enough).
IDLE_JS = """(calm) => {
  const a = document.querySelector('[data-testid=stApp]');
  const quiet = !!a && a.getAttribute('data-test-script-state') === 'notRunning'
    && a.getAttribute('data-test-connection-state') === 'CONNECTED';
  window.__nsCalm = quiet ? (window.__nsCalm || 0) + 1 : 0;
  return window.__nsCalm >= calm;
}"""

# How many script runs this page has seen start (an observer on stApp's script state, installed on first call).
RUNS_JS = """() => {
  const a = document.querySelector('[data-testid=stApp]');
  if (!a) return 0;
  if (!window.__nsRuns) {
    window.__nsRuns = {n: 0};
    new MutationObserver(() => { if (a.getAttribute('data-test-script-state') === 'running') window.__nsRuns.n++; })
      .observe(a, {attributes: true, attributeFilter: ['data-test-script-state']});
  }
  return window.__nsRuns.n;
}"""
STARTED_JS = "(before) => !!window.__nsRuns && window.__nsRuns.n > before"


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


def is_local(url: str) -> bool:
    """Whether a request stays on this machine (loopback, or data:/blob:/about: that never leave the page)."""
    parsed = urlparse(url)
    if parsed.scheme in ("data", "blob", "about", "chrome-extension"):
        return True
    return parsed.hostname in LOOPBACK


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


def launch_options() -> dict:
    """Playwright's `chromium.launch` arguments for Debian's chromium (sync and async APIs alike)."""
    if CHROMIUM is None:
        raise RuntimeError("chromium not installed (apt-get install chromium)")
    return {"executable_path": CHROMIUM, "headless": True, "args": CHROMIUM_ARGS}


@contextlib.contextmanager
def chromium() -> Iterator:
    """Headless Debian chromium under Playwright's sync API; yields the Browser (new_page / new_context on it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options())
        try:
            yield browser
        finally:
            browser.close()


def wait_idle(page, timeout: float = 180.0, calm: int = 3, poll_ms: int = 500) -> None:
    """Until the script has run and stayed finished for `calm` polls (sync Page)."""
    page.evaluate("window.__nsCalm = 0")
    page.wait_for_function(IDLE_JS, arg=calm, polling=poll_ms, timeout=timeout * 1000)


def act(page, action, timeout: float = 180.0, start_s: float = 20.0) -> None:
    """Call `action()` (a click, a key) and wait for the script run it causes to finish: on a busy server a run
    can start seconds after the click, so a quiet page right after it proves nothing. An action that causes
    no run (a choice already made) is waited for `start_s`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    before = page.evaluate(RUNS_JS)
    action()
    try:
        page.wait_for_function(STARTED_JS, arg=before, polling=100, timeout=start_s * 1000)
    except PlaywrightTimeout:
        pass
    wait_idle(page, timeout)


def go(page, slug: str, timeout: float = 180.0) -> None:
    """Follow the sidebar link to a page (one session: the current scan carries over) and wait for it."""
    act(page, lambda: page.locator(nav_link(slug)).first.click(), timeout)


def script_state(page) -> str:
    return page.evaluate("(() => {const a = document.querySelector('[data-testid=stApp]');"
                         " return a ? a.getAttribute('data-test-script-state') : '';})()") or ""


async def wait_idle_async(page, timeout: float = 300.0, calm: int = 3, poll_ms: int = 500) -> None:
    """`wait_idle` for Playwright's async API (many sessions driven at once)."""
    await page.evaluate("window.__nsCalm = 0")
    await page.wait_for_function(IDLE_JS, arg=calm, polling=poll_ms, timeout=timeout * 1000)


async def act_async(page, action, timeout: float = 300.0, start_s: float = 20.0) -> None:
    """`act` for the async API: `action` is an awaitable (a click)."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    before = await page.evaluate(RUNS_JS)
    await action
    try:
        await page.wait_for_function(STARTED_JS, arg=before, polling=100, timeout=start_s * 1000)
    except PlaywrightTimeout:
        pass
    await wait_idle_async(page, timeout)


def nav_link(slug: str) -> str:
    """The sidebar link to a page (Home: the first link)."""
    return f"[data-testid=stSidebarNavLink][href$='/{slug}']" if slug != "home" else "[data-testid=stSidebarNavLink]"
