"""The WebRTC side (aiortc / PyAV): frames into a LiveSession, its new overlays back out as a video track.

Incoming frames are taken as fast as they arrive and handed to the session (`offer`: a frame still
waiting is dropped, none is converted before the worker wants it), so no queue builds up in front of
the model. The outgoing track sends each new overlay once, when it is ready: the encoder works at the
model's pace, not the camera's, and the picture is never older than one model call plus the transport.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable

import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from nervseg.live.session import LiveSession

# No STUN/TURN server: ICE uses the host's own addresses only, so nothing outside this machine (or the
# network it serves) is contacted. An empty list, not a missing key: a missing one makes streamlit-webrtc
# fill in Google's STUN server (and aiortc does the same on the server side).
OFFLINE_RTC_CONFIGURATION: dict = {"iceServers": []}
MEDIA_CONSTRAINTS: dict = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}, "frameRate": {"ideal": 30}},
                           "audio": False}
CLOCK_RATE = 90_000  # RTP video clock
TIME_BASE = fractions.Fraction(1, CLOCK_RATE)


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def to_video_frame(rgb: np.ndarray) -> av.VideoFrame:
    """An (H, W, 3) RGB array as the encoder's yuv420p frame. OpenCV converts (BT.601, like PyAV's swscale)
    in ~0.2 ms where PyAV's rgb24 -> yuv420p reformat takes ~2 ms on the event loop's side of each frame;
    odd sizes, which 4:2:0 cannot halve, go through PyAV."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        return av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")


def sink_callback(session: LiveSession) -> Callable[[av.VideoFrame], None]:
    """A sink callback (runs on aiortc's loop for every incoming frame) that offers the frame to `session`."""

    def offer(frame: av.VideoFrame) -> None:
        session.offer(frame, convert=to_rgb)

    return offer


class OverlayTrack(MediaStreamTrack):
    """The session's overlays as an outgoing video track: each new overlay once, as soon as it is ready.

    With `upstream` (a factory of a source track, e.g. a MediaPlayer's video for a clip or a server
    device), the track also pulls that source and offers its frames to the session; without it,
    frames come in through `sink_callback` (the browser's camera).
    """

    kind = "video"

    def __init__(self, session: LiveSession, upstream: Callable[[], MediaStreamTrack] | None = None,
                 poll_s: float = 0.5, idle_s: float = 3.0):
        super().__init__()
        self._asked = time.monotonic()  # when the sender last asked for a frame
        self._idle_s = idle_s
        self.session = session
        self._upstream_factory = upstream
        self._upstream: MediaStreamTrack | None = None
        self._pump: asyncio.Task | None = None
        self._seen = 0
        self._t0: float | None = None
        self._pts = -1
        self._poll_s = poll_s

    async def _pull(self, track: MediaStreamTrack) -> None:
        """Offer the source's frames until the track stops, or until nobody has asked for a frame for
        `idle_s` (the viewer left: its connection closed without stopping this track), then stop the source."""
        try:
            while self.readyState == "live" and time.monotonic() - self._asked < self._idle_s:
                self.session.offer(await track.recv(), convert=to_rgb)
        except MediaStreamError:
            pass
        finally:
            self.stop()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._upstream_factory is not None and self._pump is None:
            self._upstream = self._upstream_factory()
            self._pump = asyncio.ensure_future(self._pull(self._upstream))
        loop = asyncio.get_running_loop()
        got = None
        while got is None:
            self._asked = time.monotonic()
            got = await loop.run_in_executor(None, self.session.wait_newer, self._seen, self._poll_s)
            if self.readyState != "live":
                raise MediaStreamError
        self._seen, result = got
        frame = to_video_frame(result.frame)
        now = time.monotonic()
        self._t0 = now if self._t0 is None else self._t0
        self._pts = max(self._pts + 1, int((now - self._t0) * CLOCK_RATE))
        frame.pts, frame.time_base = self._pts, TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
        if self._upstream is not None:
            self._upstream.stop()
