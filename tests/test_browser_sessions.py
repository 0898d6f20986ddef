"""Ten browser sessions at once on one server: each keeps the model it chose and gets that model's Dice.

Issue 26: with 10 sessions, 1 to 4 ended with DenseNet selected in the sidebar without a click (the
Architecture radio was sent only its default index after the first run, and the browser sent "DenseNet"
back), and Segment showed DenseNet's result. Here 10 Playwright sessions (one Debian chromium, one context
each, driven concurrently with the async API) against one app started as `make app` does each choose a
model in the sidebar (every group and architecture, the default one too), open a bundled sample from
Home's gallery on Segment, go Home and back to Segment; then every session's sidebar must show the model
it chose and Segment's Dice must be that model's Dice on that sample, computed here with the same
library path (nervseg.inference.pool, the card's own preprocessing, the model's decision mask).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import pytest

from dashboard.browser import CHROMIUM, act_async, launch_options, nav_link, streamlit_app, wait_idle_async

SESSIONS = 10
TIMEOUT_S = 420  # per wait: ten sessions share a 2-core machine

pytest.importorskip("playwright", reason="playwright not installed (pip install -r requirements.txt)")
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")]


@dataclass(frozen=True)
class Flow:
    """What one session does and must end with."""

    group: str  # the sidebar's group label
    arch: str  # the Architecture radio's label
    stem: str  # the bundled sample opened on Segment
    dice: dict[str, str]  # structure -> Dice as Segment shows it ("0.688")


def _flows() -> list[Flow]:
    """Session i takes card i (cycled; sorted by id, so every group and architecture, the default too) and
    bundled sample i // 2 (two models on each sample, so the Dice tells them apart), with that model's Dice."""
    from dashboard.common import fmt
    from nervseg import metrics
    from nervseg.data import samples
    from nervseg.inference import pool
    from nervseg.io.readers import load_image_data, load_mask
    from nervseg.models import provenance
    from nervseg.models.cards import available

    cards = sorted(available(), key=lambda c: c.id)
    shown = samples.bundled()
    if not cards or not shown:
        pytest.skip("needs the shipped models and the bundled samples")
    flows = []
    for i in range(SESSIONS):
        card, s = cards[i % len(cards)], shown[i // 2 % len(shown)]
        image = load_image_data(s.image.read_bytes(), s.image.name).image
        truth = load_mask(s.mask.read_bytes(), s.mask.name)
        pred = pool.get(card).predict(image, None)
        dice = {name: fmt(metrics.score(pred.mask, truth, cid)["dice"]) for cid, name in enumerate(card.classes) if cid}
        flows.append(Flow(provenance.group_label(card), card.arch_display, s.stem, dice))
    return flows


SIDEBAR_JS = """() => [...document.querySelectorAll('[data-testid=stSidebar] [role=radiogroup] input:checked')]
  .map(i => (i.closest('label') || i.parentElement).innerText.trim())"""


async def _session(browser, url: str, flow: Flow, index: int) -> dict:
    """One user's flow; returns what the page showed at the end."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_S * 1000)
    page = await context.new_page()
    try:
        await page.goto(url + "/")
        sidebar = page.locator("[data-testid=stSidebar]")
        await sidebar.locator("[role=radiogroup]").first.wait_for()
        await wait_idle_async(page, TIMEOUT_S)
        await act_async(page, sidebar.get_by_text(flow.group, exact=True).click(), TIMEOUT_S)
        await act_async(page, sidebar.get_by_text(flow.arch, exact=True).click(), TIMEOUT_S)
        await act_async(page, page.get_by_role("button", name=f"Open {flow.stem}").click(), TIMEOUT_S)
        for slug in ("home", "segment"):  # reruns of the whole script after the choice
            await act_async(page, page.locator(nav_link(slug)).first.click(), TIMEOUT_S)
        await page.wait_for_selector(".st-key-seg_answer")
        return {"index": index, "sidebar": await page.evaluate(SIDEBAR_JS),
                "answer": await page.locator(".st-key-seg_answer").inner_text()}
    finally:
        await context.close()


async def _all_sessions(url: str, flows: list[Flow]) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**launch_options())
        try:
            return await asyncio.gather(*(_session(browser, url, f, i) for i, f in enumerate(flows)))
        finally:
            await browser.close()


def shown_dice(answer: str) -> dict[str, str]:
    """{'nerve': '0.688', ...} from Segment's answer text ('nerve Dice 0.688 · vessel Dice 0.440 (against …)')."""
    return dict(re.findall(r"(\w+) Dice (\d\.\d{3}|—)", answer))


def test_shown_dice_reads_the_answer_line():
    assert shown_dice("found\nnerve Dice 0.688 · vessel Dice 0.440 (against 0020.png)") == {
        "nerve": "0.688", "vessel": "0.440"}
    assert shown_dice("nerve Dice — (against x.png)") == {"nerve": "—"}


def test_ten_concurrent_sessions_each_keep_their_model_and_its_dice(tmp_path):
    flows = _flows()
    # the check can tell the models apart: two sessions' models give different Dice on the same sample
    by_stem: dict[str, set] = {}
    for f in flows:
        by_stem.setdefault(f.stem, set()).add(tuple(sorted(f.dice.items())))
    assert any(len(v) > 1 for v in by_stem.values()), "every model gives the same Dice: the check proves nothing"
    assert len({(f.group, f.arch) for f in flows}) >= 4, "too few distinct models chosen"

    log = tmp_path / "streamlit.log"
    with streamlit_app(log, env={"NERVSEG_DATA": str(tmp_path / "no-data")}) as (url, _):
        results = asyncio.run(_all_sessions(url, flows))
    wrong = []
    for r in results:
        f = flows[r["index"]]
        if r["sidebar"] != [f.group, f.arch]:
            wrong.append(f"session {r['index']}: chose {f.group} / {f.arch}, sidebar shows {r['sidebar']}")
        if shown_dice(r["answer"]) != f.dice:
            wrong.append(f"session {r['index']}: {f.arch} on {f.stem} gives Dice {f.dice}, Segment shows "
                         f"{shown_dice(r['answer'])} ({r['answer'][:160]!r})")
    assert not wrong, "\n".join(wrong)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
