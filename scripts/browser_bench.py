"""Browser benchmark: how fast the app answers in a real headless Chromium, from input event to image on screen.

    .venv/bin/python scripts/browser_bench.py [--repeats 5] [--busy] [--threads N] [--json FILE]

Starts the app as `make app` does (dashboard.serve) and Debian's chromium under Playwright
(dashboard.browser). In the page, a capture-phase
listener takes the input event's own timestamp (key press, click, file chosen); a
MutationObserver and `load` listeners watch the images the interaction should change
(`src`/`href` of <img> and plotly's SVG <image>), and the time of the animation frame after
the last such change is "on screen". The measure ends once the script is idle and the page
has been quiet for 0.6 s. Interactions, on the usgra models:

- first result: from the server's first health answer (the browser already open) to Home's
  opening result (the opening model's mask on a bundled sample) on screen; then, clicking its
  "Open it on Segment" as soon as it exists, to Segment's figure on screen;
- Segment: threshold slider, opacity slider (arrow keys) and view radio (click): display only;
- Segment: a new scan (file chosen in the uploader);
- Lab: the CLAHE slider (a new what-if prediction and preprocessing);
- Compare: a new scan through three models (all three panels updated).

`--busy` runs a second process that keeps one core busy all the while (issue 16: within 2x).
Needs ../shared/data (usgra-seg scans for the new-scan uploads). Lives outside nervseg/
because it drives the Streamlit app.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from dashboard import browser as app_browser  # noqa: E402
from dashboard.browser import streamlit_app  # noqa: E402

# Installed once per page load: window.__nbArm(selector, need) starts a measurement of the next
# input event; window.__nb holds its state. Container = the closest element matching `selector`.
PROBE_JS = r"""
(() => {
  if (window.__nbArm) return true;
  const now = () => performance.now();
  const paintAfter = (fn) => requestAnimationFrame(() => fn(now()));
  window.__nbArm = (selector, need) => {
    window.__nb = {selector, need, t0: null, changed: {}, last: 0, quietSince: now(), events: 0};
    return true;
  };
  const box = (el) => {
    const nb = window.__nb;
    if (!nb || !el || !el.closest) return null;
    const c = el.closest(nb.selector);
    if (!c) return null;
    const named = [...c.classList].find((k) => k.startsWith("st-key-"));  // a keyed element: its own name
    if (named) return named;
    return String([...document.querySelectorAll(nb.selector)].indexOf(c));
  };
  const onImageChange = (el) => {
    const nb = window.__nb;
    const key = box(el);
    if (!nb || nb.t0 === null || key === null) return;
    nb.changed[key] = true;
    paintAfter((t) => { nb.last = Math.max(nb.last, t); });
  };
  for (const type of ["keydown", "pointerdown", "click", "change", "input"]) {
    window.addEventListener(type, (e) => {
      const nb = window.__nb;
      if (nb && nb.t0 === null) nb.t0 = e.timeStamp;
    }, true);
  }
  document.addEventListener("load", (e) => {
    const t = e.target;
    if (t && (t.tagName === "IMG" || t.tagName === "image")) onImageChange(t);
  }, true);
  new MutationObserver((records) => {
    const nb = window.__nb;
    if (nb) nb.quietSince = now();
    for (const r of records) {
      if (r.type === "attributes" && (r.target.tagName === "IMG" || r.target.tagName === "image")) {
        onImageChange(r.target);
      } else if (r.type === "childList") {
        for (const n of r.addedNodes) {
          if (n.nodeType !== 1) continue;
          const imgs = (n.tagName === "IMG" || n.tagName === "image") ? [n] : [...n.querySelectorAll("img, image")];
          imgs.forEach(onImageChange);
        }
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true,
                             attributeFilter: ["src", "href", "xlink:href"]});
  return true;
})()
"""

READ_JS = """(() => {const nb = window.__nb; if (!nb) return null;
  return {t0: nb.t0, last: nb.last, changed: Object.keys(nb.changed).length, need: nb.need,
          quiet_ms: performance.now() - nb.quietSince, now: performance.now(), origin: performance.timeOrigin};})()"""


class Page:
    """One browser page on the app: page changes (the probe installed again), input events, timed updates."""

    def __init__(self, page, url: str):
        self.page, self.url = page, url

    def go(self, slug: str) -> None:
        """Sidebar link to a page (one session: the current scan carries over)."""
        app_browser.go(self.page, slug)
        self.page.evaluate(PROBE_JS)
        time.sleep(0.5)

    def update(self, selector: str, need: int, act, timeout: float = 60.0) -> dict:
        """The probe's state once `act()`'s input event has changed images in `need` distinct containers
        matching `selector`, the script is idle and the page has been quiet for 0.6 s."""
        self.page.evaluate("([s, n]) => window.__nbArm(s, n)", [selector, need])
        act()
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.page.evaluate(READ_JS)
            idle = app_browser.script_state(self.page) == "notRunning"
            if s and s["t0"] is not None and s["changed"] >= need and idle and s["quiet_ms"] > 600:
                return s
            time.sleep(0.05)
        _require(False, f"an update of {need} x {selector} within {timeout:.0f} s ({self.page.evaluate(READ_JS)})",
                 self.page)

    def measure(self, selector: str, need: int, act, timeout: float = 60.0) -> float:
        """ms from the input event `act()` causes to the frame after the last image change (`update`)."""
        s = self.update(selector, need, act, timeout)
        return round(s["last"] - s["t0"], 1)

    def key(self, selector: str, key: str) -> None:
        """Focus `selector` and press one key (real keyboard events)."""
        self.page.focus(selector)
        self.page.keyboard.press(key)

    def click_label(self, container: str, text: str) -> None:
        """Click a radio option by its label with real mouse events (scrolled into view first)."""
        label = self.page.locator(f"{container} label").filter(has_text=text).first
        label.scroll_into_view_if_needed()
        box = label.bounding_box()
        if box is None:
            raise RuntimeError(f"no option {text!r} in {container}")
        self.page.mouse.click(box["x"] + 8, box["y"] + box["height"] / 2)

    def upload(self, path: Path) -> None:
        self.page.locator("input[type=file]").first.set_input_files(str(path))


def _require(ok: bool, what: str, page) -> None:
    """A wait that timed out is a failure, not a timing."""
    if not ok:
        alerts = page.evaluate("[...document.querySelectorAll('[data-testid=stAlertContainer], "
                               "[data-testid=stException]')].map(e => e.innerText.slice(0, 200))")
        raise TimeoutError(f"no {what}; alerts on the page: {alerts}")


def _wait_for(page, condition: str, seconds: float, poll_ms: int = 20) -> bool:
    """Poll a JS expression up to `seconds`; whether it came true."""
    try:
        page.wait_for_function(condition, polling=poll_ms, timeout=seconds * 1000)
        return True
    except PlaywrightTimeout:
        return False


def _slider(key: str) -> str:
    return f".st-key-{key} input[type=range]"


def run(repeats: int, scans: list[Path], env: dict, log: Path, first_only: bool = False) -> dict:
    out: dict = {}
    with app_browser.chromium() as browser, streamlit_app(log, env=env, wait=False) as (url, _proc):  # the browser is open before the server starts
        tab = browser.new_page(viewport={"width": 1280, "height": 1000})
        t_start = time.time()
        app_browser.wait_http(url + "/_stcore/health", 90, poll=0.05)
        t_health = time.time()
        out["server start to health s"] = round(t_health - t_start, 2)
        page = Page(tab, url)
        tab.goto(url + "/", wait_until="commit")
        hero = ".st-key-home_hero img"
        _require(_wait_for(tab, f"(() => {{const i = document.querySelector('{hero}'); return !!i && i.complete && "
                                "i.naturalWidth > 0;})()", 120), "Home's opening result within 120 s", tab)
        out["first result (Home's opening result) after health ms"] = round((time.time() - t_health) * 1000, 0)
        _wait_for(tab, "document.readyState === 'complete'", 60)
        tab.evaluate(PROBE_JS)
        _require(_wait_for(tab, "!!document.querySelector('.st-key-home_hero_open button')", 60),
                 "'Open it on Segment' button within 60 s", tab)
        s = page.update(".st-key-seg_figure", 1,
                        lambda: tab.evaluate("document.querySelector('.st-key-home_hero_open button').click()"), 120)
        out["Segment opened from Home, after health ms"] = round(s["origin"] + s["last"] - t_health * 1000, 0)
        out["Segment opened from Home, after click ms"] = round(s["last"] - s["t0"], 0)
        if first_only:
            return out
        app_browser.wait_idle(tab, 60, calm=2, poll_ms=300)
        fig = ".st-key-seg_figure"
        keys = ["ArrowRight", "ArrowLeft"] * repeats
        out["segment threshold (slider) ms"] = [
            page.measure(fig, 1, lambda k=k: page.key(_slider("seg_threshold"), k)) for k in keys[:repeats]]
        out["segment opacity (slider) ms"] = [
            page.measure(fig, 1, lambda k=k: page.key(_slider("seg_opacity"), k)) for k in keys[:repeats]]
        views = ["Contours", "Overlay"] * repeats
        out["segment view (radio) ms"] = [
            page.measure(fig, 1, lambda v=v: page.click_label(".st-key-seg_view", v)) for v in views[:repeats]]
        out["segment new scan ms"] = [page.measure(fig, 1, lambda p=p: page.upload(p)) for p in scans[:repeats]]
        page.go("lab")
        out["lab CLAHE slider ms"] = [  # always up: each value new, so never a cached what-if
            page.measure("[data-testid=stImage]", 2, lambda: page.key(_slider("lab_clahe_clip"), "ArrowRight"))
            for _ in range(repeats)]
        app_browser.act(tab, tab.locator(".st-key-lab_reset button").first.click, 60)
        page.go("compare")
        out["compare three models, new scan ms"] = [
            page.measure("[class*=st-key-cmp_fig_]", 3, lambda p=p: page.upload(p))
            for p in scans[repeats:2 * repeats]]
        out["exceptions on screen"] = tab.evaluate("document.querySelectorAll('[data-testid=stException]').length")
    return out


def main(argv=None) -> dict:
    import nervseg

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--busy", action="store_true", help="keep one core busy with another process throughout")
    ap.add_argument("--threads", type=int, default=0, help="$NERVSEG_THREADS for the app (0: its default)")
    ap.add_argument("--first-only", action="store_true", help="only the first result after the server starts")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    scans = sorted((nervseg.data_root() / "usgra-seg" / "images").glob("*.png"))[-2 * args.repeats:]
    if len(scans) < 2 * args.repeats:
        raise SystemExit(f"needs {2 * args.repeats} usgra-seg scans under {nervseg.data_root()}")
    env = {"NERVSEG_THREADS": str(args.threads)} if args.threads else {}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        with tempfile.TemporaryDirectory(prefix="nervseg-browser-bench-", ignore_cleanup_errors=True) as tmp:
            log = Path(tmp) / "streamlit.log"
            try:
                res = run(args.repeats, scans, env, log, args.first_only)
            except Exception:
                print("server log:\n" + log.read_text()[-3000:], file=sys.stderr)
                raise
            log_text = log.read_text()
    finally:
        if hog:
            hog.kill()
    res["tracebacks in server log"] = log_text.count("Traceback")
    res["busy core"] = args.busy
    res["load average"] = os.getloadavg()[0]
    for k, v in res.items():
        shown = (f"median {statistics.median(v):.0f}, max {max(v):.0f} (all {v})" if isinstance(v, list) else v)
        print(f"{k}: {shown}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
