"""Benchmark inference speed and memory of each model on this machine, eager torch beside ONNX Runtime.

    python -m nervseg.bench [--models ID ...] [--arch ARCH ...] [--runs 20] [--batch 8] [--rounds 1]
                            [--engines torch onnx] [--threads N] [--json FILE] [--video CLIP]
                            [--pages] [--browser]

For each shipped model (models/*.json), or, while none exist, each architecture with
random weights (labelled "random weights": speed does not depend on the weights'
values, accuracy does), on each engine, on a real frame at its native resolution
(580x420 Kaggle, 512x512 usgra-seg; noise of that size without the data):

- forward: the engine alone on the resized, normalised input (median and p90 over `--runs`);
- predict: `Segmenter.predict` end to end (resize, normalise, forward, full-resolution
  mask, small-component removal); the ratio of ONNX predict to eager torch forward is
  issue 16's target (<= 0.75). Each engine runs in its own process, one after the other:
  torch's idle OpenMP threads, in a process that has run torch, made ONNX Runtime's forward
  2.5x slower here (kaggle-bp-sk-unet 30.7 against 12.1 ms), and the app never loads torch;
- batched throughput: frames per second through `predict_many` with `--batch` (as cine runs);
- peak memory: the peak resident set size (RSS) of a fresh process that loads and runs
  only that model on that engine, and its growth over the same process after its imports.
  tracemalloc cannot see torch's C++ allocations, so RSS is the honest measure; each
  model and engine runs in its own subprocess so one peak does not hide the next;
- parameter count and weights file size.

`--pages` and `--browser` add the app's own timings in the same run (scripts/page_bench.py:
AppTest script time per engine; scripts/browser_bench.py: input event to image on screen in
headless Chromium, quiet and with one core kept busy).

Prints a table and writes JSON (default: artifacts/bench.json).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nervseg import data_root, models_dir

RANDOM_INPUT = (128, 176)  # random-weight stand-ins: the shipped nerve-only models' input size (scripts/train_all.sh)


def engine_names() -> tuple[str, ...]:
    """Every registered inference engine (nervseg.inference.engines), in the registry's order."""
    from nervseg.inference.engines import ENGINES

    return tuple(ENGINES)


def stand_in_task() -> str:
    """The task the random-weight stand-ins are shaped after: the one with fewest classes (nerve only)."""
    from nervseg.data.datasets import TASKS

    return min(TASKS, key=lambda k: len(TASKS[k].classes))


def _rss_mb() -> float:
    """Peak RSS of this process so far, MB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return float("nan")


def _test_image(task: str) -> tuple[np.ndarray, str]:
    """A real frame of the task (its dataset spec's main set) when the data is present, else noise of
    the task's real frame size."""
    from nervseg.data.datasets import TASKS
    from nervseg.io.readers import load_image

    ds = TASKS.get(task) or TASKS[stand_in_task()]
    try:
        pairs = ds.pairs(ds.extra or "main", data_root())  # the extra set when there is one: full-resolution frames
    except Exception:  # noqa: BLE001 - no data folder: fall back to a synthetic frame of the real size
        pairs = []
    for p in pairs[:1]:
        try:
            return load_image(p.image), f"real frame {p.image.name}"
        except Exception:  # noqa: BLE001 - fall back to a synthetic frame of the real size
            pass
    h, w = ds.frame_size
    return np.random.default_rng(0).integers(0, 256, (h, w), dtype=np.uint8), "synthetic noise"


def _random_card(arch: str, directory: Path, size: tuple[int, int] = RANDOM_INPUT):
    """A random-weight card for `arch` in `directory` (never written to models/), shaped as a model of
    `stand_in_task()` would be, with the architecture's training defaults."""
    from nervseg.data.datasets import TASKS
    from nervseg.models.cards import ARCHITECTURES
    from nervseg.models.random_cards import random_card

    task = stand_in_task()
    card = random_card(directory, arch, list(TASKS[task].classes), size=size,
                       smp_kwargs=ARCHITECTURES[arch].default_kwargs, task=task)
    if importlib.util.find_spec("onnx") is not None:  # so ONNX Runtime is measured beside torch
        from nervseg.inference.export import export_card

        export_card(card)
    return card


def _timed_ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def _measure_engines(segs: dict, image: np.ndarray, runs: int, batch: int) -> dict:
    """Forward (the engine alone on the prepared input) and predict (end to end), interleaved across
    the engines given (the command line gives one per process); then batched throughput."""
    x = {e: s._batch([image], s.train_preprocess) for e, s in segs.items()}
    for _ in range(3):  # warm-up: first calls allocate buffers and pick kernels
        for e, s in segs.items():
            s.engine(x[e])
            s.predict(image)
    fwd = {e: [] for e in segs}
    pred = {e: [] for e in segs}
    for _ in range(runs):
        for e, s in segs.items():
            fwd[e].append(_timed_ms(lambda s=s, e=e: s.engine(x[e])))
            pred[e].append(_timed_ms(lambda s=s: s.predict(image)))
    out = {}
    images = [image] * batch
    for e, s in segs.items():
        s.predict_many(images, batch_size=batch)  # warm-up at batch size
        reps = max(3, runs // 4)
        t = time.perf_counter()
        for _ in range(reps):
            s.predict_many(images, batch_size=batch)
        out.update({
            f"{e}_forward_ms_median": round(float(np.median(fwd[e])), 1),
            f"{e}_forward_ms_p90": round(float(np.percentile(fwd[e], 90)), 1),
            f"{e}_predict_ms_median": round(float(np.median(pred[e])), 1),
            f"{e}_predict_ms_p90": round(float(np.percentile(pred[e], 90)), 1),
            f"{e}_fps_batched": round(reps * batch / (time.perf_counter() - t), 2),
        })
    return out


def bench_one(model_id: str, directory: Path, runs: int, batch: int, video: str | None,
              video_frames: int | None, random_weights: bool, threads: int = 0,
              engines: tuple[str, ...] | None = None) -> dict:
    """Measure one model on each engine (default: every registered one) in this process (run it in a
    fresh process for a clean peak RSS).

    An engine the card cannot use (no ONNX graph, no onnxruntime) is reported, not measured.
    """
    from nervseg.inference.engines import problem
    from nervseg.inference.segmenter import configure_threads, load
    from nervseg.models.cards import get_card

    used_threads = configure_threads(threads or None)
    base_peak, base_now = _rss_mb(), _current_rss_mb()
    card = get_card(model_id, directory)
    segs, load_s, skipped = {}, {}, {}
    for e in engines or engine_names():
        why = problem(e, card)
        if why:
            skipped[e] = why
            continue
        t0 = time.perf_counter()
        segs[e] = load(model_id, models_dir=directory, engine=e)
        load_s[e] = round(time.perf_counter() - t0, 3)
    image, source = _test_image(card.task)
    out = {
        "model": model_id, "architecture": card.architecture,
        "weights": "random weights" if random_weights else "trained", "task": card.task,
        "input_size": list(card.input_size), "image_size": [int(image.shape[0]), int(image.shape[1])],
        "image_source": source, "threads": used_threads, "engines": list(segs), "engines_skipped": skipped,
        "parameters": card.parameters, "weights_mb": round(card.weights_path().stat().st_size / 1e6, 2),
        "runs": runs, "batch": batch, **{f"{e}_load_seconds": v for e, v in load_s.items()},
        **_measure_engines(segs, image, runs, batch),
    }
    _add_ratio(out)
    out.update({"rss_peak_mb": round(_rss_mb(), 0), "rss_after_import_mb": round(base_now, 0),
                "rss_growth_mb": round(_rss_mb() - max(base_peak, base_now), 0)})
    if video and segs:
        kwargs = {"max_frames": video_frames} if video_frames else {}
        out["video"] = {e: benchmark_clip(s, video, batch, **kwargs) for e, s in segs.items()}
    return out


def _add_ratio(out: dict) -> None:
    """Issue 16's target, ONNX predict / eager torch forward (<= 0.75), when both engines were measured."""
    if "torch" in out["engines"] and "onnx" in out["engines"]:
        out["onnx_predict_over_torch_forward"] = round(
            out["onnx_predict_ms_median"] / out["torch_forward_ms_median"], 3)


def _run_worker(spec: dict) -> dict:
    """Run bench_one in a fresh Python process and return its JSON result."""
    cmd = [sys.executable, "-m", "nervseg.bench", "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": spec["model_id"], "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


PER_ENGINE = ("rss_peak_mb", "rss_after_import_mb", "rss_growth_mb")


def _engine_of(part: dict) -> str:
    return (part["engines"] or list(part["engines_skipped"]) or ["?"])[0]


def _combine_rounds(parts: list[dict], engine: str) -> dict:
    """One engine's figures over its rounds: the median of each, and each round's medians beside it."""
    out = {k: v for k, v in parts[0].items() if k.startswith(f"{engine}_")}
    out.update({f"{engine}_{k}": parts[0][k] for k in PER_ENGINE if k in parts[0]})
    if len(parts) > 1:
        for k, v in list(out.items()):
            vals = [p.get(k, p.get(k.removeprefix(f"{engine}_"))) for p in parts]
            if isinstance(v, int | float) and all(isinstance(x, int | float) for x in vals):
                out[k] = round(float(np.median(vals)), 2)
        out[f"{engine}_rounds"] = [{"forward_ms_median": p.get(f"{engine}_forward_ms_median"),
                                    "predict_ms_median": p.get(f"{engine}_predict_ms_median"),
                                    "fps_batched": p.get(f"{engine}_fps_batched")} for p in parts]
    videos = [p["video"][engine] for p in parts if engine in p.get("video", {})]
    if videos:
        video = dict(videos[0])
        for label in ("batched", "unbatched"):
            fps = [v[label]["fps"] for v in videos]
            video[label] = dict(videos[int(np.argsort(fps)[len(fps) // 2])][label], fps_rounds=fps)
        out["video"] = video
    return out


def merge_engines(parts: list[dict]) -> dict:
    """One model's worker results (one per engine and round) as one record: engine-prefixed figures side
    by side (medians over rounds), memory per engine, the video timings keyed by engine, and the
    issue-16 ratio."""
    errors = [p for p in parts if "error" in p]
    if errors:
        return errors[0]
    out = {k: v for k, v in parts[0].items() if k not in PER_ENGINE and k != "video"
           and not k.startswith(tuple(f"{e}_" for e in engine_names()))}
    out.update(engines=[], engines_skipped={}, rounds=0)
    videos = {}
    for engine in dict.fromkeys(_engine_of(p) for p in parts):
        mine = [p for p in parts if _engine_of(p) == engine]
        combined = _combine_rounds(mine, engine)
        if "video" in combined:
            videos[engine] = combined.pop("video")
        out.update(combined)
        out["engines"] += mine[0]["engines"]
        out["engines_skipped"].update(mine[0]["engines_skipped"])
        out["rounds"] = max(out["rounds"], len(mine))
    if videos:
        out["video"] = videos
    _add_ratio(out)
    return out


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def format_table(results: list[dict]) -> str:
    """One row per model and engine; the last column is predict / eager torch forward (target <= 0.75)."""
    cols = ["model", "engine", "input", "image", "threads", "fwd med", "fwd p90", "predict med", "predict p90",
            "fps batch", "predict/torch fwd"]
    rows = [cols]
    for r in results:
        if "error" in r:
            rows.append([r["model"], "ERROR: " + r["error"]] + [""] * (len(cols) - 2))
            continue
        for e in r["engines"]:
            ratio = r[f"{e}_predict_ms_median"] / r["torch_forward_ms_median"] if "torch" in r["engines"] else None
            rows.append([r["model"] + (" (random weights)" if r["weights"] == "random weights" else ""), e,
                         "{0[0]}x{0[1]}".format(r["input_size"]), "{0[0]}x{0[1]}".format(r["image_size"]),
                         str(r["threads"]), *(f"{r[f'{e}_{k}']:.1f}" for k in
                         ("forward_ms_median", "forward_ms_p90", "predict_ms_median", "predict_ms_p90", "fps_batched")),
                         "" if ratio is None else f"{ratio:.2f}"])
        for e, why in r.get("engines_skipped", {}).items():
            rows.append([r["model"], e, "not measured: " + why] + [""] * (len(cols) - 3))
    widths = [max(len(str(row[i])) for row in rows if len(row) == len(cols)) for i in range(len(cols))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    from nervseg.models.cards import ARCHITECTURES

    ap = argparse.ArgumentParser(prog="python -m nervseg.bench", description=__doc__.split("\n")[0],
                                 epilog="Each model and engine runs in its own subprocess, so its speed and peak memory are its own.")
    ap.add_argument("--models", nargs="+", metavar="ID", help="shipped model ids (default: all shipped)")
    ap.add_argument("--arch", nargs="+", choices=sorted(ARCHITECTURES),
                    help="benchmark these architectures with random weights (default when nothing is shipped)")
    ap.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=list(RANDOM_INPUT),
                    help="input size of the random-weight stand-ins (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=20, help="timed single-frame runs after warm-up (>= 20 advised)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each engine this many times, alternating, each in a fresh process; figures are "
                         "the median over rounds, each round's beside them (load on a shared machine comes and goes)")
    ap.add_argument("--batch", type=int, default=8, help="batch size for the throughput measurement")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads of both engines (default: nervseg.inference.segmenter's choice). On a machine busy with "
                         "other work, 1 thread avoids threads waiting on each other and can be much faster")
    ap.add_argument("--engines", nargs="+", choices=engine_names(), default=list(engine_names()),
                    help="engines to measure (default: every registered one)")
    ap.add_argument("--json", type=Path, default=Path("artifacts/bench.json"), help="where to write results")
    ap.add_argument("--video", default=None, metavar="CLIP", help="also time a clip end to end along the Cine page's path (nervseg.cine.view)")
    ap.add_argument("--video-frames", type=int, default=None, help="only the first N frames of --video")
    ap.add_argument("--pages", action="store_true",
                    help="also the page benchmark: AppTest script times (scripts/page_bench.py, both engines)")
    ap.add_argument("--browser", action="store_true",
                    help="also the browser benchmark: input event to image on screen in headless Chromium, quiet and "
                         "with one core kept busy (scripts/browser_bench.py; needs chromium)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return ap


def _jobs(args, tmp_dir: Path) -> list[tuple[str, Path, bool]]:
    """(model id, models folder, random weights?) to benchmark, as the flags ask."""
    from nervseg.models.cards import ARCHITECTURES, available

    shipped = {c.id: c for c in available(models_dir())}
    randoms = list(args.arch or [])
    jobs: list[tuple[str, Path, bool]] = []
    if args.models:
        missing = [m for m in args.models if m not in shipped]
        if missing:
            raise SystemExit(f"unknown model(s) {missing}; shipped: {sorted(shipped) or 'none'}")
        jobs += [(m, models_dir(), False) for m in args.models]
    elif not args.arch:
        if shipped:
            jobs += [(m, models_dir(), False) for m in sorted(shipped)]
        else:
            print("No trained models in models/ yet: benchmarking each architecture with RANDOM WEIGHTS "
                  "(speed and memory only; these are not models).", flush=True)
            randoms = list(ARCHITECTURES)
    return [(_random_card(a, tmp_dir, tuple(args.size)).id, tmp_dir, True) for a in randoms] + jobs


def _app_benchmarks(args, tmp: Path) -> dict:
    """The page and browser benchmarks, each a script beside the app (nervseg never imports streamlit)."""
    scripts = Path(__file__).resolve().parent.parent / "scripts"
    runs = []
    if args.pages:
        runs.append(("pages (AppTest script time)", ["page_bench.py", "--repeats", "5"]))
    if args.browser:
        runs.append(("browser", ["browser_bench.py", "--repeats", "5"]))
        runs.append(("browser, one core busy", ["browser_bench.py", "--repeats", "5", "--busy"]))
    out = {}
    for label, cmd in runs:
        dest = tmp / f"{len(out)}.json"
        print(f"{label} ...", flush=True)
        proc = subprocess.run([sys.executable, str(scripts / cmd[0]), *cmd[1:], "--json", str(dest)],
                              capture_output=True, text=True)
        print(proc.stdout)
        out[label] = (json.loads(dest.read_text()) if proc.returncode == 0 and dest.is_file()
                      else {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]})
    return out


def _report(results: list[dict], path: Path, app: dict | None = None) -> None:
    print()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"fwd = the engine alone; predict = Segmenter.predict on one frame end to end (ms); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(format_table(results))
    for r in results:
        if "video" in r:
            v = _flatten(r["video"])
            print(f"\nvideo {r['model']}: " + ", ".join(f"{k}={v[k]}" for k in v))
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "load_average": os.getloadavg()},
        "results": results,
        **({"app": app} if app else {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path}")


def main(argv=None) -> list[dict]:
    args = _parser().parse_args(argv)
    if args.worker:  # internal: one model in this fresh process, result as JSON on stdout
        spec = json.loads(args.worker)
        res = bench_one(spec["model_id"], Path(spec["dir"]), spec["runs"], spec["batch"], spec["video"],
                        spec["video_frames"], spec["random"], spec.get("threads", 0),
                        tuple(spec.get("engines", engine_names())))
        print(json.dumps(res))
        return [res]
    if args.runs < 1 or args.batch < 1 or args.rounds < 1:
        raise SystemExit("--runs, --batch and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="nervseg-bench-") as tmp:
        results = []
        for model_id, directory, is_random in _jobs(args, Path(tmp)):
            print(f"benchmarking {model_id}{' (random weights)' if is_random else ''} ...", flush=True)
            parts = [_run_worker({"model_id": model_id, "dir": str(directory), "runs": args.runs,
                                  "batch": args.batch, "video": args.video, "video_frames": args.video_frames,
                                  "random": is_random, "threads": args.threads, "engines": [engine]})
                     for _ in range(args.rounds) for engine in args.engines]  # engines alternate per round
            results.append(merge_engines(parts))
        app = _app_benchmarks(args, Path(tmp))
    _report(results, args.json, app)
    return results


def benchmark_clip(
    segmenter, clip_path: str | os.PathLike, batch_size: int = 8, max_frames: int | None = None
) -> dict:
    """End-to-end frames per second of the Cine page's path, batched and not: decode (`video.load_clip`),
    segment (`cine_view.segment_clip`), then masks, per-frame figures, overlays with the legend and the
    H.264 mp4 (`cine_view.render`). Each run decodes the clip again. With `max_frames`, only the first
    frames are processed and the decode time is scaled to them.
    """
    from nervseg.cine.clip import load_clip
    from nervseg.cine.view import render, segment_clip
    from nervseg.io import readers as nio

    out: dict = {"model": segmenter.card.id, "clip": Path(clip_path).name, "device": segmenter.device,
                 "path": "decode + cine_view.segment_clip + cine_view.render (overlay, legend, mp4 encode)"}
    for label, bs in (("batched", batch_size), ("unbatched", 1)):
        t0 = time.perf_counter()
        frames = load_clip(clip_path)
        decode = time.perf_counter() - t0
        if max_frames and max_frames < len(frames):
            decode *= max_frames / len(frames)  # the decode share of the frames kept
            frames = nio.Frames(frames.frames[:max_frames], frames.fps, frames.name, frames.format)
        res = render(segment_clip(segmenter, frames, batch_size=bs), smoothing=0.0)
        secs = {"decode": decode, **res.seconds}
        total = sum(secs.values())
        out["frames"] = res.n_frames
        out["resolution"] = f"{frames.frames.shape[2]}x{frames.frames.shape[1]}"
        out[label] = {
            "batch_size": bs,
            "fps": round(res.n_frames / total, 2),
            "seconds": {k: round(v, 3) for k, v in secs.items()} | {"total": round(total, 3)},
        }
    return out


if __name__ == "__main__":
    main()
