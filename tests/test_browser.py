"""The real app in Debian's headless Chromium: every page renders, no exception box, fits 1280 and 1024 px.

Starts the app as `make app` does (dashboard.serve) on a free loopback port (no data folder: a newcomer's laptop), drives
Chromium over the DevTools protocol (dashboard.browser), opens a
bundled sample from the Home gallery, moves between pages with the sidebar links (one
session, so the scan carries over), waits until the script has finished (stApp's
data-test-script-state), fails when the page, a table (columns cut off: the grid scrolls
sideways) or an image/chart overflows its container, and saves a screenshot per page and
width to artifacts/screens/ (git-ignored; CI artefacts).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dashboard import pages as app_pages
from dashboard.browser import CDP, CHROMIUM, chromium, streamlit_app

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "artifacts" / "screens"
WIDTHS = [1280, 1024]
PAGES = [(p.slug, p.title) for p in app_pages.PAGES]

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    empty = tmp_path_factory.mktemp("no-data")
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with streamlit_app(log, env={"NERVSEG_DATA": str(empty), "NERVSEG_SAMPLES_URL": "http://127.0.0.1:9/"}) as (url, _):
        yield url
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as cdp:
        yield cdp


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


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_in_headless_chromium(app_url, browser, width):
    from nervseg.data import samples
    from nervseg.models.cards import available

    SCREENS.mkdir(parents=True, exist_ok=True)
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=1000, deviceScaleFactor=1, mobile=False)
    has_models = bool(available())
    sample = next((s for s in samples.bundled() if "vessel" in s.structures), None)
    browser.call("Page.navigate", url=app_url + "/")
    browser.wait_idle()
    reports = {}
    for slug, _title in PAGES:
        if slug == "segment" and has_models and sample is not None:
            assert browser.click_text("button", f"Open {sample.stem}"), "no gallery button on Home"
        else:
            link = (f"[data-testid=stSidebarNavLink][href$='/{slug}']" if slug != "home"
                    else "[data-testid=stSidebarNavLink]")
            present = browser.js(f"(() => {{const a = document.querySelector(\"{link}\"); if (a) a.click(); return !!a;}})()")
            if not present:
                assert slug == "cine", f"no sidebar link to {slug}"
                continue
        browser.wait_idle()
        if slug == "segment" and has_models and sample is not None:
            browser.wait_for("document.querySelectorAll('.js-plotly-plot').length > 0", 60)
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
