"""The real app in Debian's headless Chromium (Playwright): every page renders, fits, shows its answer first, stays offline.

Starts the app as `make app` does (dashboard.browser.streamlit_app) on a free loopback port (no data folder:
a newcomer's laptop), opens a bundled sample from the Home gallery, moves between pages with the sidebar
links (one session, so the scan carries over), waits until the script has finished (stApp's
data-test-script-state) and, at 1280x800 and 1024x768, fails when:
- a request leaves 127.0.0.1 (every request of the page is recorded: icons, fonts, favicon);
- the page, a table (columns cut off: the grid scrolls sideways) or an image/chart overflows its container;
- any text is cut short (an ellipsis, or text wider than the box that clips it), on every page;
- on Segment, Compare and the Lab, the image does not start in the first screen, or the answer (presence and
  Dice on Segment, each model's Dice on Compare) ends below it, or the Lab's sliders are not beside its images.
Saves a screenshot per page and size, and the measured positions, to artifacts/screens/ (git-ignored).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dashboard import pages as app_pages
from dashboard.browser import CHROMIUM, act, go, is_local, streamlit_app, wait_idle

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "artifacts" / "screens"
SIZES = [(1280, 800), (1024, 768)]
PAGES = [(p.slug, p.title) for p in app_pages.PAGES]
# What must be in the first screen, per page: (the image, the answer beside it); None = not checked.
FIRST_SCREEN = {
    "segment": (".st-key-seg_figure", ".st-key-seg_answer"),
    "compare": ("[class*=st-key-cmp_fig_]", "[class*=st-key-cmp_answer_]"),
    "lab": (".st-key-lab_images [data-testid=stImage] img", ".st-key-lab_controls"),
}

pytest.importorskip("playwright", reason="playwright not installed (pip install -r requirements.txt)")
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
def browser():
    from dashboard.browser import chromium

    with chromium() as b:
        yield b


REPORT_JS = """(first) => {
  for (const e of document.querySelectorAll('*')) if (e.scrollTop > 0) e.scrollTop = 0;  // the first screen
  const main = document.querySelector('[data-testid=stMain]');
  const name = (e) => (e.closest('[data-testid=stElementContainer]') || e).innerText.slice(0, 60);
  const over = (inner, outer) => inner.getBoundingClientRect().right - outer.getBoundingClientRect().right;
  const shown = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
  const tables = [...document.querySelectorAll('[data-testid=stDataFrame]')].map(t => {
    const sc = t.querySelector('.dvn-scroller');
    return {clipped: sc ? sc.scrollWidth - sc.clientWidth : 0, overflow: over(t, main), head: name(t),
            sizes: sc ? [sc.scrollWidth, sc.clientWidth, sc.offsetWidth, t.clientWidth] : []};
  });
  const visuals = [...document.querySelectorAll('[data-testid=stImage] img, .js-plotly-plot, video')].map(v => {
    const box = v.closest('[data-testid=stVerticalBlock]') || main;
    return {overflow: Math.max(over(v, box), over(v, main)), width: v.getBoundingClientRect().width, kind: v.tagName};
  });
  // Text cut short: a text node laid out beyond the box of its nearest ancestor that clips (ellipsis, hidden or
  // clipped overflow): measured with a Range, which spans the whole text even where only part is painted.
  // Text a scroll container holds is reachable, not cut. Chart and grid internals, tooltips, folded expanders and
  // screen-reader-only labels (a 1 px clip) are not checked here.
  const clipper = (e) => {
    for (let a = e; a && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if ([s.overflowX, s.overflowY].some(o => o === 'auto' || o === 'scroll')) return null;
      if (s.textOverflow === 'ellipsis' || ['hidden', 'clip'].includes(s.overflowX)) return a;
    }
    return null;
  };
  const truncated = [];
  for (const root of document.querySelectorAll('[data-testid=stMain], [data-testid=stSidebar]')) {
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let t = walk.nextNode(); t; t = walk.nextNode()) {
      const e = t.parentElement;
      if (!t.textContent.trim() || !shown(e)
          || e.closest('.js-plotly-plot, [data-testid=stDataFrame], [data-baseweb=popover], [role=tooltip], details:not([open])')) continue;
      const c = clipper(e);
      if (!c || c.clientWidth <= 2) continue;
      const range = document.createRange(); range.selectNodeContents(t);
      const r = range.getBoundingClientRect(), b = c.getBoundingClientRect();
      const left = b.left + c.clientLeft, right = left + c.clientWidth;
      const top = b.top + c.clientTop, bottom = top + c.clientHeight;
      const clipsY = ['hidden', 'clip'].includes(getComputedStyle(c).overflowY);
      if (r.width > 0 && (r.right > right + 1 || r.left < left - 1 || (clipsY && r.bottom > bottom + 1)))
        truncated.push({text: t.textContent.trim().slice(0, 80), text_box: [r.left, r.right, r.bottom].map(Math.round),
                        clip_box: [left, right, bottom].map(Math.round)});
    }
  }
  const box = (sel) => [...document.querySelectorAll(sel)].filter(shown).map(e => {
    const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};});
  return {
    exceptions: [...document.querySelectorAll('[data-testid=stException]')].map(e => e.innerText.slice(0, 300)),
    errors: [...document.querySelectorAll('[data-testid=stAlertContentError]')].map(e => e.innerText.slice(0, 300)),
    title: (document.querySelector('h1') || {}).innerText || '',
    sidebar: (document.querySelector('[data-testid=stSidebar]') || {}).innerText || '',
    overflow: main ? main.scrollWidth - main.clientWidth : -1,
    main_width: main ? main.clientWidth : 0,
    tables, visuals, truncated,
    images: document.querySelectorAll('[data-testid=stImage] img, [data-testid=stFullScreenFrame] img').length,
    charts: document.querySelectorAll('.js-plotly-plot').length,
    first: first ? {image: box(first[0]), answer: box(first[1])} : null,
  };
}"""


def _check(slug: str, size: tuple[int, int], report: dict) -> None:
    width, height = size
    where = f"{slug} at {width}x{height}"
    assert not report["exceptions"], f"{where}: exception box: {report['exceptions']}"
    assert report["title"], f"{where}: page has no title"
    assert "not a medical device" in report["sidebar"], f"{where}: sidebar missing"
    assert report["overflow"] <= 0, f"{where}: {report['overflow']} px horizontal overflow"
    for t in report["tables"]:
        assert t["clipped"] <= 1, f"{where}: table columns cut off ({t['clipped']} px hidden): {t['head']!r} {t['sizes']}"
        assert t["overflow"] <= 1, f"{where}: table wider than the page by {t['overflow']} px: {t['head']!r}"
    for v in report["visuals"]:
        assert v["overflow"] <= 1, f"{where}: {v['kind']} overflows its container by {v['overflow']} px"
    assert not report["truncated"], f"{where}: text cut short: {report['truncated']}"


def _check_first_screen(slug: str, size: tuple[int, int], first: dict) -> None:
    """The image starts in the upper part of the first screen and the answer ends inside it."""
    width, height = size
    where = f"{slug} at {width}x{height}"
    assert first["image"], f"{where}: no image"
    assert first["answer"], f"{where}: no answer"
    top = min(b["top"] for b in first["image"])
    assert top < 0.6 * height, f"{where}: the image starts at y={top:.0f}, below 60% of the first screen"
    if slug == "lab":  # the sliders beside the images they change, level with them
        controls, images = first["answer"][0], first["image"]
        assert controls["top"] < height * 0.6, f"{where}: the sliders start at y={controls['top']:.0f}"
        assert controls["right"] <= min(b["left"] for b in images) + 1, f"{where}: sliders not beside the images"
    else:
        bottom = max(b["bottom"] for b in first["answer"])
        assert bottom <= height, f"{where}: the answer ends at y={bottom:.0f}, below the first screen ({height})"
    if slug == "compare":  # the group's models side by side, one row
        tops = {round(b["top"]) for b in first["image"]}
        assert len(first["image"]) >= 2 and max(tops) - min(tops) <= 2, f"{where}: panels not in one row: {first}"


@pytest.mark.parametrize("slug", ["segment", "cine"])
def test_a_page_opened_by_its_url_keeps_the_apps_sidebar(app_url, browser, slug):
    """A bookmark or a reload of /segment runs the app (navigation + the model picker), not the page file
    alone with a list of file names (Streamlit's pages/ folder convention, which the page folder avoids)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(f"{app_url}/{slug}")
        wait_idle(page)
        side = page.locator("[data-testid=stSidebar]").inner_text()
        assert "Architecture" in side and "Segment" in side and "streamlit app" not in side, side[:300]
    finally:
        page.close()


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_page_in_headless_chromium(app_url, browser, size):
    from nervseg.data import samples
    from nervseg.models.cards import available

    SCREENS.mkdir(parents=True, exist_ok=True)
    width, height = size
    has_models = bool(available())
    sample = next((s for s in samples.bundled() if "vessel" in s.structures), None)
    context = browser.new_context(viewport={"width": width, "height": height})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    page.goto(app_url + "/")
    wait_idle(page)
    reports = {}
    try:
        for slug, _title in PAGES:
            opened = slug == "segment" and has_models and sample is not None
            if opened:
                act(page, lambda: page.get_by_role("button", name=f"Open {sample.stem}").click())
                page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            elif slug == "cine" and not page.locator("[data-testid=stSidebarNavLink][href$='/cine']").count():
                continue
            else:
                go(page, slug)
            time.sleep(1.5)  # let images and charts paint
            first = FIRST_SCREEN.get(slug) if has_models and sample is not None else None
            report = page.evaluate(REPORT_JS, list(first) if first else None)
            page.screenshot(path=str(SCREENS / f"{slug}-{width}x{height}.png"))
            reports[slug] = report
            _check(slug, size, report)
            if first:
                _check_first_screen(slug, size, report["first"])
    finally:
        (SCREENS / f"report-{width}x{height}.json").write_text(json.dumps(reports, indent=2))
        context.close()
    if has_models and sample is not None:
        seg = reports["segment"]
        assert seg["charts"] >= 1 and not seg["errors"], seg
        assert reports["home"]["images"] >= len(samples.bundled()), "the gallery shows no thumbnails"
    outside = sorted({u for u in requests if not is_local(u)})
    assert not outside, f"requests left this machine: {outside}"
    assert any(u.startswith(app_url) for u in requests), "no request recorded at all"


def test_cine_with_a_clip_cuts_no_text(browser, tmp_path):
    """Cine's figures, labels and buttons once a sample clip is processed (shared data), at both sizes."""
    import nervseg
    from nervseg.cine import boxes

    clips = boxes.sample_clips()
    if not clips:
        pytest.skip(f"no sample clips under {nervseg.data_root()}")
    SCREENS.mkdir(parents=True, exist_ok=True)
    with streamlit_app(tmp_path / "streamlit.log") as (url, _):
        page = browser.new_page(viewport={"width": SIZES[0][0], "height": SIZES[0][1]})
        try:
            page.goto(url + "/")
            wait_idle(page)
            go(page, "cine")
            page.locator(".st-key-cine_sample input").click()
            page.keyboard.type(clips[0].name)
            act(page, lambda: page.keyboard.press("Enter"))
            button = page.get_by_role("button", name="Process clip")
            if button.count():
                act(page, button.click, timeout=600)
            page.wait_for_selector("[data-testid=stVideo], video", timeout=60_000)
            for width, height in SIZES:
                page.set_viewport_size({"width": width, "height": height})
                time.sleep(1.5)
                report = page.evaluate(REPORT_JS, None)
                page.screenshot(path=str(SCREENS / f"cine-clip-{width}x{height}.png"))
                _check("cine (with a clip)", (width, height), report)
        finally:
            page.close()
        assert "Traceback" not in (tmp_path / "streamlit.log").read_text()
