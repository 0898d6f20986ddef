"""Newest frame wins: one worker thread, one frame waiting at most, the newest result kept.

A live stream delivers frames at the camera's rate whatever the model's speed. A queue in front
of a slow model grows without end, and the picture falls further behind the probe with every
second. Here a frame offered while the worker is busy replaces the one waiting (the stale frame
is dropped and counted), so the worker always starts on the newest frame and the state is one
frame in, one result out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")
log = logging.getLogger(__name__)


class LatestOnlyRunner(Generic[In, Out]):
    """Runs `fn` on a worker thread over the newest offered item; `latest()` is its newest result."""

    def __init__(self, fn: Callable[[In], Out], name: str = "nervseg-live"):
        self._fn = fn
        self._cond = threading.Condition()
        self._pending: In | None = None
        self._has_pending = False
        self._latest: Out | None = None
        self._seq = 0  # results so far: a reader waits for one newer than it has seen
        self._stopped = False
        self.offered = self.processed = self.dropped = self.failed = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def offer(self, item: In) -> None:
        """Hand over a new item; one still waiting is dropped (never queued)."""
        with self._cond:
            if self._stopped:
                return
            self.offered += 1
            if self._has_pending:
                self.dropped += 1
            self._pending, self._has_pending = item, True
            self._cond.notify_all()

    def latest(self) -> Out | None:
        with self._cond:
            return self._latest

    def wait_newer(self, seen: int, timeout: float) -> tuple[int, Out] | None:
        """(sequence number, result) of a result newer than number `seen`, waiting up to `timeout` s;
        None on timeout or once stopped."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seen or self._stopped, timeout)
            if self._seq > seen and not self._stopped:
                return self._seq, self._latest
            return None

    @property
    def waiting(self) -> int:
        """Items offered but not started: 0 or 1."""
        with self._cond:
            return int(self._has_pending)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._has_pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
            try:
                out = self._fn(item)
            except Exception as e:  # noqa: BLE001 - one bad frame must not end the stream; counted and logged
                with self._cond:
                    self.failed += 1
                    self.last_error = f"{type(e).__name__}: {e}"
                log.warning("live frame failed: %s", e, exc_info=self.failed == 1)
                continue
            with self._cond:
                self._latest = out
                self.processed += 1
                self._seq += 1
                self._cond.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker (the frame in progress finishes; the waiting one is dropped)."""
        with self._cond:
            self._stopped = True
            self._pending, self._has_pending = None, False
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
