"""Cine in two steps: segment a clip once, then render it at any smoothing without re-segmenting.

`segment_clip` keeps every frame's class probabilities at the model's input resolution
(float16, a few tens of MB for a 220-frame clip), which is what the network produced
before upsampling; `render` smooths them over time (the EMA of `nervseg.cine.clip`),
upsamples, applies the card's post-processing, measures each frame and encodes the
overlay video with a burned-in legend. Changing the smoothing is a `render` call, seconds
instead of a new pass through the model.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nervseg.cine.clip import ClipResult, Mp4Writer, ProbabilitySmoother, ProgressFn, frame_stats
from nervseg.display.viz import burn_legend, draw_boxes, overlay
from nervseg.inference.segmenter import Segmenter, first_max, upsample
from nervseg.io import readers as nio
from nervseg.models.card_ops import Postprocess


@dataclass
class RawClip:
    """A segmented clip before smoothing: frames and per-frame probabilities at model resolution."""

    name: str
    model_id: str
    classes: list[str]
    fps: float
    frames: np.ndarray  # (N, H, W) uint8
    probs: np.ndarray  # (N, C, h, w) float16, the model's input size
    postprocess: dict
    seconds: dict[str, float] = field(default_factory=dict)
    pixel_spacing_mm: tuple[float, float] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def segment_clip(segmenter: Segmenter, frames: nio.Frames, preprocess=None, batch_size: int = 8,
                 progress: ProgressFn | None = None) -> RawClip:
    """Every frame through the model once; probabilities kept small (float16, model input size)."""
    imgs = frames.frames
    n = len(frames)
    if n == 0:
        raise nio.InputError(f"{frames.name}: the clip has no frames.")
    ih, iw = segmenter.card.input_size
    probs = np.zeros((n, len(segmenter.classes), ih, iw), np.float16)
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        # the network's own output: no full-resolution mask per frame here (render makes those once)
        probs[start:stop] = segmenter.probs_small_many(imgs[start:stop], preprocess=preprocess, batch_size=batch_size)
        if progress:
            progress(min(n, start + batch_size), n)
    return RawClip(frames.name, segmenter.card.id, list(segmenter.classes), frames.fps, imgs, probs,
                   dict(segmenter.card.postprocess), {"predict": time.perf_counter() - t0}, frames.pixel_spacing_mm)


def smoothed_frame(smoother: ProbabilitySmoother, probs_small: np.ndarray, shape: tuple[int, int],
                   post: Postprocess) -> tuple[np.ndarray, np.ndarray]:
    """The Cine smoothing rule for one frame: (probabilities at `shape`, mask) from the model-resolution
    probabilities, EMA over frames, upsampled, argmax, then the card's post-processing (Live uses it too)."""
    probs = upsample(smoother(probs_small.astype(np.float32)), shape)
    return probs, post.apply(first_max(probs)[0])


def render(raw: RawClip, smoothing: float = 0.0, alpha: float = 0.45, write_video: bool = True,
           legend: bool = True, boxes: dict[int, list] | None = None) -> ClipResult:
    """Masks, per-frame figures and the overlay mp4 of `raw` at this smoothing (no model call).

    `boxes` ({frame: [(x, y, w, h), ...]}, e.g. `nervseg.cine.boxes.read_boxes`) are drawn into the video.
    """
    smoother = ProbabilitySmoother(smoothing)
    post = Postprocess.from_card(raw.postprocess)
    n, h, w = raw.frames.shape
    masks = np.zeros(raw.frames.shape, np.uint8)
    stats: list[dict] = []
    seconds = dict(raw.seconds, post=0.0, overlay=0.0)
    tmp = tempfile.TemporaryDirectory() if write_video else None
    writer = Mp4Writer(Path(tmp.name) / "overlay.mp4", (w, h), raw.fps) if tmp else None
    video = None
    try:
        for i in range(n):
            t0 = time.perf_counter()
            probs, masks[i] = smoothed_frame(smoother, raw.probs[i], (h, w), post)
            stats.append(frame_stats(i, raw.fps, probs, masks[i], raw.classes, raw.pixel_spacing_mm))
            t1 = time.perf_counter()
            seconds["post"] += t1 - t0
            if writer:
                rgb = overlay(raw.frames[i], masks[i], alpha)
                if boxes and boxes.get(i):
                    rgb = draw_boxes(rgb, boxes[i])
                writer.write(burn_legend(rgb, raw.classes) if legend else rgb)
                seconds["overlay"] += time.perf_counter() - t1
        if writer:
            t0 = time.perf_counter()
            writer.close()
            writer = None
            video = (Path(tmp.name) / "overlay.mp4").read_bytes()
            seconds["encode"] = time.perf_counter() - t0
    finally:
        if writer:
            writer.close()
        if tmp:
            tmp.cleanup()
    return ClipResult(name=raw.name, model_id=raw.model_id, classes=raw.classes, fps=raw.fps,
                      smoothing=smoother.strength, frames=raw.frames, masks=masks, stats=stats, seconds=seconds,
                      video_mp4=video, pixel_spacing_mm=raw.pixel_spacing_mm, alpha=alpha,
                      extras={"boxes": boxes} if boxes else {})


def process_clip(segmenter: Segmenter, frames: nio.Frames, smoothing: float = 0.0, batch_size: int = 8,
                 preprocess=None, alpha: float = 0.45, write_video: bool = True,
                 progress: ProgressFn | None = None, boxes: dict[int, list] | None = None) -> ClipResult:
    """The one clip pipeline, whole: `segment_clip` then `render`, as the Cine page runs them (the page keeps
    the RawClip to re-render other smoothings). The CLI, box agreement and the benchmark use this."""
    return render(segment_clip(segmenter, frames, preprocess, batch_size, progress), smoothing, alpha,
                  write_video, boxes=boxes)
