"""Cine loops: the clip's pieces: limits, temporal smoothing, the H.264 writer, per-frame figures, ClipResult.

The one pipeline that uses them is nervseg.cine.view (`segment_clip` -> `render`, or both as
`process_clip`): the Cine page, the CLI (nervseg.cine.cli), box agreement (nervseg.cine.boxes) and
the benchmark all run it.

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
from nervseg.inference.segmenter import class_confidence
from nervseg.io import readers as nio

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
