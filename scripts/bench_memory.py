"""Benchmark (not a test): server RSS across many distinct large uploads on the Segment page.

    python scripts/bench_memory.py [--n 50] [--side 3000] [--sessions 1] [--model kaggle-bp-unet] [--cache-mb 512]

`sessions` Streamlit AppTest sessions (the app's own code, in this process) receive
`n` distinct side x side scans in turn (round robin: with 10 sessions, 10 users
working side by side, each holding its own current scan); after each, the process RSS and the
bytes held by the prediction cache (`dashboard.common.PREDICTIONS`) are printed. Without a
byte bound every result (full-resolution float probabilities) stayed cached, so RSS
grew by each one's size; with it, RSS levels off near the models + the cache budget.
Lives in scripts/ because nervseg/ never imports streamlit (nervseg.bench is the
library benchmark).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """Resident set size of this process now (Linux /proc), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def scan(i: int, side: int) -> bytes:
    """A distinct, compressible side x side grey PNG (so uploads are small but decode large)."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:side, 0:side]
    arr = ((xx // 16 + yy // 16 + i) % 200 + 30).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--side", type=int, default=3000)
    ap.add_argument("--sessions", type=int, default=1)
    ap.add_argument("--model", default="kaggle-bp-unet")
    ap.add_argument("--cache-mb", type=int, default=None, help="sets NERVSEG_CACHE_MB for this run")
    args = ap.parse_args(argv)
    if args.cache_mb is not None:
        os.environ["NERVSEG_CACHE_MB"] = str(args.cache_mb)
    sys.path.insert(0, str(ROOT))
    from streamlit.testing.v1 import AppTest

    from dashboard import common as ac

    apps = []
    for _ in range(args.sessions):
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600)
        at.session_state["model_id"] = args.model
        at.run()
        at.switch_page("views/segment.py").run()
        apps.append(at)
    start = rss_mb()
    print(f"after start-up: RSS {start:.0f} MB; cache budget {ac.PREDICTIONS.max_bytes / 2**20:.0f} MB")
    print("upload  session  RSS_MB  cache_MB  seconds")
    peak = start
    for i in range(args.n):
        t0 = time.perf_counter()
        at = apps[i % len(apps)]
        at.file_uploader[0].set_value((f"scan{i:03d}.png", scan(i, args.side), "image/png")).run()
        if at.exception or at.error:
            print("page error:", [e.message for e in at.exception] + [e.value for e in at.error])
            return 1
        now = rss_mb()
        peak = max(peak, now)
        print(f"{i + 1:6d}  {i % len(apps):7d}  {now:6.0f}  {ac.PREDICTIONS.nbytes / 2**20:8.0f}  {time.perf_counter() - t0:7.2f}", flush=True)
    print(f"peak RSS {peak:.0f} MB, {peak - start:.0f} MB above start-up, over {args.n} uploads of "
          f"{args.side}x{args.side} in {len(apps)} session(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
