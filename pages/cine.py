"""Cine page: segment an ultrasound clip frame by frame, play the overlay back, scrub frames.

UI only: the clip is decoded, segmented, smoothed and encoded by `nervseg.video`;
the processed result is kept in st.session_state keyed by clip hash + model +
smoothing + preprocessing, so scrubbing and downloads never recompute.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import streamlit as st

import app_common as ac
from nervseg import video

VIDEO_TYPES = ["mp4", "avi", "mov", "dcm", "dicom"]
CLIP_KEY = "cine_clip"  # {"name", "data", "hash"} of the clip being worked on
FRAMES_KEY = "cine_frames"  # (hash, Frames, decode seconds) of the decoded clip
RESULTS_KEY = "cine_results"  # {result key: ClipResult}, the latest few
MAX_RESULTS = 2  # each result holds every frame and mask in memory


def _set_clip(name: str, data: bytes) -> None:
    st.session_state[CLIP_KEY] = {"name": name, "data": data, "hash": hashlib.sha256(data).hexdigest()}


def _on_upload() -> None:
    f = st.session_state.get("cine_upload")
    if f is not None:
        _set_clip(f.name, f.getvalue())


def _on_sample() -> None:
    name = st.session_state.get("cine_sample")
    path = next((p for p in video.sample_clips() if p.name == name), None)
    if path is not None:
        _set_clip(path.name, path.read_bytes())


def _decoded(clip: dict):
    """(frames, decode seconds) of the clip, decoded once per clip (InputError propagates)."""
    cached = st.session_state.get(FRAMES_KEY)
    if cached and cached[0] == clip["hash"]:
        return cached[1], cached[2]
    st.session_state.pop(FRAMES_KEY, None)
    with st.spinner(f"Reading {ac.md_escape(clip['name'])}…"):
        t0 = time.perf_counter()
        frames = video.load_clip(clip["data"], clip["name"])
        seconds = time.perf_counter() - t0
    st.session_state[FRAMES_KEY] = (clip["hash"], frames, seconds)
    return frames, seconds


def _store(key: str, result) -> None:
    results = st.session_state.setdefault(RESULTS_KEY, {})
    results[key] = result
    while len(results) > MAX_RESULTS:
        results.pop(next(iter(results)))


def _process(frames, decode_s: float, card, smoothing: float, preprocess):
    seg = ac.get_segmenter(card.id)
    bar = st.progress(0.0, text="Segmenting frames…")
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        left = video.eta_seconds(done, total, time.perf_counter() - t0)
        eta = f" · about {left:.0f} s left" if left is not None else ""
        bar.progress(done / total, text=f"Frame {done} of {total}{eta}")

    result = video.process_clip(seg, frames, smoothing=smoothing, preprocess=preprocess, progress=progress)
    result.seconds["decode"] = decode_s
    bar.progress(1.0, text=f"Done: {result.n_frames} frames in {time.perf_counter() - t0:.1f} s")
    return result


st.title("Cine loops")
st.caption(
    "Segment every frame of an ultrasound clip, play the overlay back and scrub through it. "
    + ac.DISCLAIMER
)

card = ac.current_card()
if card is None:
    ac.no_models_notice()
    st.stop()

up, sample = st.columns([3, 2])
with up:
    st.file_uploader(
        "Upload a clip (MP4, AVI, MOV or multi-frame DICOM)", type=VIDEO_TYPES, key="cine_upload",
        on_change=_on_upload,
    )
with sample:
    clips = video.sample_clips()
    if clips:
        st.selectbox(
            "…or pick a sample clip (brachial plexus, shared data)", [p.name for p in clips], index=None,
            placeholder="Choose a clip", key="cine_sample", on_change=_on_sample,
        )

clip = st.session_state.get(CLIP_KEY)
if not clip:
    st.info("Upload a clip or pick a sample to start.", icon=":material/movie:")
    st.stop()

try:
    frames, decode_s = _decoded(clip)
except ac.USER_ERRORS as e:
    ac.show_input_error(e)
    st.stop()

n, h, w = frames.frames.shape
st.markdown(
    f"**{ac.md_escape(frames.name)}** · {n} frames · {frames.fps:g} frames/s · {n / frames.fps:.1f} s · {w}x{h} px"
)
if "nerve" not in card.classes:
    st.warning(f"{card.name} has no nerve class; the chart shows its first structure.")

left, right = st.columns([2, 1])
with left:
    smoothing = st.slider(
        "Temporal smoothing", 0.0, 0.95, 0.5, 0.05, key="cine_smoothing",
        help="Exponential moving average of the class probabilities over frames: higher = steadier "
             "outlines but slower to follow movement; 0 = each frame on its own.",
    )
with right:
    st.markdown(f"**Model:** {card.name}  \n**Preprocessing:** {ac.preprocess_summary(card)}")

preprocess = ac.current_preprocess()
pre_key = json.dumps(preprocess.to_dict(), sort_keys=True) if preprocess is not None else ""
key = f"{clip['hash']}|{card.id}|{card.weights_sha256}|{smoothing:.2f}|{pre_key}"
results = st.session_state.get(RESULTS_KEY, {})

if st.button("Process clip", type="primary", icon=":material/play_arrow:", disabled=key in results):
    try:
        _store(key, _process(frames, decode_s, card, smoothing, preprocess))
    except ac.USER_ERRORS as e:
        ac.show_input_error(e)
        st.stop()
    results = st.session_state[RESULTS_KEY]

result = results.get(key)
if result is None:
    st.info("Press **Process clip** to segment every frame with these settings.", icon=":material/info:")
    st.stop()

structure = "nerve" if "nerve" in result.classes else result.classes[-1]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Frames", result.n_frames)
c2.metric("Achieved frames/s", f"{result.achieved_fps:.1f}",
          help="End to end on this machine: decode + predict + smoothing + overlay + video encoding.")
c3.metric("Clip frames/s", f"{result.fps:g}")
c4.metric("Processing time", f"{result.processing_seconds:.1f} s")

if result.video_mp4:
    st.video(result.video_mp4, format="video/mp4", loop=True)

i = st.slider("Frame", 0, result.n_frames - 1, 0, key="cine_frame") if result.n_frames > 1 else 0
row = result.stats[i]
st.image(result.overlay_frame(i), caption=f"Frame {i} · {row['time_s']:.2f} s", width="content")
st.markdown(ac.legend_html(result.classes), unsafe_allow_html=True)
m1, m2, m3 = st.columns(3)
m1.metric(f"{structure} area", f"{row[f'{structure}_area_px']} px")
m2.metric(f"{structure} confidence", ac.fmt(row[f"{structure}_confidence"], 2))
m3.metric(f"{structure} components", row[f"{structure}_components"])

st.plotly_chart(video.timeline_figure(result.stats, structure, current=i), key="cine_timeline")

stem = Path(result.name).stem
d1, d2 = st.columns(2)
if result.video_mp4:
    d1.download_button("Download overlay video (mp4)", result.video_mp4, f"{stem}-{result.model_id}-overlay.mp4",
                       "video/mp4", icon=":material/download:")
d2.download_button("Download per-frame figures (CSV)", result.csv_bytes(), f"{stem}-{result.model_id}-frames.csv",
                   "text/csv", icon=":material/download:")
