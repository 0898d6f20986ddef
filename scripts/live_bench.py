"""Live benchmark: overlaid frames per second shown in the browser, and camera -> overlay latency, per model.

    .venv/bin/python scripts/live_bench.py [--models usgra-unet ...] [--size 160] [--seconds 20] [--warmup 10]
                                           [--threads N] [--full] [--no-crop] [--passthrough] [--json FILE]

For each model: the app as `make app` starts it (dashboard.serve) with only that model in its folder (so it
is the Live page's model), Debian's chromium with a 640x480, 30 frames/s fake camera (a y4m of the bundled
usgra-seg scans in a scanner-like frame, each frame's index stamped in a corner; nervseg.live.synthetic),
Live opened (with its 8-bit model where the card has one; `--full` switches it off), Start pressed, the image region proposed from the stream (unless --no-crop), `--warmup` s
left to settle, then `--seconds` s measured:

- shown frames/s: new overlaid frames presented by the page's <video> per second (index changes seen by
  requestVideoFrameCallback);
- latency: for each new frame shown, the time since the same stamped frame was presented on a hidden
  copy of the local camera track in the same page (camera -> server -> model -> overlay -> browser);
  median and 90th percentile;
- the share of the shown video's pixels tinted by the overlay at the end (0 for a model that marks nothing
  on these usgra-seg scans, e.g. the nerve-only kaggle-bp models);
- the page's own readout (model ms, server latency, frames dropped) and the server's RSS at the start and
  end of the window (`--report-every` prints each window of a long run, e.g. --seconds 300 --report-every 60).

`--passthrough` first measures the baseline: the same camera and measurement on a one-widget page whose
callback returns each frame unchanged (what the transport alone allows on this machine).
Lives outside nervseg/ because it drives the Streamlit app.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import live_browser as lb  # noqa: E402
from nervseg.inference import engines  # noqa: E402
from nervseg.models import cards as ncards  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_model_folder(card, folder: Path) -> Path:
    """A models folder holding only `card` (copies of its card, weights and ONNX graph: not links, which
    ONNX Runtime refuses for external weights read from a graph given as bytes, the smaller live sizes)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = card.weights_path()
    for p in {weights, engines.onnx_file(card), engines.int8_file(card), weights.parent / f"{card.id}.json"}:
        if p.exists():
            shutil.copy2(p, folder / p.name)
    return folder


def window(shown: list, t_from: float, t_to: float) -> dict:
    """Figures of the new frames shown between page times t_from and t_to (ms)."""
    new = [r for a, r in itertools.pairwise(shown) if r[0] != a[0] and t_from <= r[1] < t_to]
    lat = sorted(r[2] for r in new if r[2] is not None)
    seconds = (t_to - t_from) / 1000
    return {"shown_fps": round(len(new) / seconds, 2) if seconds > 0 else float("nan"),
            "latency_ms_median": round(statistics.median(lat), 1) if lat else None,
            "latency_ms_p90": round(lat[int(0.9 * (len(lat) - 1))], 1) if lat else None,
            "frames": len(new)}


def size_steps(card, size: int | None) -> int:
    """How many steps down the Live page's size slider `size` is from the card's own (0: the card's)."""
    from nervseg.live.processor import live_sizes

    sizes = live_sizes(card.input_size)
    if size is None or size == sizes[0]:
        return 0
    if size not in sizes:
        raise SystemExit(f"{card.id}: live sizes are {sizes}, not {size}")
    return sizes.index(size)


def live_engine(card, full: bool) -> str:
    """The engine Live runs the card on: its 8-bit graph unless `full` or the card has none."""
    return "onnx" if full or engines.problem("onnx-int8", card) else "onnx-int8"


def bench_model(card, camera: Path, args, work: Path) -> dict:
    models = one_model_folder(card, work / card.id)
    env = {"NERVSEG_MODELS": str(models)} | ({"NERVSEG_THREADS": str(args.threads)} if args.threads else {})
    with lb.served_app(work / f"{card.id}.log", env=env) as (url, proc):
        with lb.fake_camera_page(camera) as page:
            frame, video = lb.start_live(page, url, size_steps=size_steps(card, args.size), full=args.full)
            if not lb.wait_for_frames(frame, 180):
                return {"model": card.id, "error": "no frames shown within 180 s"}
            if not args.no_crop:
                time.sleep(2)
                page.get_by_role("button", name="Propose from the stream").click(timeout=120_000)
                time.sleep(2)
            time.sleep(args.warmup)
            now = lambda: frame.evaluate("() => performance.now()")  # noqa: E731
            t0, rss0 = now(), rss_mb(proc.pid)
            windows = []
            step = args.report_every or args.seconds
            for k in range(int(args.seconds // step)):
                time.sleep(step)
                t1 = now()
                w = window(lb.timings(frame), t1 - step * 1000, t1)
                w["rss_mb"] = round(rss_mb(proc.pid), 1)
                w["readout"] = lb.page_metrics(page)
                windows.append(w)
                if args.report_every:
                    print(f"  {card.id} {(k + 1) * step:.0f} s: {w}", flush=True)
            t1 = now()
            size = args.size if size_steps(card, args.size) else list(card.input_size)
            out = {"model": card.id, "input_size": size, "engine": live_engine(card, args.full),
                   **window(lb.timings(frame), t0, t1),
                   "overlay_share": round(lb.overlay_share(frame, video), 4),
                   "rss_mb_start": round(rss0, 1), "rss_mb_end": round(rss_mb(proc.pid), 1),
                   "readout": lb.page_metrics(page)}
            if len(windows) > 1:
                out["windows"] = windows
            return out


PASSTHROUGH_APP = """
import streamlit as st
from streamlit_webrtc import webrtc_streamer

from nervseg.live.stream import MEDIA_CONSTRAINTS, OFFLINE_RTC_CONFIGURATION

webrtc_streamer(key="live", rtc_configuration=OFFLINE_RTC_CONFIGURATION, media_stream_constraints=MEDIA_CONSTRAINTS,
                video_frame_callback=lambda frame: frame, translations={"start": "Start", "stop": "Stop"})
"""


def bench_passthrough(camera: Path, args, work: Path) -> dict:
    """The baseline: a one-widget page whose callback returns each frame unchanged, on the same harness."""
    app = work / "passthrough" / "live.py"
    app.parent.mkdir(parents=True, exist_ok=True)
    (app.parent / "app.py").write_text("import streamlit as st\nst.navigation([st.Page('live.py')]).run()\n")
    app.write_text(PASSTHROUGH_APP)
    port = lb.free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(work / "passthrough.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app.parent / "app.py"),
                                 "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port)],
                                cwd=app.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(8)
            with lb.fake_camera_page(camera) as page:
                frame, _ = lb.start_live(page, f"http://127.0.0.1:{port}", path="")
                if not lb.wait_for_frames(frame, 180):
                    return {"model": "pass-through", "error": "no frames shown within 180 s"}
                time.sleep(args.warmup)
                t0 = frame.evaluate("() => performance.now()")
                time.sleep(args.seconds)
                t1 = frame.evaluate("() => performance.now()")
                return {"model": "pass-through", **window(lb.timings(frame), t0, t1)}
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", help="model ids (default: every shipped model)")
    ap.add_argument("--size", type=int, help="the model's input size on Live (default: the card's own)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--report-every", type=float, default=0.0, help="print a window's figures every N s")
    ap.add_argument("--threads", type=int, default=0,
                    help="NERVSEG_THREADS for the app (default: the app's own choice, every core up to 8)")
    ap.add_argument("--full", action="store_true", help="the full-precision model (Live's 8-bit model switched off)")
    ap.add_argument("--no-crop", action="store_true", help="segment the whole frame, not the proposed image region")
    ap.add_argument("--passthrough", action="store_true", help="also the baseline: a callback returning each frame")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cards = ncards.available()
    if args.models:
        cards = [c for c in cards if c.id in args.models]
    with tempfile.TemporaryDirectory(prefix="nervseg-live-bench-") as tmp:
        work = Path(tmp)
        camera = lb.make_camera_file(work / "camera.y4m", n_frames=150, frames_per_scan=75)
        results = []
        if args.passthrough:
            r = bench_passthrough(camera, args, work)
            print(json.dumps(r), flush=True)
            results.append(r)
        for card in cards:
            r = bench_model(card, camera, args, work)
            print(json.dumps(r), flush=True)
            results.append(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
