"""The WebRTC side: PyAV video frames in and out of a LiveSession, and the offline connection settings.

streamlit-webrtc calls the callback on its media thread for every incoming frame; the callback
must return quickly, so it only converts the frame, offers it to the session's worker and returns
the newest overlay (`LiveSession.submit`).
"""

from __future__ import annotations

from collections.abc import Callable

import av

from nervseg.live.session import LiveSession

# No STUN/TURN server: ICE uses the host's own addresses only, so nothing outside this machine (or the
# network it serves) is contacted. An empty list, not a missing key: a missing one makes streamlit-webrtc
# fill in Google's STUN server (and aiortc does the same on the server side).
OFFLINE_RTC_CONFIGURATION: dict = {"iceServers": []}
MEDIA_CONSTRAINTS: dict = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}, "frameRate": {"ideal": 30}},
                           "audio": False}


def frame_callback(session: LiveSession) -> Callable[[av.VideoFrame], av.VideoFrame]:
    """A `video_frame_callback` that segments through `session`."""

    def callback(frame: av.VideoFrame) -> av.VideoFrame:
        out = session.submit(frame.to_ndarray(format="rgb24"))
        return av.VideoFrame.from_ndarray(out, format="rgb24")

    return callback
