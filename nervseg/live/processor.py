"""One live frame in, its overlaid frame out, through the one inference path (`Segmenter.predict`).

The frame's image region (the crop) is segmented exactly as a still is (the card's normalisation,
preprocessing and post-processing); optional temporal smoothing is the Cine page's rule
(`nervseg.cine.view.smoothed_frame`). The overlay is drawn back in place inside the full frame, so
the scanner's interface around the image stays as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from nervseg import preprocess as pp
from nervseg.cine.clip import ProbabilitySmoother, validate_strength
from nervseg.cine.view import smoothed_frame
from nervseg.display import viz
from nervseg.inference.segmenter import Segmenter
from nervseg.live.region import Crop, full_frame
from nervseg.models.card_ops import Postprocess

VIEWS = ("overlay", "contours", "probability")
CROP_OUTLINE = (90, 90, 90)  # RGB of the thin frame drawn around the segmented region


def live_sizes(input_size) -> list[int]:
    """Model input sizes offered for live use: the card's own (its shorter side stands for it) first, then
    smaller square multiples of 32 down to 128 (faster, less accurate; `Segmenter(input_size=...)`)."""
    own = min(int(v) for v in input_size)
    return [own] + [s for s in (224, 192, 160, 128) if s < own]


@dataclass(frozen=True)
class LiveSettings:
    """How live frames are segmented and drawn; replaced as a whole when the user changes one."""

    view: str = "overlay"  # one of VIEWS
    alpha: float = 0.45  # overlay opacity
    smoothing: float = 0.0  # EMA strength over frames, 0 = off (the Cine rule)
    crop: Crop | None = None  # the image region; None = the whole frame
    outline_crop: bool = True
    legend: bool = True
    preprocess: pp.Preprocess | None = None  # None = the card's own (as on every page)

    def __post_init__(self):
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; known: {list(VIEWS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha}")
        validate_strength(self.smoothing)

    def with_crop(self, crop: Crop | None) -> LiveSettings:
        return replace(self, crop=crop)


@dataclass
class LiveResult:
    """One processed frame: the overlaid RGB frame, and what was segmented (region, mask, where)."""

    frame: np.ndarray  # (H, W, 3) uint8 RGB, the whole frame with the overlay in the crop
    image: np.ndarray  # (h, w) uint8 grey, the crop that went through the model
    mask: np.ndarray  # (h, w) uint8 class ids of `image`
    crop: Crop
    model_ms: float  # Segmenter.predict wall time (normalisation, network, post-processing)
    captured_at: float  # clock time the frame arrived
    done_at: float  # clock time the overlay was ready
    model_id: str = ""

    @property
    def latency_ms(self) -> float:
        return 1000.0 * (self.done_at - self.captured_at)


class FrameProcessor:
    """Segments live frames with one model; holds only the smoothing state (one frame's probabilities).

    `settings` may be replaced from another thread at any time; `process` reads them once per frame.
    """

    def __init__(self, segmenter: Segmenter, settings: LiveSettings | None = None, clock=time.monotonic):
        self.segmenter = segmenter
        self.settings = settings or LiveSettings()
        self.clock = clock
        self._post = Postprocess.from_card(segmenter.card.postprocess)
        self._smoother = ProbabilitySmoother(0.0)
        self._smoothing_key: tuple | None = None

    @property
    def classes(self) -> list[str]:
        return self.segmenter.classes

    def _smoother_for(self, s: LiveSettings, crop: Crop) -> ProbabilitySmoother:
        """The EMA state, restarted when the strength, the region or the preprocessing changes."""
        key = (s.smoothing, crop, s.preprocess)
        if key != self._smoothing_key:
            self._smoother, self._smoothing_key = ProbabilitySmoother(s.smoothing), key
        return self._smoother

    def process(self, frame: np.ndarray, captured_at: float | None = None) -> LiveResult:
        """An (H, W, 3) RGB or (H, W) grey uint8 frame -> LiveResult with the overlay drawn in the crop."""
        captured_at = self.clock() if captured_at is None else captured_at
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3):
            raise ValueError(f"expected an (H, W, 3) RGB or (H, W) grey uint8 frame, got {frame.dtype} {frame.shape}")
        s = self.settings
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        crop = (s.crop.clamp(grey.shape) if s.crop else None) or full_frame(grey.shape)
        region = np.ascontiguousarray(grey[crop.slices()])
        t0 = time.perf_counter()
        pred = self.segmenter.predict(region, s.preprocess)
        model_ms = 1000.0 * (time.perf_counter() - t0)
        probs = None
        if s.smoothing > 0:
            probs, mask = smoothed_frame(self._smoother_for(s, crop), pred.probs_small, region.shape, self._post)
        else:
            self._smoother_for(s, crop)
            mask = pred.mask
        out = viz.to_rgb(frame)
        out[crop.slices()] = self._draw(region, mask, probs if probs is not None else pred, s)
        if s.outline_crop and (crop.w, crop.h) != (out.shape[1], out.shape[0]):
            cv2.rectangle(out, (crop.x, crop.y), (crop.x + crop.w - 1, crop.y + crop.h - 1), CROP_OUTLINE, 1)
        if s.legend:
            out = viz.burn_legend(out, self.classes)
        return LiveResult(out, region, mask, crop, model_ms, captured_at, self.clock(), self.segmenter.card.id)

    @staticmethod
    def _draw(region: np.ndarray, mask: np.ndarray, probs, s: LiveSettings) -> np.ndarray:
        if s.view == "contours":
            return viz.contours(region, mask)
        if s.view == "probability":
            planes = probs if isinstance(probs, np.ndarray) else probs.probs
            return viz.heatmap(region, planes[1:].max(axis=0), s.alpha)
        return viz.overlay(region, mask, s.alpha)
