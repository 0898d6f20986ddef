"""Record the overlaid live stream into an H.264 mp4, bounded in length.

Results arrive at the model's pace, not a fixed rate; each is written as many times as the
recording's fixed frame rate needs to keep real time, so the mp4 plays at the speed it was seen.
It stops by itself at `max_seconds`; the file lives in a temporary folder until `stop()` reads it.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from nervseg.cine.clip import Mp4Writer


class Recorder:
    """Start, add frames (with their clock time), stop -> mp4 bytes. Thread-safe."""

    def __init__(self, max_seconds: float = 60.0, fps: float = 15.0):
        if max_seconds <= 0 or fps <= 0:
            raise ValueError("max_seconds and fps must be positive")
        self.max_seconds, self.fps = float(max_seconds), float(fps)
        self._lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._writer: Mp4Writer | None = None
        self._t0: float | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0
        self.full = False

    @property
    def max_frames(self) -> int:
        return int(round(self.max_seconds * self.fps))

    @property
    def active(self) -> bool:
        with self._lock:
            return self._tmp is not None

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def start(self) -> None:
        with self._lock:
            self._discard()
            self._tmp = tempfile.TemporaryDirectory(prefix="nervseg-live-")
            self._t0, self._size, self.frames, self.full = None, None, 0, False

    def add(self, rgb: np.ndarray, t: float) -> None:
        """Write `rgb` (seen at clock time `t`) as often as real time needs; ignored when not recording or full."""
        with self._lock:
            if self._tmp is None or self.full:
                return
            if self._writer is None:
                h, w = rgb.shape[:2]
                self._size, self._t0 = (w, h), t
                self._writer = Mp4Writer(Path(self._tmp.name) / "live.mp4", (w, h), self.fps)
            if (rgb.shape[1], rgb.shape[0]) != self._size:
                rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_AREA)
            due = min(self.max_frames, int((t - self._t0) * self.fps) + 1)
            while self.frames < due:
                self._writer.write(rgb)
                self.frames += 1
            self.full = self.frames >= self.max_frames

    def stop(self) -> bytes | None:
        """Finish and return the mp4 (None when nothing was written); the temporary file goes."""
        with self._lock:
            if self._tmp is None:
                return None
            data = None
            if self._writer is not None:
                self._writer.close()
                self._writer = None
                data = (Path(self._tmp.name) / "live.mp4").read_bytes() if self.frames else None
            self._discard()
            return data

    def _discard(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - throwing the recording away anyway
                pass
            self._writer = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
