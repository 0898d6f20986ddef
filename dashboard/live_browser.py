"""The Live page in headless Chromium with a fake camera (Playwright over Debian's chromium).

Shared by the browser test (tests/test_live_browser.py) and the benchmark (scripts/live_bench.py):
start the app as `make app` does (dashboard.serve) on a free loopback port, start Chromium with a
y4m file as its camera, open Live, press Start, then read what the page shows. For timing, the
frames carry their index as a binary stamp (nervseg.live.synthetic); a script in the page notes
when each index appears on the local camera track and when on the overlaid video it gets back.
"""

from __future__ import annotations

import contextlib
import string
import time
from pathlib import Path

from dashboard.browser import CHROMIUM, free_port, streamlit_app  # noqa: F401  (the one app launcher)
from nervseg.live import synthetic

served_app = streamlit_app  # the app as `make app` starts it, on a free loopback port

ROOT = Path(__file__).resolve().parent.parent

# Runs in every frame, the component's iframe included: notes when each stamped index is presented,
# on a hidden copy of the camera track (captured as the page adds it to the peer connection) and on
# the video the server sends back.
TIMING_JS = string.Template("""
(() => {
  if (window.__nervsegLive) return;
  const BITS = $bits, CELL = $cell, X0 = $x0, Y0 = $y0, W = $w, H = $h;
  const st = {localT: new Map(), shown: [], local: null, shownVideo: null};
  window.__nervsegLive = st;
  const cv = document.createElement('canvas'); cv.width = X0 + BITS * CELL; cv.height = Y0 + CELL;
  const cx = cv.getContext('2d', {willReadFrequently: true});
  function read(video) {
    const sx = video.videoWidth / W, sy = video.videoHeight / H;
    cx.drawImage(video, 0, 0, cv.width * sx, cv.height * sy, 0, 0, cv.width, cv.height);
    const d = cx.getImageData(0, 0, cv.width, cv.height).data;
    let v = 0;
    for (let b = 0; b < BITS; b++) {
      const x = X0 + b * CELL + CELL / 2, y = Y0 + CELL / 2;
      if (d[(y * cv.width + x) * 4] > 127) v |= (1 << b);
    }
    return v;
  }
  function watch(video, onFrame) {
    const step = () => {
      try { if (video.videoWidth) onFrame(read(video), performance.now()); } catch (e) {}
      video.requestVideoFrameCallback(step);
    };
    video.requestVideoFrameCallback(step);
  }
  const addTrack = RTCPeerConnection.prototype.addTrack;
  RTCPeerConnection.prototype.addTrack = function (track, ...streams) {
    if (track.kind === 'video' && !st.local) {
      const v = document.createElement('video');
      v.muted = true; v.autoplay = true; v.playsInline = true; v.dataset.nervsegLocal = '1';
      v.srcObject = new MediaStream([track]);
      v.style.cssText = 'position:fixed;left:0;top:0;width:64px;height:48px;opacity:0.01;pointer-events:none';
      document.body.appendChild(v); v.play();
      st.local = v;
      watch(v, (i, t) => st.localT.set(i, t));
    }
    return addTrack.call(this, track, ...streams);
  };
  st.watchShown = (video) => {
    if (st.shownVideo === video) return;
    st.shownVideo = video;
    watch(video, (i, t) => st.shown.push([i, t, st.localT.has(i) ? t - st.localT.get(i) : null]));
  };
})();
""").substitute(bits=synthetic.CODE_BITS, cell=synthetic.CODE_CELL, x0=synthetic.CODE_ORIGIN[0],
               y0=synthetic.CODE_ORIGIN[1], w=synthetic.FRAME_WH[0], h=synthetic.FRAME_WH[1])

# Share of pixels inside the scan's box (not the legend's colour chips) of the shown video that a class
# colour tinted; the camera's frames are grey.
OVERLAY_SHARE_JS = string.Template("""
([video, box]) => {
  const sx = video.videoWidth / $w, sy = video.videoHeight / $h;
  const c = document.createElement('canvas');
  c.width = Math.round(box[2] * sx); c.height = Math.round(box[3] * sy);
  if (!c.width) return -1;
  const x = c.getContext('2d'); x.drawImage(video, box[0] * sx, box[1] * sy, c.width, c.height, 0, 0, c.width, c.height);
  const d = x.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - d[i + 2]) > 60 || Math.abs(d[i + 1] - d[i + 2]) > 60) n++;
  }
  return n / (d.length / 4);
}
""").substitute(w=synthetic.FRAME_WH[0], h=synthetic.FRAME_WH[1])


def make_camera_file(path: Path, n_frames: int = 120, frames_per_scan: int = 60, fps: int = 30) -> Path:
    """A 640x480 y4m fake camera of the bundled scans in a scanner-like frame, each frame stamped with its index."""
    scans = synthetic.bundled_scans()
    if not scans:
        raise FileNotFoundError("no bundled scans in sample_images/")
    frames = synthetic.scan_frames(scans, n_frames, frames_per_scan=frames_per_scan, stamp=True)
    return synthetic.write_y4m(path, frames, fps)


@contextlib.contextmanager
def fake_camera_page(camera: Path, width: int = 1280, height: int = 1000):
    """A Playwright page in headless Debian chromium whose camera plays `camera` (y4m); closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-video-capture={camera}", "--disable-background-networking",
                  "--autoplay-policy=no-user-gesture-required"])
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.add_init_script(TIMING_JS)
            yield context.new_page()
        finally:
            browser.close()


def start_live(page, base_url: str, timeout_s: float = 120.0, size_steps: int = 0, path: str = "live",
               full: bool = False):
    """Open Live (moving the model input size `size_steps` down from the card's; `full`: the fast 8-bit
    model switched off), press Start in the streamlit-webrtc component; returns its frame and shown <video>."""
    page.goto(f"{base_url}/{path}", timeout=timeout_s * 1000)
    iframe = page.wait_for_selector("iframe[title*='streamlit_webrtc']", timeout=timeout_s * 1000)
    changed = False
    if size_steps:
        slider = page.locator("[data-testid=stSlider]", has_text="Model input size").get_by_role("slider")
        for _ in range(size_steps):
            slider.press("ArrowLeft")
        changed = True
    if full:
        toggle = page.get_by_role("checkbox", name="Fast model (8-bit)")
        if toggle.is_checked():
            toggle.click(force=True)
            changed = True
    if changed:
        time.sleep(2)
        page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout_s * 1000)
        iframe = page.wait_for_selector("iframe[title*='streamlit_webrtc']", timeout=timeout_s * 1000)
    frame = iframe.content_frame()
    frame.get_by_role("button", name="Start").click(timeout=timeout_s * 1000)
    video = frame.wait_for_selector("video:not([data-nervseg-local])", timeout=timeout_s * 1000)
    frame.evaluate("(v) => window.__nervsegLive.watchShown(v)", video)
    return frame, video


def overlay_share(frame, video) -> float:
    box = synthetic.IMAGE_BOX
    return float(frame.evaluate(OVERLAY_SHARE_JS, [video, [box.x, box.y, box.w, box.h]]))


def wait_for_overlay(frame, video, timeout_s: float, min_share: float = 0.002) -> float:
    """Poll until the shown video has overlay colour (returns its share; the last share on timeout)."""
    deadline = time.time() + timeout_s
    share = -1.0
    while time.time() < deadline:
        share = overlay_share(frame, video)
        if share >= min_share:
            return share
        time.sleep(0.5)
    return share


def wait_for_frames(frame, timeout_s: float, distinct: int = 3) -> bool:
    """Poll until the shown video has presented `distinct` different stamped frames."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if len({r[0] for r in timings(frame)}) >= distinct:
            return True
        time.sleep(0.5)
    return False


def timings(frame) -> list[tuple[int, float, float | None]]:
    """(index, presented at ms, camera -> shown ms or None) for every frame the shown video presented."""
    return [tuple(r) for r in frame.evaluate("() => window.__nervsegLive.shown")]


def page_metrics(page) -> dict[str, str]:
    """The Live page's readout (st.metric label -> value)."""
    out = {}
    for m in page.query_selector_all("[data-testid=stMetric]"):
        label = m.query_selector("[data-testid=stMetricLabel]")
        value = m.query_selector("[data-testid=stMetricValue]")
        if label and value:
            out[label.inner_text().strip()] = value.inner_text().strip()
    return out
