"""Page benchmark: AppTest script time of the interactions a demo is judged by, per engine.

    .venv/bin/python scripts/page_bench.py [--engines onnx torch] [--repeats 5] [--threads 1]

Each engine runs in its own process ($NERVSEG_ENGINE), so models load fresh. Times are the
AppTest `run()` wall time (script run, no browser): Home's first run (the opening model loaded
and run on a bundled sample: Home's opening result), the first upload on Segment (the model
already loaded), a threshold change (cached prediction), a new scan on Segment, a Lab slider
change (a new what-if prediction), Compare of three models on a new scan and on a cached one
(an opacity change). Needs ../shared/data (usgra-seg) and the shipped usgra models.
Lives outside nervseg/ because nervseg never imports streamlit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return round((time.perf_counter() - t) * 1000, 1)


def measure(repeats: int) -> dict:
    """All interactions in this process (one engine, from $NERVSEG_ENGINE)."""
    sys.path.insert(0, str(ROOT))
    from streamlit.testing.v1 import AppTest

    import nervseg

    scans = sorted((nervseg.data_root() / "usgra-seg" / "images").glob("*.png"))[: 2 * repeats + 2]
    upload = lambda at, p, i=0: at.file_uploader[i].set_value((p.name, p.read_bytes(), "image/png")).run()  # noqa: E731
    out: dict = {}
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600)
    at.session_state["model_id"] = "usgra-unet"
    out["home first run (model load and its opening result) ms"] = _timed(at.run)
    at.switch_page("views/segment.py").run()
    out["segment first upload (model loaded by Home) ms"] = _timed(lambda: upload(at, scans[0]))
    out["segment threshold change ms"] = [_timed(lambda v=v: at.slider(key="seg_threshold").set_value(v).run())
                                          for v in (0.3, 0.6, 0.4, 0.7, 0.5)[:repeats]]
    out["segment new scan ms"] = [_timed(lambda p=p: upload(at, p)) for p in scans[1 : 1 + repeats]]
    at.switch_page("views/lab.py").run()
    lab = sorted((s for s in at.slider if str(s.key).startswith("lab_")), key=lambda s: s.key != "lab_clahe_clip")
    if lab:  # CLAHE when there is one: non-local means is slow by itself, not by the engine
        s = lab[0]
        values = [s.min + (s.max - s.min) * f for f in (0.2, 0.4, 0.6, 0.8, 0.3)[:repeats]]
        out[f"lab slider ({s.key}) ms"] = [_timed(lambda v=v: at.slider(key=s.key).set_value(
            type(s.value)(v)).run()) for v in values]
    at.switch_page("views/compare.py").run()
    out["compare three models, new scan ms"] = [_timed(lambda p=p: upload(at, p))
                                                for p in scans[1 + repeats : 1 + 2 * repeats]]
    out["compare three models, cached (opacity) ms"] = [
        _timed(lambda v=v: at.slider(key="cmp_opacity").set_value(v).run()) for v in (0.3, 0.6, 0.4, 0.7, 0.5)[:repeats]]
    out["exceptions"] = [e.message for e in at.exception]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from nervseg.inference.engines import ENGINES  # the registry (importing it loads neither engine)

    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="$NERVSEG_THREADS for the app (0: its default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.repeats)))
        return
    results = {}
    for engine in args.engines:
        env = dict(os.environ, NERVSEG_ENGINE=engine)
        if args.threads:
            env["NERVSEG_THREADS"] = str(args.threads)
        proc = subprocess.run([sys.executable, __file__, "--worker", "--repeats", str(args.repeats)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{engine}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results[engine] = res
        print(f"\n{engine} (load average {os.getloadavg()[0]:.1f}):")
        for k, v in res.items():
            shown = f"median {statistics.median(v):.0f} (all {v})" if isinstance(v, list) and v and k != "exceptions" else v
            print(f"  {k}: {shown}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
