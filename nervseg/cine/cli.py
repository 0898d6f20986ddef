"""Command line for cine loops.

    python -m nervseg.cine process CLIP --model ID [--smoothing 0.5] [--out FILE.mp4]
    python -m nervseg.cine agreement [CLIPS ...] [--models ID ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nervseg.cine.boxes import agreement_for_model, clip_tasks, sample_clips
from nervseg.cine.clip import load_clip
from nervseg.cine.view import process_clip
from nervseg.inference.segmenter import configure_threads
from nervseg.io import readers as nio


def _cmd_process(args) -> int:
    from nervseg.inference.segmenter import load

    seg = load(args.model)
    frames = load_clip(args.clip)
    t0 = time.perf_counter()
    res = process_clip(seg, frames, smoothing=args.smoothing, batch_size=args.batch_size)
    res.seconds["decode"] = 0.0
    out = Path(args.out or f"{Path(args.clip).stem}-{args.model}.mp4")
    out.write_bytes(res.video_mp4 or b"")
    out.with_suffix(".csv").write_bytes(res.csv_bytes())
    print(f"{res.n_frames} frames in {time.perf_counter() - t0:.1f} s ({res.achieved_fps:.1f} frames/s); "
          f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


def _cmd_agreement(args) -> int:
    from nervseg.inference.segmenter import load
    from nervseg.models.cards import available

    clips = [Path(c) for c in args.clips] if args.clips else sample_clips()
    if not clips:
        print("no clips: give paths or put bp-videos under the data root", file=sys.stderr)
        return 2
    ids = args.models or [c.id for c in available() if c.task in clip_tasks()]
    if not ids:
        print(f"no models of the clips' tasks ({', '.join(clip_tasks())}) found", file=sys.stderr)
        return 2
    results = []
    for mid in ids:
        r = agreement_for_model(load(mid), clips, smoothing=args.smoothing, batch_size=args.batch_size)
        results.append(r)
        print(f"{mid} (smoothing {args.smoothing}):")
        for name, a in list(r["clips"].items()) + [("all clips", r["all"])]:
            print(f"  {name:10s} inside boxes {a['inside_share']:.3f}   frames overlapping a box "
                  f"{a['frames_overlap_share']:.3f}   ({a['annotated_frames']} annotated frames)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nervseg.cine", description="Cine loops: segment a clip (overlay mp4 + per-frame CSV), or score models against box annotations.")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("process", help="segment a clip, write overlay mp4 + per-frame CSV")
    a.add_argument("clip")
    a.add_argument("--model", required=True)
    a.add_argument("--smoothing", type=float, default=0.0)
    a.add_argument("--batch-size", type=int, default=8)
    a.add_argument("--out", help="output mp4 (CSV beside it)")
    a.set_defaults(func=_cmd_process)
    b = sub.add_parser("agreement", help="predictions vs the bp-videos box annotations")
    b.add_argument("clips", nargs="*", help="clip .mp4 files with a .txt beside (default: data root bp-videos)")
    b.add_argument("--models", nargs="*", help="model ids (default: every model of a task with annotated clips: kaggle-bp)")
    b.add_argument("--smoothing", type=float, default=0.0)
    b.add_argument("--batch-size", type=int, default=8)
    b.add_argument("--json", help="also write the figures to this JSON file")
    b.set_defaults(func=_cmd_agreement)
    for sp in (a, b):
        sp.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: $NERVSEG_THREADS, else all cores up to 8)")
    args = p.parse_args(argv)
    configure_threads(args.threads or None)
    try:
        return args.func(args)
    except nio.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
