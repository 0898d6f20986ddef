"""Live end to end in headless Chromium: a fake camera playing real scans, Start, overlay colour on the video shown.

The camera is a y4m file made at test time from the bundled usgra-seg scans (nervseg.live.synthetic, grey
frames in a scanner-like interface); the app runs as `make app` starts it (dashboard.serve) with no data
folder and no outside host reachable. The video the page shows must carry class colours, which only the
model's overlay can put there, and must keep changing (frames flow, not one still); Stop and Start again
work; Freeze opens the frame on Segment.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
from dashboard import live_browser as lb  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(lb.CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")]


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    try:
        return lb.make_camera_file(tmp_path_factory.mktemp("camera") / "scans.y4m", n_frames=60, frames_per_scan=30)
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    empty = tmp_path_factory.mktemp("no-data")
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = {"NERVSEG_DATA": str(empty), "NERVSEG_SAMPLES_URL": "http://127.0.0.1:9/", "NERVSEG_THREADS": "1"}
    with lb.served_app(log, env=env) as (url, _):
        yield url
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


def test_start_shows_the_overlay_on_the_camera_video(camera, app_url):
    with lb.fake_camera_page(camera) as page:
        frame, video = lb.start_live(page, app_url)
        share = lb.wait_for_overlay(frame, video, timeout_s=120)
        assert share >= 0.002, f"no overlay colour on the shown video (share {share:.4f})"
        deadline = time.time() + 60  # generous: the 2 cores are shared with training
        while len(indices := {i for i, _, _ in lb.timings(frame)}) < 3 and time.time() < deadline:
            time.sleep(1)
        assert len(indices) >= 3, f"the shown video does not move: frame indices {sorted(indices)}"
        metrics = lb.page_metrics(page)
        assert "Overlay frames/s" in metrics and "Model ms / frame" in metrics, metrics
        # Stop, then Start again: a new stream with the same session
        frame.get_by_role("button", name="Stop").click()
        frame.get_by_role("button", name="Start").click(timeout=60_000)
        video = frame.wait_for_selector("video:not([data-nervseg-local])", timeout=60_000)
        frame.evaluate("(v) => window.__nervsegLive.watchShown(v)", video)
        assert lb.wait_for_overlay(frame, video, timeout_s=120) >= 0.002, "no overlay after a restart"
        # Freeze: the current frame's region opens on Segment as the current scan
        page.get_by_role("button", name="Freeze: open on Segment").click(timeout=60_000)
        page.wait_for_url("**/segment", timeout=60_000)
        # the frozen frame is Segment's scan: the folded scan chooser is named after it (live-<time>.png)
        page.get_by_text("Scan: live-").first.wait_for(timeout=120_000)


def test_a_clip_played_as_if_live_shows_the_overlay(camera, app_url):
    """No camera at all: the server plays the synthetic clip of the bundled scans, the page shows its overlay."""
    with lb.fake_camera_page(camera) as page:
        page.goto(f"{app_url}/live", timeout=120_000)
        page.wait_for_selector("iframe[title*='streamlit_webrtc']", timeout=120_000)
        page.locator("[data-testid=stSelectbox]", has_text="Source").click()
        page.get_by_role("option", name="synthetic").click()
        time.sleep(2)  # the rerun starts (the clip is written on first use)
        page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=120_000)
        frame = page.wait_for_selector("iframe[title*='streamlit_webrtc']", timeout=120_000).content_frame()
        frame.get_by_role("button", name="Start").click(timeout=120_000)
        video = frame.wait_for_selector("video:not([data-nervseg-local])", timeout=120_000)
        share = lb.wait_for_overlay(frame, video, timeout_s=180)
        assert share >= 0.002, f"no overlay colour on the clip's video (share {share:.4f})"
