"""A live session: frames in at the camera's rate, the newest overlay out, with readout, record and freeze.

`LiveSession.offer(frame)` hands a frame to the worker (newest wins, `nervseg.live.runner`) and
returns at once; `wait_newer` gives each new overlaid frame once, which is what goes back to the
viewer (so only new overlays are encoded and sent). Every piece of state is bounded: one frame
waiting, one result, the last `window` timings, one recording of at most `Recorder.max_seconds`.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from nervseg.display.viz import png_bytes
from nervseg.live.processor import FrameProcessor, LiveResult, LiveSettings
from nervseg.live.record import Recorder
from nervseg.live.region import Crop, propose_crop
from nervseg.live.runner import LatestOnlyRunner


@dataclass(frozen=True)
class LiveStats:
    """The readout: overlays shown per second, model ms and server-side latency (medians of the last frames)."""

    fps: float
    model_ms: float
    latency_ms: float
    offered: int
    processed: int
    dropped: int
    failed: int
    frame_size: tuple[int, int] | None  # (width, height) of the incoming frames
    last_error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """A frozen live frame: the segmented region and its mask, ready to open as a still."""

    image: np.ndarray  # (h, w) uint8 grey, the crop
    mask: np.ndarray  # (h, w) uint8 class ids
    crop: Crop
    model_id: str
    taken: datetime

    @property
    def name(self) -> str:
        return f"live-{self.taken:%Y%m%d-%H%M%S}.png"

    def image_png(self) -> bytes:
        return png_bytes(self.image)

    def mask_png(self) -> bytes:
        return png_bytes(self.mask)


class LiveSession:
    """Segments a stream with one FrameProcessor; thread-safe (frames arrive on the WebRTC thread)."""

    def __init__(self, processor: FrameProcessor, window: int = 60, recorder: Recorder | None = None,
                 clock=time.monotonic, proposal_frames: int = 8):
        self.processor = processor
        self.clock = clock
        self.recorder = recorder or Recorder()
        self._lock = threading.Lock()
        self._done_at: deque[float] = deque(maxlen=window)
        self._model_ms: deque[float] = deque(maxlen=window)
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._recent: deque[np.ndarray] = deque(maxlen=proposal_frames)  # small grey copies for the crop proposal
        self._size: tuple[int, int] | None = None
        self._runner: LatestOnlyRunner = LatestOnlyRunner(self._work)

    @property
    def model_id(self) -> str:
        return self.processor.segmenter.card.id

    def update(self, settings: LiveSettings) -> None:
        """New settings from the page; the next frame uses them."""
        self.processor.settings = settings

    def use(self, processor: FrameProcessor) -> None:
        """Another model (or size) from the next frame on, without stopping the stream; the readout restarts."""
        processor.settings = self.processor.settings
        self.processor = processor
        with self._lock:
            self._done_at.clear()
            self._model_ms.clear()
            self._latency_ms.clear()

    # -------------------------------------------------------------- frames

    def offer(self, frame, captured_at: float | None = None, convert: Callable[[object], np.ndarray] | None = None) -> None:
        """Hand a frame over to the worker and return at once (a frame still waiting is dropped).

        `convert` turns `frame` into an (H, W, 3) RGB array on the worker, so a frame that is dropped is
        never converted (a WebRTC frame is YUV until asked).
        """
        self._runner.offer((frame, self.clock() if captured_at is None else captured_at, convert))

    def wait_newer(self, seen: int, timeout: float) -> tuple[int, LiveResult] | None:
        """(number, result) of a result newer than number `seen`, waiting up to `timeout` s (None if none)."""
        return self._runner.wait_newer(seen, timeout)

    def _work(self, item: tuple) -> LiveResult:
        frame, captured_at, convert = item
        frame = convert(frame) if convert is not None else frame
        self._size = (int(frame.shape[1]), int(frame.shape[0]))
        processor = self.processor  # read once: `use` may swap it meanwhile
        result = processor.process(frame, captured_at)
        with self._lock:
            self._done_at.append(result.done_at)
            self._model_ms.append(result.model_ms)
            self._latency_ms.append(result.latency_ms)
            self._recent.append(_small_grey(frame))
        self.recorder.add(result.frame, result.done_at)
        return result

    def latest(self) -> LiveResult | None:
        return self._runner.latest()

    # -------------------------------------------------------------- readout, crop, freeze, record

    def stats(self) -> LiveStats:
        r = self._runner
        with self._lock:
            done = list(self._done_at)
            fps = (len(done) - 1) / (done[-1] - done[0]) if len(done) >= 2 and done[-1] > done[0] else 0.0
            if done and self.clock() - done[-1] > 2.0:  # nothing new for a while: not live now
                fps = 0.0
            model = statistics.median(self._model_ms) if self._model_ms else float("nan")
            latency = statistics.median(self._latency_ms) if self._latency_ms else float("nan")
        return LiveStats(fps, model, latency, r.offered, r.processed, r.dropped, r.failed, self._size, r.last_error)

    def propose_crop(self) -> Crop | None:
        """The image region proposed from the last few frames' static border, in full-frame pixels."""
        with self._lock:
            recent = list(self._recent)
        if not recent:
            return None
        small = propose_crop(recent)
        if small is None:
            return None
        s = _SMALL
        return Crop(small.x * s, small.y * s, small.w * s, small.h * s)

    def freeze(self) -> Snapshot | None:
        """The newest segmented frame as a still (None before the first)."""
        r = self.latest()
        if r is None:
            return None
        return Snapshot(r.image.copy(), r.mask.copy(), r.crop, r.model_id, datetime.now(UTC))

    def start_recording(self) -> None:
        self.recorder.start()

    def stop_recording(self) -> bytes | None:
        return self.recorder.stop()

    def close(self) -> None:
        """Stop the worker and drop any recording in progress."""
        self._runner.stop()
        self.recorder.stop()


_SMALL = 4  # the crop proposal looks at every 4th pixel: enough for a region, 16 times less to keep


def _small_grey(frame: np.ndarray) -> np.ndarray:
    sub = frame[::_SMALL, ::_SMALL]
    return np.ascontiguousarray(sub.mean(axis=2).astype(np.uint8) if sub.ndim == 3 else sub)
