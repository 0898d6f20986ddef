"""Live: the scanner's video (a capture card seen as a camera, a server device, or a clip played as if live)
segmented frame by frame, the overlay drawn back in place. UI only: frames go through nervseg.live."""

from __future__ import annotations

import streamlit as st
from streamlit_webrtc import WebRtcMode, create_video_sink_track, webrtc_streamer

from dashboard import common as ac
from dashboard import live
from dashboard.scan import _set_current
from nervseg.live.processor import VIEWS
from nervseg.live.region import Crop
from nervseg.live.stream import MEDIA_CONSTRAINTS, OFFLINE_RTC_CONFIGURATION, sink_callback

st.title("Live")
st.caption("The scanner's video segmented as the probe moves: connect the scanner's video output through a "
           "USB capture card (the browser sees it as a camera) and press **Start**. " + ac.DISCLAIMER)

card = ac.require_card()

options = live.source_options()
src_col, view_col = st.columns([3, 2])
with src_col:
    label = st.selectbox("Source", list(options), key="live_source",
                         help="A clip or a server device is played by the server and sent to this page as a "
                              "stream, through the same processing as a camera.")
with view_col:
    view = st.segmented_control("View", list(VIEWS), default="overlay", key="live_view") or "overlay"
sizes = live.offered_sizes(card)
size = sizes[0]
size_col, fast_col = st.columns(2)
if len(sizes) > 1:
    size = size_col.select_slider(
        "Model input size (px)", sizes[::-1], value=sizes[0], key=f"live_size_{card.id}",
        format_func=lambda v: f"{v} (the card's)" if v == sizes[0] else str(v),
        help="Smaller is faster but less accurate: the model was trained at the card's size.")
fast_why = live.fast_problem(card)
fast = fast_col.toggle("Fast model (8-bit)", value=fast_why is None, disabled=fast_why is not None,
                       key=f"live_fast_{card.id}",
                       help="The same network with 8-bit weights and activations: about three times faster on "
                            "this computer's processor, with masks very close to the full model's. "
                            + (ac.int8_agreement(card) if fast_why is None else f"Not available: {fast_why}"))
session = live.live_session(card, size, fast=fast and fast_why is None)
a_col, s_col = st.columns(2)
alpha = a_col.slider("Overlay opacity", 0.1, 0.9, 0.45, 0.05, key="live_alpha")
smoothing = s_col.slider("Temporal smoothing", 0.0, 0.95, 0.0, 0.05, key="live_smoothing",
                         help="The Cine page's rule: an exponential moving average of the class probabilities "
                              "over frames; higher = steadier outlines, slower to follow the probe.")
session.update(live.settings(view, alpha, smoothing))

source = options[label]
try:
    track = live.overlay_track(session, label, source)
except (OSError, ValueError) as e:  # a missing device or an unreadable clip
    ac.show_input_error(e)
    st.stop()

playing = False
if live.streaming_available():
    ctx = webrtc_streamer(
        key=f"live-{'camera' if source is None else 'server'}",
        mode=WebRtcMode.SENDRECV if source is None else WebRtcMode.RECVONLY,
        rtc_configuration=OFFLINE_RTC_CONFIGURATION,
        media_stream_constraints=MEDIA_CONSTRAINTS,
        # the camera's frames go to the session (newest wins); the track sends back each new overlay once
        sink_video_track=create_video_sink_track(sink_callback(session), key="live-sink") if source is None else None,
        source_video_track=track,
        video_html_attrs={"style": {"width": "100%"}, "autoPlay": True, "controls": False, "muted": True},
        translations={"start": "Start", "stop": "Stop"},
    )
    playing = ctx.state.playing
    if not playing and not ctx.state.signalling:
        live.drop_track()  # a stopped stream: a server source stops pulling; Start makes a new track
else:
    st.info("The live stream needs the dashboard's server (`make app`); this run has none.",
            icon=":material/videocam_off:")
st.markdown(ac.legend_html(card.classes), unsafe_allow_html=True)


@st.fragment(run_every=1.0)
def readout() -> None:
    """Frames/s shown, model ms, latency and dropped frames, refreshed every second."""
    s = session.stats()
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Overlay frames/s", f"{s.fps:.1f}", help="New overlaid frames per second (the newest frame wins).")
    c2.metric("Model ms / frame", ac.fmt(s.model_ms, 0), help="Normalisation, network and post-processing.")
    c3.metric("Server latency ms", ac.fmt(s.latency_ms, 0),
              help="Frame arrival on the server to its overlay ready (median); the network and browser add to it.")
    c4.metric("Frames dropped", f"{s.dropped} of {s.offered}",
              help="Frames that arrived while the model was busy: skipped, so the picture never lags behind.")
    if s.frame_size:
        crop = live.current_crop()
        st.caption(f"Incoming {s.frame_size[0]}x{s.frame_size[1]} · {card.name} at {size} px"
                   + (" (8-bit)" if live.is_fast(session) else "") + " · region: "
                   + (crop.as_text() if crop else "the whole frame")
                   + (f" · recording {session.recorder.seconds:.0f} s of at most {session.recorder.max_seconds:.0f} s"
                      + (" (full)" if session.recorder.full else "") if session.recorder.active else ""))
    if s.last_error:
        st.warning(f"Some frames could not be segmented: {ac.md_escape(s.last_error)}", icon=":material/warning:")


readout()

region, actions = st.columns(2)
with region:
    st.markdown("**Image region** (kept for this session)")
    r1 = r2 = st.container(horizontal=True)  # buttons as wide as their labels, wrapping, never cut
    if r1.button("Propose from the stream", icon=":material/crop_free:", disabled=not playing,
                 help="The area that changes from frame to frame; the scanner's interface around it stays still."):
        proposed = session.propose_crop()
        if proposed is None:
            st.warning("No image region stands out yet: let it run a second with the probe moving, then try again.")
        live.set_crop(proposed)
    if r2.button("Whole frame", icon=":material/fullscreen:"):
        live.set_crop(None)
    with st.expander("Set it by hand (pixels)"):
        crop = live.current_crop() or Crop(0, 0, *(session.stats().frame_size or (640, 480)))
        cx = st.columns(4)
        values = [cx[i].number_input(n, 0, 4096, v, key=f"live_crop_{n}")
                  for i, (n, v) in enumerate(zip(("x", "y", "width", "height"), (crop.x, crop.y, crop.w, crop.h), strict=True))]
        if st.button("Use this region"):
            live.set_crop(Crop(*(int(v) for v in values)))
    session.update(live.settings(view, alpha, smoothing))
with actions:
    st.markdown("**Freeze and record**")
    f1 = f2 = st.container(horizontal=True)  # buttons as wide as their labels, wrapping, never cut
    if f1.button("Freeze: open on Segment", icon=":material/photo_camera:", type="primary",
                 disabled=not playing and session.latest() is None,
                 help="The current frame's image region opens on Segment for measurement and export (segmented "
                      "there by the sidebar's model at the card's size, without temporal smoothing)."):
        snap = session.freeze()
        if snap is None:
            st.warning("No frame has been segmented yet: wait for the overlay, then freeze.")
        else:
            _set_current(snap.name, snap.image_png(),
                         source=f"frozen live frame, {snap.crop.as_text()}, {snap.model_id}, {snap.taken:%H:%M:%S} UTC")
            st.switch_page("views/segment.py")
    if session.recorder.active:
        if f2.button("Stop recording", icon=":material/stop_circle:"):
            st.session_state["live_recording"] = session.stop_recording()
            st.rerun()
    elif f2.button("Record", icon=":material/fiber_manual_record:", disabled=not playing,
                   help=f"An mp4 of the overlaid stream, at most {session.recorder.max_seconds:.0f} s."):
        session.start_recording()
        st.rerun()
    video = st.session_state.get("live_recording")
    if video:
        st.download_button("Recording (mp4)", video, f"live-{card.id}.mp4", "video/mp4", icon=":material/download:")

with st.expander("Offline, and which browsers may use the camera"):
    st.markdown(
        "No STUN or TURN server is used and nothing outside this machine is contacted: the browser and the "
        "server connect over this machine's own addresses. Browsers allow the camera only on a secure page: "
        "`http://localhost` (or 127.0.0.1) on the machine running the app, or HTTPS behind a reverse proxy when "
        "serving a department network (see the README). A server device (`NERVSEG_LIVE_DEVICE=/dev/video0`) "
        "or a clip played as if live needs no camera permission.")
