"""Cine loops: segment a clip frame by frame, smooth over time, write an overlay video.

Flow: `load_clip` (io.load_frames + clip limits) -> `process_clip` (batched
`Segmenter.predict_many`, exponential moving average of the class probabilities,
mask, per-frame figures, overlay frames streamed into an H.264 mp4) -> `ClipResult`.
`benchmark_clip` times the same path end to end; `read_boxes` / `box_agreement`
check predictions against the box annotations of the bp-videos clips.

The mp4 is written with the ffmpeg binary bundled in imageio-ffmpeg (libx264,
yuv420p, +faststart), because OpenCV's pip wheels ship without an H.264 encoder:
their `VideoWriter` can only write mp4v (MPEG-4 part 2), which browsers do not play.
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from . import data_root
from . import io as nio
from .card_ops import Postprocess
from .inference import Segmenter, class_confidence
from .measure import measure
from .viz import overlay

ProgressFn = Callable[[int, int], None]


class VideoEncodeError(RuntimeError):
    """The overlay video could not be written (ffmpeg failed)."""
Box = tuple[int, int, int, int]  # x, y, width, height in pixels


# ---------------------------------------------------------------- limits and loading


@dataclass(frozen=True)
class ClipLimits:
    """What a clip may be before we refuse it (CPU inference runs ~5-30 frames/s)."""

    max_seconds: float = 120.0
    max_frames: int = 1500
    max_pixels: int = 1_500_000  # per frame, e.g. 1280 x 1080
    max_bytes: int = 200 * 1024 * 1024
    # all frames together: 300 MB of uint8 frames, and as much again per result's masks
    max_total_pixels: int = 300_000_000

    def io_limits(self) -> nio.Limits:
        """The matching `nervseg.io.Limits`, so decoding stops (or never starts) on a too-large clip."""
        return nio.Limits(max_bytes=self.max_bytes, max_pixels=self.max_pixels, max_frames=self.max_frames,
                          max_video_pixels=self.max_pixels, max_total_pixels=self.max_total_pixels)


DEFAULT_CLIP_LIMITS = ClipLimits()


def check_limits(frames: nio.Frames, limits: ClipLimits = DEFAULT_CLIP_LIMITS) -> None:
    """Raise InputError when a decoded clip is too long, has too many frames or too many pixels."""
    n = len(frames)
    if n == 0:
        raise nio.InputError(f"{frames.name}: the clip has no frames.")
    h, w = frames.frames.shape[1:3]
    if h * w > limits.max_pixels:
        raise nio.InputError(
            f"{frames.name}: the frames are too large ({w}x{h}; the limit is "
            f"{limits.max_pixels / 1e6:.1f} million pixels per frame)."
        )
    if n > limits.max_frames:
        raise nio.InputError(f"{frames.name}: the clip has too many frames ({n}; the limit is {limits.max_frames}).")
    if n * h * w > limits.max_total_pixels:
        raise nio.InputError(f"{frames.name}: the clip is too large ({n} frames of {w}x{h}; the limit is "
                             f"{limits.max_total_pixels / 1e6:.0f} million pixels in all).")
    seconds = n / frames.fps if frames.fps > 0 else 0.0
    if seconds > limits.max_seconds:
        raise nio.InputError(
            f"{frames.name}: the clip is too long ({seconds:.0f} s; the limit is {limits.max_seconds:.0f} s). "
            "Trim it to the part you want to review."
        )


def load_clip(src: nio.Source, name: str | None = None, limits: ClipLimits = DEFAULT_CLIP_LIMITS) -> nio.Frames:
    """Decode a clip (mp4/avi/mov or multi-frame DICOM) and check it against `limits`."""
    frames = nio.load_frames(src, name=name, limits=limits.io_limits())
    check_limits(frames, limits)
    return frames


# ---------------------------------------------------------------- smoothing


def validate_strength(strength: float) -> float:
    strength = float(strength)
    if not 0.0 <= strength <= 0.95:
        raise ValueError(f"smoothing strength must be between 0 and 0.95, got {strength}")
    return strength


class ProbabilitySmoother:
    """Exponential moving average of class probabilities over frames.

    smoothed_t = strength * smoothed_{t-1} + (1 - strength) * probs_t; strength 0 is off.
    Averaging probabilities (not masks) lets a confident structure persist through a
    noisy frame while a real move still shows up within a few frames.
    """

    def __init__(self, strength: float = 0.0):
        self.strength = validate_strength(strength)
        self._state: np.ndarray | None = None

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        if self.strength == 0.0 or self._state is None or self._state.shape != probs.shape:
            self._state = probs.astype(np.float32, copy=True)
        else:
            self._state *= self.strength
            self._state += (1.0 - self.strength) * probs
        return self._state


def smooth_probabilities(probs: Iterable[np.ndarray], strength: float) -> list[np.ndarray]:
    """EMA-smoothed copies of a sequence of (C, H, W) probability maps."""
    s = ProbabilitySmoother(strength)
    return [s(p).copy() for p in probs]


def flicker(masks: Sequence[np.ndarray], class_id: int = 1) -> float:
    """Mean share of pixels whose `class_id` membership changes between consecutive frames."""
    if len(masks) < 2:
        return 0.0
    changes = [np.mean((a == class_id) != (b == class_id)) for a, b in zip(masks[:-1], masks[1:])]
    return float(np.mean(changes))


# ---------------------------------------------------------------- mp4 writing


class Mp4Writer:
    """Stream RGB frames into a browser-playable H.264 mp4 (imageio-ffmpeg's bundled ffmpeg)."""

    def __init__(self, path: str | os.PathLike, size_wh: tuple[int, int], fps: float, quality: float = 7):
        import imageio_ffmpeg

        self.path = str(path)
        w, h = size_wh
        self.pad = (w % 2, h % 2)  # yuv420p needs even width and height
        self._gen = imageio_ffmpeg.write_frames(  # a generator: frames go in with .send()
            self.path,
            (w + self.pad[0], h + self.pad[1]),
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            fps=float(fps),
            codec="libx264",
            quality=quality,
            macro_block_size=1,
            output_params=["-movflags", "+faststart"],
            ffmpeg_log_level="error",
        )
        self.frames = 0
        try:
            self._gen.send(None)
        except (OSError, RuntimeError) as e:
            raise VideoEncodeError(f"the video encoder could not start ({e})") from None

    def write(self, rgb: np.ndarray) -> None:
        if any(self.pad):
            rgb = np.pad(rgb, ((0, self.pad[1]), (0, self.pad[0]), (0, 0)), mode="edge")
        try:
            self._gen.send(np.ascontiguousarray(rgb))
        except (OSError, RuntimeError, StopIteration) as e:
            raise VideoEncodeError(f"the video encoder stopped at frame {self.frames} ({e})") from None
        self.frames += 1

    def close(self) -> None:
        try:
            self._gen.close()
        except (OSError, RuntimeError) as e:
            raise VideoEncodeError(f"the video could not be finished ({e})") from None


def encode_mp4(frames: Sequence[np.ndarray], fps: float) -> bytes:
    """Grey or RGB uint8 frames -> H.264 mp4 bytes."""
    if not len(frames):
        raise ValueError("no frames to encode")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        h, w = frames[0].shape[:2]
        writer = Mp4Writer(path, (w, h), fps)
        try:
            for f in frames:
                writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2RGB) if f.ndim == 2 else f)
        finally:
            writer.close()
        return path.read_bytes()


# ---------------------------------------------------------------- processing


@dataclass
class ClipResult:
    """A processed clip: frames, masks, per-frame figures, the overlay mp4 and timings."""

    name: str
    model_id: str
    classes: list[str]
    fps: float  # the clip's own frame rate
    smoothing: float
    frames: np.ndarray  # (N, H, W) uint8
    masks: np.ndarray  # (N, H, W) uint8 class ids after smoothing
    stats: list[dict]
    seconds: dict[str, float]  # decode (if known), predict, post, overlay, encode
    video_mp4: bytes | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    alpha: float = 0.45
    extras: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def processing_seconds(self) -> float:
        """Decode + predict + smoothing/figures + overlay (+ encode when written)."""
        return float(sum(self.seconds.values()))

    @property
    def achieved_fps(self) -> float:
        """Frames per second end to end on this machine."""
        s = self.processing_seconds
        return self.n_frames / s if s > 0 else float("nan")

    def overlay_frame(self, index: int) -> np.ndarray:
        """RGB overlay of one frame at full resolution."""
        return overlay(self.frames[index], self.masks[index], self.alpha)

    def csv_bytes(self) -> bytes:
        return stats_csv(self.stats)


def frame_stats(
    index: int, fps: float, probs: np.ndarray, mask: np.ndarray, classes: list[str], spacing=None
) -> dict:
    """One frame's figures: area (px, and mm² when the spacing is known), confidence, components."""
    row: dict = {"frame": index, "time_s": round(index / fps, 4) if fps > 0 else float("nan")}
    conf = class_confidence(probs, mask, classes)
    for s in measure(mask, classes, spacing):
        row[f"{s.name}_area_px"] = s.area_px
        if spacing:
            row[f"{s.name}_area_mm2"] = s.area_mm2
        row[f"{s.name}_confidence"] = round(conf.get(s.name, float("nan")), 4)
        row[f"{s.name}_components"] = s.components
    return row


def stats_csv(rows: list[dict]) -> bytes:
    """Per-frame figures as CSV bytes (one row per frame; empty confidence where no pixels)."""
    if not rows:
        return b""
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()})
    return buf.getvalue().encode()


def process_clip(
    segmenter: Segmenter,
    frames: nio.Frames,
    smoothing: float = 0.0,
    batch_size: int = 8,
    preprocess=None,
    alpha: float = 0.45,
    write_video: bool = True,
    progress: ProgressFn | None = None,
) -> ClipResult:
    """Segment every frame, smooth the probabilities over time, and build the overlay video.

    Only one frame's probabilities are kept at a time (the EMA state), so memory
    stays at frames + masks. `progress(done, total)` is called after each batch.
    """
    smoother = ProbabilitySmoother(smoothing)
    imgs = frames.frames
    n = len(frames)
    if n == 0:
        raise nio.InputError(f"{frames.name}: the clip has no frames.")
    classes = segmenter.classes
    post = Postprocess.from_card(segmenter.card.postprocess)
    h, w = imgs.shape[1:3]
    masks = np.zeros(imgs.shape, np.uint8)
    stats: list[dict] = []
    seconds = {"predict": 0.0, "post": 0.0, "overlay": 0.0}
    tmp = tempfile.TemporaryDirectory() if write_video else None
    writer = Mp4Writer(Path(tmp.name) / "overlay.mp4", (w, h), frames.fps) if tmp else None
    video = None
    try:
        for start in range(0, n, batch_size):
            batch = [imgs[i] for i in range(start, min(n, start + batch_size))]
            t0 = time.perf_counter()
            preds = segmenter.predict_many(batch, preprocess=preprocess, batch_size=batch_size)
            seconds["predict"] += time.perf_counter() - t0
            for k, pred in enumerate(preds):
                i = start + k
                t0 = time.perf_counter()
                if smoother.strength > 0:
                    probs = smoother(pred.probs)
                    mask = probs.argmax(axis=0).astype(np.uint8)
                    mask = post.apply(mask)
                else:
                    probs, mask = pred.probs, pred.mask
                masks[i] = mask
                stats.append(frame_stats(i, frames.fps, probs, mask, classes, frames.pixel_spacing_mm))
                t1 = time.perf_counter()
                seconds["post"] += t1 - t0
                rgb = overlay(imgs[i], mask, alpha)
                t2 = time.perf_counter()
                seconds["overlay"] += t2 - t1
                if writer:
                    writer.write(rgb)
                    seconds["encode"] = seconds.get("encode", 0.0) + time.perf_counter() - t2
            if progress:
                progress(min(n, start + batch_size), n)
        if writer:
            t0 = time.perf_counter()
            writer.close()
            writer = None
            video = (Path(tmp.name) / "overlay.mp4").read_bytes()
            seconds["encode"] = seconds.get("encode", 0.0) + time.perf_counter() - t0
    finally:
        if writer:
            writer.close()
        if tmp:
            tmp.cleanup()
    return ClipResult(
        name=frames.name,
        model_id=segmenter.card.id,
        classes=classes,
        fps=frames.fps,
        smoothing=smoother.strength,
        frames=imgs,
        masks=masks,
        stats=stats,
        seconds=seconds,
        video_mp4=video,
        pixel_spacing_mm=frames.pixel_spacing_mm,
        alpha=alpha,
    )


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the rate so far (None before the first batch)."""
    if done <= 0 or elapsed <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))


def timeline_figure(stats: list[dict], class_name: str = "nerve", current: int | None = None):
    """Plotly line chart of a class's area (left axis) and confidence (right axis) per frame."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = [r["time_s"] for r in stats]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(x=x, y=[r.get(f"{class_name}_area_px") for r in stats], name=f"{class_name} area (px)"),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=x, y=[r.get(f"{class_name}_confidence") for r in stats], name=f"{class_name} confidence",
            line=dict(dash="dot"),
        ),
        secondary_y=True,
    )
    if current is not None and 0 <= current < len(stats):
        fig.add_vline(x=stats[current]["time_s"], line_color="grey", line_dash="dash")
    fig.update_xaxes(title_text="time (s)")
    fig.update_yaxes(title_text="area (pixels)", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="mean probability", range=[0, 1], secondary_y=True)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=1.1))
    return fig


# ---------------------------------------------------------------- benchmark


def benchmark_clip(
    segmenter: Segmenter, clip_path: str | os.PathLike, batch_size: int = 8, max_frames: int | None = None
) -> dict:
    """End-to-end frames per second (decode + predict + smoothing/figures + overlay), batched and not.

    Each run decodes the clip again so decode time is counted in both; the mp4 is not
    written (encoding speed is the same for every model). With `max_frames`, only the
    first frames are segmented and the decode time is scaled to them.
    """
    out: dict = {"model": segmenter.card.id, "clip": Path(clip_path).name, "device": segmenter.device}
    for label, bs in (("batched", batch_size), ("unbatched", 1)):
        t0 = time.perf_counter()
        frames = load_clip(clip_path)
        decode = time.perf_counter() - t0
        if max_frames and max_frames < len(frames):
            decode *= max_frames / len(frames)  # the decode share of the frames kept
            frames = nio.Frames(frames.frames[:max_frames], frames.fps, frames.name, frames.format)
        res = process_clip(segmenter, frames, smoothing=0.0, batch_size=bs, write_video=False)
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


# ---------------------------------------------------------------- box annotations


def read_boxes(src: str | os.PathLike | Iterable[str]) -> dict[int, list[Box]]:
    """Per-frame boxes from a bp-videos .txt (JSON lines `{"<frame>": {"bounding_boxes": "[[x,y,w,h],...]"}}`).

    Raises InputError on a line that is not such JSON.
    """
    lines = Path(src).read_text().splitlines() if isinstance(src, (str, os.PathLike)) else list(src)
    out: dict[int, list[Box]] = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
            for key, entry in obj.items():
                raw = entry["bounding_boxes"]
                boxes = json.loads(raw) if isinstance(raw, str) else raw
                out[int(key)] = [tuple(int(round(v)) for v in b[:4]) for b in boxes]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise nio.InputError(f"box file line {n} cannot be read ({e}).") from None
    return out


def boxes_mask(shape: tuple[int, int], boxes: Iterable[Box]) -> np.ndarray:
    """(H, W) bool: the union of the boxes, clipped to the frame."""
    m = np.zeros(shape, bool)
    for x, y, w, h in boxes:
        m[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)] = True
    return m


def box_agreement(masks: Sequence[np.ndarray], boxes_per_frame: dict[int, list[Box]], class_id: int = 1) -> dict:
    """How predictions sit relative to box annotations, over the annotated frames.

    inside_share: predicted `class_id` pixels inside the union of boxes / all predicted
    pixels (pooled over frames). frames_overlap_share: annotated frames where the
    prediction touches at least one box / annotated frames (a frame with no
    prediction counts as a miss). Also the per-frame mean of the inside share over
    frames with a prediction, and the pooled share of box pixels covered.
    """
    inside = total = covered = box_px = 0
    overlap_frames = predicted_frames = annotated = 0
    per_frame = []
    for idx, boxes in sorted(boxes_per_frame.items()):
        if idx >= len(masks) or not boxes:
            continue
        annotated += 1
        pred = masks[idx] == class_id
        union = boxes_mask(pred.shape, boxes)
        n_pred = int(pred.sum())
        n_in = int((pred & union).sum())
        inside += n_in
        total += n_pred
        covered += n_in
        box_px += int(union.sum())
        if n_pred:
            predicted_frames += 1
            per_frame.append(n_in / n_pred)
        if n_in:
            overlap_frames += 1
    nan = float("nan")
    return {
        "annotated_frames": annotated,
        "frames_with_prediction": predicted_frames,
        "inside_share": inside / total if total else nan,
        "inside_share_mean_per_frame": float(np.mean(per_frame)) if per_frame else nan,
        "frames_overlap_share": overlap_frames / annotated if annotated else nan,
        "box_covered_share": covered / box_px if box_px else nan,
    }


def sample_clips() -> list[Path]:
    """The bp-videos sample clips when the shared data is present."""
    folder = data_root() / "bp-videos"
    return sorted(folder.glob("*.mp4")) if folder.is_dir() else []


def agreement_for_model(segmenter: Segmenter, clips: Sequence[Path], smoothing: float = 0.0, batch_size: int = 8) -> dict:
    """box_agreement per clip (clip.mp4 beside clip.txt) and pooled over the clips."""
    per_clip = {}
    pooled = {"inside": 0.0, "total": 0.0, "overlap": 0.0, "annotated": 0}
    for clip in clips:
        boxes = read_boxes(clip.with_suffix(".txt"))
        res = process_clip(segmenter, load_clip(clip), smoothing=smoothing, batch_size=batch_size, write_video=False)
        a = box_agreement(res.masks, boxes)
        per_clip[clip.name] = a
        pred_px = sum(int((res.masks[i] == 1).sum()) for i in boxes if i < res.n_frames)
        pooled["total"] += pred_px
        if pred_px:
            pooled["inside"] += a["inside_share"] * pred_px
        pooled["overlap"] += a["frames_overlap_share"] * a["annotated_frames"]
        pooled["annotated"] += a["annotated_frames"]
    nan = float("nan")
    return {
        "model": segmenter.card.id,
        "smoothing": smoothing,
        "clips": per_clip,
        "all": {
            "annotated_frames": pooled["annotated"],
            "inside_share": pooled["inside"] / pooled["total"] if pooled["total"] else nan,
            "frames_overlap_share": pooled["overlap"] / pooled["annotated"] if pooled["annotated"] else nan,
        },
    }


# ---------------------------------------------------------------- CLI


def _cmd_process(args) -> int:
    from .inference import load

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
    from .inference import load
    from .models import available

    clips = [Path(c) for c in args.clips] if args.clips else sample_clips()
    if not clips:
        print("no clips: give paths or put bp-videos under the data root", file=sys.stderr)
        return 2
    ids = args.models or [c.id for c in available() if c.task == "kaggle-bp"]
    if not ids:
        print("no brachial-plexus (kaggle-bp) models found", file=sys.stderr)
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
    p = argparse.ArgumentParser(prog="python -m nervseg.video", description=__doc__.splitlines()[0])
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
    b.add_argument("--models", nargs="*", help="model ids (default: every kaggle-bp model)")
    b.add_argument("--smoothing", type=float, default=0.0)
    b.add_argument("--batch-size", type=int, default=8)
    b.add_argument("--json", help="also write the figures to this JSON file")
    b.set_defaults(func=_cmd_agreement)
    for sp in (a, b):
        sp.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: the library default)")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except nio.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
