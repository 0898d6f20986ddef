"""Cine page: segment an ultrasound clip frame by frame, play the overlay back, scrub frames.

UI only: the clip is decoded by `nervseg.cine.clip`, segmented once by `nervseg.cine.view`
(probabilities kept at model resolution, keyed by clip hash + model + preprocessing), and
rendered at the chosen smoothing from those (keyed by + smoothing): a new smoothing
re-renders in seconds without the model, and scrubbing (a fragment) touches neither. The
player (`dashboard.player`) keeps playing through both; the frame slider seeks it, and
pausing or seeking the video moves the slider. A sample clip's box annotations are drawn.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import streamlit as st

from dashboard import common as ac
from dashboard.player import cine_player
from nervseg.cine import boxes
from nervseg.cine import clip as video
from nervseg.cine import view as cine_view
from nervseg.display import viz
from nervseg.io.readers import VIDEO_SUFFIXES

VIDEO_TYPES = [s.lstrip(".") for s in VIDEO_SUFFIXES]
CLIP_KEY = "cine_clip"  # {"name", "data", "hash"} of the clip being worked on
FRAMES_KEY = "cine_frames"  # (hash, Frames, decode seconds) of the decoded clip
RAW_KEY = "cine_raw"  # {segmentation key: RawClip}, the latest few
RESULTS_KEY = "cine_results"  # {segmentation key|smoothing: ClipResult}, the latest few
MAX_RESULTS = 2  # each holds every frame (and mask) in memory


def _set_clip(name: str, data: bytes, boxes_file: str | None = None) -> None:
    st.session_state[CLIP_KEY] = {"name": name, "data": data, "hash": hashlib.sha256(data).hexdigest(),
                                  "boxes_file": boxes_file}
    st.session_state.pop("cine_frame", None)


def _on_upload() -> None:
    f = st.session_state.get("cine_upload")
    if f is not None:
        _set_clip(f.name, f.getvalue())


def _on_sample() -> None:
    name = st.session_state.get("cine_sample")
    path = next((p for p in boxes.sample_clips() if p.name == name), None)
    if path is not None:
        txt = path.with_suffix(".txt")
        _set_clip(path.name, path.read_bytes(), str(txt) if txt.is_file() else None)


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


def _store(store: str, key: str, value) -> None:
    items = st.session_state.setdefault(store, {})
    items[key] = value
    while len(items) > MAX_RESULTS:
        items.pop(next(iter(items)))


def _segment(frames, decode_s: float, card, preprocess):
    """The model over every frame, once per clip + model + preprocessing (progress bar with ETA)."""
    seg = ac.get_segmenter(card.id)
    bar = st.progress(0.0, text="Segmenting frames…")
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        left = video.eta_seconds(done, total, time.perf_counter() - t0)
        eta = f" · about {left:.0f} s left" if left is not None else ""
        bar.progress(done / total, text=f"Frame {done} of {total}{eta}")

    raw = cine_view.segment_clip(seg, frames, preprocess=preprocess, progress=progress)
    raw.seconds["decode"] = decode_s
    bar.progress(1.0, text=f"Segmented {raw.n_frames} frames in {time.perf_counter() - t0:.1f} s")
    return raw


def _clip_boxes(clip: dict) -> dict[int, list] | None:
    """The clip's box annotations (a sample clip's .txt beside it), or None; an unreadable file is named."""
    if not clip.get("boxes_file"):
        return None
    try:
        return boxes.read_boxes(clip["boxes_file"]) or None
    except ac.USER_ERRORS as e:
        st.warning(f"The clip's box annotations cannot be read ({ac.md_escape(e)}); shown without them.")
        return None


def _rendered(raw_key: str, smoothing: float, clip_boxes: dict | None):
    """The clip at this smoothing, rendered from the stored probabilities (no model call)."""
    key = f"{raw_key}|{smoothing:.2f}|{'boxes' if clip_boxes else ''}"
    results = st.session_state.setdefault(RESULTS_KEY, {})
    if key not in results:
        with st.spinner(f"Smoothing {smoothing:.2f}: rendering masks and video…"):
            _store(RESULTS_KEY, key, cine_view.render(st.session_state[RAW_KEY][raw_key], smoothing, boxes=clip_boxes))
    return key, st.session_state[RESULTS_KEY][key]


@st.fragment
def player_and_scrubber(result, result_key: str, clip_hash: str, structure: str) -> None:
    """The player, the frame slider, the frame and its figures: re-run alone (the rest of the page stays).

    The slider seeks the player; pausing or seeking the player moves the slider.
    """
    player, scrub = st.columns(2)
    last = result.n_frames - 1
    with player:
        if result.video_mp4:
            shown = st.session_state.get("cine_frame", 0) if result.n_frames > 1 else None
            frame = cine_player("cine_player", clip_hash, result_key, result.video_mp4, result.fps, result.n_frames,
                                shown)
            if frame is not None and frame != st.session_state.get("_cine_player_frame"):
                st.session_state["_cine_player_frame"] = frame  # the video moved: the slider follows
                if result.n_frames > 1:
                    st.session_state["cine_frame"] = min(frame, last)
        st.markdown(ac.legend_html(result.classes)
                    + (" &nbsp;·&nbsp; <span style='display:inline-block;width:0.9em;height:0.9em;border:2px solid "
                       "#00ff00;margin:0 0.3em 0 0.8em;vertical-align:middle'></span>annotated box"
                       if result.extras.get("boxes") else ""), unsafe_allow_html=True)
    with scrub:
        # a one-frame clip is a still: a slider needs min < max
        i = st.slider("Frame", 0, last, key="cine_frame") if result.n_frames > 1 else 0
        row = result.stats[i]
        rgb = result.overlay_frame(i)
        frame_boxes = (result.extras.get("boxes") or {}).get(i)
        if frame_boxes:
            rgb = viz.draw_boxes(rgb, frame_boxes)
        st.image(rgb, caption=f"Frame {i} · {row['time_s']:.2f} s" + (" · with its annotated box" if frame_boxes else ""),
                 width="stretch")
        scrubber_figures(result, row, i, structure)


def scrubber_figures(result, row: dict, i: int, structure: str) -> None:
    """The frame's figures in one line that wraps (three metrics side by side cut their values at 1024 px)."""
    parts = row[f"{structure}_components"]
    st.markdown(f"**{structure}** area **{row[f'{structure}_area_px']:,} px** · mean probability "
                f"**{ac.fmt(row[f'{structure}_confidence'], 2)}** · **{parts}** part{'s' if parts != 1 else ''}",
                help="Mean probability over the marked pixels (not a calibrated presence probability).")
    st.plotly_chart(viz.timeline_figure(result.stats, structure, current=i), key="cine_timeline", width="stretch")


st.title("Cine loops")
st.caption(
    "Segment every frame of an ultrasound clip, play the overlay back and scrub through it. "
    + ac.DISCLAIMER
)

card = ac.require_card()
ac.lab_notice("cine")

up, sample = st.columns([3, 2])
with up:
    st.file_uploader(
        "Upload a clip (MP4, AVI, MOV or multi-frame DICOM)", type=VIDEO_TYPES, key="cine_upload",
        on_change=_on_upload,
    )
with sample:
    clips = boxes.sample_clips()
    if clips:
        st.selectbox(
            "…or pick a sample clip (brachial plexus, shared data)", [p.name for p in clips], index=None,
            placeholder="Choose a clip", key="cine_sample", on_change=_on_sample,
        )

clip = st.session_state.get(CLIP_KEY)
if not clip:
    st.info("Upload a clip to start (sample clips appear here when the shared data folder is present).",
            icon=":material/movie:")
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
raw_key = f"{clip['hash']}|{card.id}|{card.weights_sha256}|{pre_key}"
raws = st.session_state.get(RAW_KEY, {})

if st.button("Process clip", type="primary", icon=":material/play_arrow:", disabled=raw_key in raws,
             help="Runs the model over every frame once; smoothing and scrubbing then reuse the result."):
    try:
        _store(RAW_KEY, raw_key, _segment(frames, decode_s, card, preprocess))
    except ac.USER_ERRORS as e:
        ac.show_input_error(e)
        st.stop()
    raws = st.session_state[RAW_KEY]

if raw_key not in raws:
    st.info("Press **Process clip** to segment every frame with this model.", icon=":material/info:")
    st.stop()
clip_boxes = _clip_boxes(clip)
try:
    result_key, result = _rendered(raw_key, smoothing, clip_boxes)
except video.VideoEncodeError as e:
    ac.show_input_error(e)
    st.stop()

structure = "nerve" if "nerve" in result.classes else result.classes[-1]
player_and_scrubber(result, result_key, clip["hash"], structure)
if clip_boxes:
    agree = boxes.box_agreement(result.masks, clip_boxes, result.classes.index(structure))
    st.caption(f"Annotated boxes (green) on {agree['annotated_frames']} frames: the model's {structure} touches a box "
               f"on {ac.fmt(agree['frames_overlap_share'] * 100, 0)}% of them, and "
               f"{ac.fmt(agree['inside_share'] * 100, 0)}% of its marked pixels lie inside the boxes "
               "(boxes, not outlines: a rough check).")
stem = Path(result.name).stem
downloads = st.container(horizontal=True)  # buttons as wide as their labels, wrapping, never cut
if result.video_mp4:
    downloads.download_button("Overlay video (mp4)", result.video_mp4, f"{stem}-{result.model_id}-overlay.mp4",
                              "video/mp4", icon=":material/download:", help="With the legend (and boxes) burned in.")
downloads.download_button("Per-frame figures (CSV)", result.csv_bytes(), f"{stem}-{result.model_id}-frames.csv",
                          "text/csv", icon=":material/download:")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Frames", result.n_frames)
c2.metric("Achieved frames/s", f"{result.achieved_fps:.1f}",
          help="End to end on this machine: decode + predict + smoothing + overlay + video encoding.")
c3.metric("Clip frames/s", f"{result.fps:g}")
c4.metric("Processing time", f"{result.processing_seconds:.1f} s")
