"""AppTest of the Cine page: upload a clip, process it, scrub, download; bad clips give st.error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "views" / "cine.py")
MODEL_ID = "kaggle-bp-unet"

if str(ROOT) not in sys.path:  # the page imports dashboard from the project root
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def shipped_bp_model():
    from nervseg.models.cards import get_card

    return get_card(MODEL_ID)


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    from test_video import make_clip

    return make_clip(tmp_path_factory.mktemp("cine") / "drift.mp4", n=12, size_wh=(128, 96)).read_bytes()


def player(at) -> dict:
    """The data the page gave its video player (dashboard.player): video, frame rate, the frame to show."""
    import json

    (element,) = at.get("bidi_component")
    return json.loads(element.proto.json)


def new_app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["model_id"] = MODEL_ID
    return at


def test_upload_process_scrub_download(shipped_bp_model, clip_bytes):
    at = new_app().run()
    assert not at.exception
    assert not at.button and any("Upload a clip" in i.value for i in at.info)  # nothing to process yet
    at.file_uploader(key="cine_upload").set_value(("drift.mp4", clip_bytes, "video/mp4")).run()
    assert not at.exception and not at.error
    assert any("12 frames" in m.value for m in at.markdown)
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    results = at.session_state["cine_results"]
    assert len(results) == 1
    result = next(iter(results.values()))
    assert result.n_frames == 12 and result.model_id == MODEL_ID and result.video_mp4
    labels = {m.label: m.value for m in at.metric}
    assert labels["Frames"] == "12" and float(labels["Achieved frames/s"]) > 0
    assert player(at)["mp4"], "the overlay video is not shown"
    downloads = at.get("download_button")
    assert len(downloads) == 2
    # scrubbing shows the chosen frame and reuses the stored result (no recomputation)
    at.slider(key="cine_frame").set_value(7).run()
    assert not at.exception
    assert [c for img in at.get("image") for c in img.captions][0].startswith("Frame 7 ·")
    assert next(iter(at.session_state["cine_results"].values())) is result
    assert at.button[0].disabled  # same settings: nothing to redo
    # a different smoothing re-renders from the stored probabilities: no new segmentation
    raw = next(iter(at.session_state["cine_raw"].values()))
    assert raw.probs.shape[0] == 12 and raw.probs.shape[2:] == tuple(shipped_bp_model.input_size)
    at.slider(key="cine_smoothing").set_value(0.0).run()
    assert not at.exception and not at.error
    assert at.button[0].disabled  # the model is not offered again
    assert next(iter(at.session_state["cine_raw"].values())) is raw
    rendered = list(at.session_state["cine_results"].values())
    assert len(rendered) == 2 and {r.smoothing for r in rendered} == {0.5, 0.0}


def test_corrupt_clip_shows_error(shipped_bp_model, clip_bytes):
    at = new_app().run()
    at.file_uploader(key="cine_upload").set_value(("broken.mp4", clip_bytes[:40] + bytes(3000), "video/mp4")).run()
    assert not at.exception
    assert at.error and "broken.mp4" in at.error[0].value
    assert not at.button  # nothing to process


def test_empty_file_shows_error(shipped_bp_model):
    at = new_app().run()
    at.file_uploader(key="cine_upload").set_value(("empty.mov", b"", "video/quicktime")).run()
    assert not at.exception
    assert at.error and "empty" in at.error[0].value


def test_pick_sample_clip(shipped_bp_model):
    """A shared bp-videos clip can be picked and is decoded (processing 145-220 real frames is too slow for a unit test)."""
    from nervseg.cine import boxes
    from nervseg.cine import clip as video

    clips = boxes.sample_clips()
    if not clips:
        pytest.skip("bp-videos sample clips not found under the data root")
    at = new_app().run()
    at.selectbox(key="cine_sample").set_value(clips[0].name).run()
    assert not at.exception and not at.error
    n = len(video.load_clip(clips[0]))
    assert any(f"{n} frames" in m.value and clips[0].name in m.value for m in at.markdown)
    assert at.button[0].label == "Process clip" and not at.button[0].disabled


def test_the_player_follows_the_slider_and_the_slider_follows_the_player(shipped_bp_model, clip_bytes):
    """One player for the clip (its id changes with the smoothing, so it swaps the video in place at the same
    time); the slider's frame is sent to it as a seek, and the frame it is paused on moves the slider."""
    at = new_app().run()
    at.file_uploader(key="cine_upload").set_value(("drift.mp4", clip_bytes, "video/mp4")).run()
    at.button[0].click().run()
    first = player(at)
    assert first["n"] == 12 and first["fps"] > 0 and first["seek"] == 0
    at.slider(key="cine_frame").set_value(7).run()
    assert player(at)["seek"] == 7 and player(at)["id"] == first["id"]
    at.session_state["cine_player"] = {"frame": 9}  # the viewer paused the video on frame 9
    at.run()
    assert not at.exception
    assert at.slider(key="cine_frame").value == 9
    assert [c for img in at.get("image") for c in img.captions][0].startswith("Frame 9 ·")
    at.slider(key="cine_smoothing").set_value(0.0).run()
    after = player(at)
    assert after["clip"] == first["clip"] and after["id"] != first["id"]
    assert after["seek"] == 9 and at.slider(key="cine_frame").value == 9  # a new smoothing keeps the frame


def test_a_sample_clips_boxes_are_drawn(shipped_bp_model, clip_bytes, tmp_path, monkeypatch):
    import json

    folder = tmp_path / "bp-videos"
    folder.mkdir()
    (folder / "drift.mp4").write_bytes(clip_bytes)
    box = [30, 20, 40, 30]
    (folder / "drift.txt").write_text("\n".join(json.dumps({str(i): {"bounding_boxes": json.dumps([box])}})
                                                for i in (0, 1, 2)))
    monkeypatch.setenv("NERVSEG_DATA", str(tmp_path))
    at = new_app().run()
    at.selectbox(key="cine_sample").set_value("drift.mp4").run()
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    image = at.get("image")[0]
    assert image.captions[0].endswith("with its annotated box")
    assert any("Annotated boxes (green) on 3 frames" in c.value for c in at.caption)
    result = next(iter(at.session_state["cine_results"].values()))
    assert result.extras["boxes"] == {i: [tuple(box)] for i in (0, 1, 2)}  # burned into the video too
    at.slider(key="cine_frame").set_value(5).run()  # no box on frame 5
    assert not at.get("image")[0].captions[0].endswith("with its annotated box")


def test_the_frames_figures_are_one_wrapping_line(shipped_bp_model, clip_bytes):
    at = new_app().run()
    at.file_uploader(key="cine_upload").set_value(("drift.mp4", clip_bytes, "video/mp4")).run()
    at.button[0].click().run()
    at.slider(key="cine_frame").set_value(4).run()
    row = next(iter(at.session_state["cine_results"].values())).stats[4]
    line = next(m.value for m in at.markdown if "mean probability" in m.value)
    assert f"area **{row['nerve_area_px']:,} px**" in line and f"**{row['nerve_components']}** part" in line
