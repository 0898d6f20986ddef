"""Cine loops: segment a clip frame by frame, smooth over time, write an overlay video.

Flow: `load_clip` (io.load_frames + clip limits) -> `process_clip` (batched
`Segmenter.predict_many`, exponential moving average of the class probabilities,
mask, per-frame figures, overlay frames streamed into an H.264 mp4) -> `ClipResult`.
Beside it, by job: nervseg.cine.boxes (box annotations and agreement), nervseg.display.viz.timeline_figure,
nervseg.bench.benchmark_clip and the CLI in nervseg.cine.cli (`python -m nervseg.cine.clip` still works).

The mp4 is written with the ffmpeg binary bundled in imageio-ffmpeg (libx264,
yuv420p, +faststart), because OpenCV's pip wheels ship without an H.264 encoder:
their `VideoWriter` can only write mp4v (MPEG-4 part 2), which browsers do not play.
"""

from __future__ import annotations

import csv
import io as _io
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from nervseg.display.viz import overlay
from nervseg.evaluate.measure import measure
from nervseg.inference.segmenter import Segmenter, class_confidence
from nervseg.io import readers as nio
from nervseg.models.card_ops import Postprocess

ProgressFn = Callable[[int, int], None]


class VideoEncodeError(RuntimeError):
    """The overlay video could not be written (ffmpeg failed)."""


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
        """The matching `nervseg.io.readers.Limits`, so decoding stops (or never starts) on a too-large clip."""
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
    imgs, n = frames.frames, len(frames)
    if n == 0:
        raise nio.InputError(f"{frames.name}: the clip has no frames.")
    smoother, post = ProbabilitySmoother(smoothing), Postprocess.from_card(segmenter.card.postprocess)
    classes, (h, w) = segmenter.classes, imgs.shape[1:3]
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
                probs, mask = _smoothed(pred, smoother, post)
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
            video = _finish(writer, seconds)
            writer = None
    finally:
        if writer:
            writer.close()
        if tmp:
            tmp.cleanup()
    return ClipResult(name=frames.name, model_id=segmenter.card.id, classes=classes, fps=frames.fps,
                      smoothing=smoother.strength, frames=imgs, masks=masks, stats=stats, seconds=seconds,
                      video_mp4=video, pixel_spacing_mm=frames.pixel_spacing_mm, alpha=alpha)


def _smoothed(pred, smoother: ProbabilitySmoother, post: Postprocess) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, mask) of one frame: the prediction's own, or after temporal smoothing
    (argmax of the smoothed probabilities, then the card's post-processing)."""
    if smoother.strength <= 0:
        return pred.probs, pred.mask
    probs = smoother(pred.probs)
    return probs, post.apply(probs.argmax(axis=0).astype(np.uint8))


def _finish(writer: Mp4Writer, seconds: dict[str, float]) -> bytes:
    """Close the writer and read its mp4 back, counting the time as encoding."""
    t0 = time.perf_counter()
    writer.close()
    video = Path(writer.path).read_bytes()
    seconds["encode"] = seconds.get("encode", 0.0) + time.perf_counter() - t0
    return video


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the rate so far (None before the first batch)."""
    if done <= 0 or elapsed <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))
