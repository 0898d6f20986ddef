"""Streamlit glue for the Live page: one LiveSession per browser session and model, its settings and sources.

The session (worker thread, smoothing state, recording) lives in st.session_state under LIVE_KEY, one per
browser session; another model or size swaps its processor, so a running stream goes on with it.
"""

from __future__ import annotations

import importlib.util

import streamlit as st

from dashboard import common as ac
from nervseg.inference import engines
from nervseg.inference.segmenter import Segmenter
from nervseg.live import sources
from nervseg.live.processor import FrameProcessor, LiveSettings, live_sizes
from nervseg.live.region import Crop
from nervseg.live.session import LiveSession
from nervseg.live.stream import OverlayTrack
from nervseg.models.cards import ModelError

LIVE_KEY = "live_session"  # ((model id, weights sha256, live size or None, engine or None), the session's LiveSession)
TRACK_KEY = "live_track"  # (source label, OverlayTrack) of the stream being shown
CROP_KEY = "live_crop"  # the image region kept for the browser session: Crop or None (the whole frame)
CAMERA = "Camera in this browser (a capture card shows up as a camera)"


FAST_ENGINE = "onnx-int8"  # the card's int8 graph (nervseg.inference.quantize): about 3x faster on the CPU


@st.cache_resource(show_spinner="Loading the model for live use…", max_entries=6)
def _live_segmenter(model_id: str, weights_sha256: str, size: int | None, engine: str | None) -> Segmenter:
    """The card's model at a smaller square input size and/or on another engine (shared by every session;
    the card's own size on the default engine is the pool's)."""
    return Segmenter(ac.card_by_id(model_id), engine=engine, input_size=(size, size) if size else None)


def _segmenter(card, size: int | None, engine: str | None) -> Segmenter:
    """The pool's model for the card's own size on the default engine, else a live one (cached)."""
    if size is None and engine is None:
        return ac.get_segmenter(card.id)
    return _live_segmenter(card.id, card.weights_sha256, size, engine)


def is_fast(session: LiveSession) -> bool:
    """Whether the session runs an 8-bit graph."""
    return session.processor.segmenter.engine_name == FAST_ENGINE


def fast_problem(card) -> str | None:
    """Why the card's int8 graph cannot run here (None when it can)."""
    return engines.problem(FAST_ENGINE, card)


def offered_sizes(card) -> list[int]:
    """The live sizes for this card: all of them where another size can run (the onnx package, or torch),
    else the card's own only (the lean app install has neither)."""
    sizes = live_sizes(card.input_size)
    if importlib.util.find_spec("onnx") is None and importlib.util.find_spec("torch") is None:
        return sizes[:1]
    return sizes


def live_session(card, size: int | None = None, fast: bool = False) -> LiveSession:
    """The browser session's LiveSession, switched to this model, input size and engine (`fast`: the int8
    graph); a running stream goes on with it."""
    own = size is None or size == live_sizes(card.input_size)[0]
    engine = FAST_ENGINE if fast else None
    key = (card.id, card.weights_sha256, None if own else size, engine)
    held = st.session_state.get(LIVE_KEY)
    if held and held[0] == key:
        return held[1]
    try:
        seg = _segmenter(card, None if own else size, engine)
    except ModelError as e:  # e.g. an 8-bit graph that does not load here: the full model still runs
        if engine is None:
            raise
        st.warning(f"The fast 8-bit model cannot run here, so Live uses the full model: {ac.md_escape(str(e))}",
                   icon=":material/warning:")
        key = key[:-1] + (None,)
        if held and held[0] == key:
            return held[1]
        seg = _segmenter(card, None if own else size, None)
    if held:
        held[1].use(FrameProcessor(seg))
        session = held[1]
    else:
        session = LiveSession(FrameProcessor(seg))
    st.session_state[LIVE_KEY] = (key, session)
    return session


def overlay_track(session: LiveSession, label: str, source: sources.Source | None) -> OverlayTrack:
    """The outgoing track for this source: kept while it is live, a new one after a stop or a new source."""
    held = st.session_state.get(TRACK_KEY)
    if held and held[0] == label and held[1].session is session and held[1].readyState == "live":
        return held[1]
    drop_track()
    upstream = sources.resolve(source).video_track if source is not None else None
    track = OverlayTrack(session, upstream)
    st.session_state[TRACK_KEY] = (label, track)
    return track


def drop_track() -> None:
    """Stop the outgoing track (and a server source it pulls), e.g. when the stream stops."""
    held = st.session_state.pop(TRACK_KEY, None)
    if held:
        held[1].stop()


def source_options() -> dict[str, sources.Source | None]:
    """Label -> source: the browser's camera (None), the server's device when configured, clips as if live."""
    out: dict[str, sources.Source | None] = {CAMERA: None}
    dev = sources.device_source()
    if dev is not None:
        out[dev.label] = dev
    for s in sources.clip_sources():
        out[s.label] = s
    return out


def current_crop() -> Crop | None:
    return st.session_state.get(CROP_KEY)


def set_crop(crop: Crop | None) -> None:
    st.session_state[CROP_KEY] = crop


def settings(view: str, alpha: float, smoothing: float) -> LiveSettings:
    return LiveSettings(view=view, alpha=alpha, smoothing=smoothing, crop=current_crop(),
                        preprocess=ac.current_preprocess())


def streaming_available() -> bool:
    """Whether streamlit-webrtc can run here: it looks its browser session up in the running Streamlit
    server, which a script run outside one (Streamlit's AppTest) does not have."""
    from streamlit_webrtc.session_info import get_this_session_info

    try:
        return get_this_session_info() is not None
    except (AttributeError, RuntimeError):
        return False
