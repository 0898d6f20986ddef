"""AppTest of the pages with hostile files, malformed cards and tampered weights: errors, never exceptions.

Runs on random-weight 64x64 models (conftest) copied into a temp models folder,
so it needs neither shipped models nor real data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import hostile
import numpy as np
import pytest
from apptest_checks import assert_clean, errors
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "streamlit_app.py"
INJECT = "![x](http://127.0.0.1:9/track.png)[link](http://127.0.0.1:9)"


@pytest.fixture
def models(random_model_dir, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for p in random_model_dir.iterdir():
        shutil.copy(p, folder / p.name)
    monkeypatch.setenv("NERVSEG_MODELS", str(folder))
    return folder


def run_app(page: str, sidebar: list | None = None, **state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if sidebar is not None:
        sidebar.extend([w.value for w in at.sidebar.warning] + [s.value for s in at.sidebar.selectbox]
                       + [o for r in at.sidebar.radio for o in r.options] + [r.value for r in at.sidebar.radio])
    at.switch_page(page).run()
    return at


def all_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + errors(at) + [w.value for w in at.warning]
    return "\n".join(str(p) for p in parts)


from dashboard.pages import PAGES as _APP_PAGES  # noqa: E402

PAGES = [p.path for p in _APP_PAGES]


@pytest.mark.parametrize("content", [b'{"id": "x", "name": "\xff"}', b'{"id": "bad", "name": "n", '
                                     b'"architecture": "unet", "classes": ["bg", "nerve"], "input_size": "abc"}'])
def test_a_malformed_card_is_named_and_the_other_models_stay(models, content):
    (models / "bad.json").write_bytes(content)
    for page in PAGES:
        side: list = []
        at = run_app(page, sidebar=side, model_id="random-unet")
        assert_clean(at)
        assert any("bad" in str(s) and "left out" in str(s) for s in side), side
        assert "random-unet" in side, side  # the good models are still offered
        assert not any("No trained models yet" in i.value for i in at.info), page


def test_tampered_weights_give_an_error_on_segment_and_metrics(models):
    weights = models / "random-unet.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    img = hostile.png((np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8))
    mask = hostile.png(np.zeros((64, 64), np.uint8))
    at = run_app("views/segment.py", model_id="random-unet")
    at.file_uploader[0].set_value(("scan.png", img, "image/png")).run()
    assert_clean(at)
    assert any("does not match its card" in e for e in errors(at)), errors(at)
    at = run_app("views/metrics.py", model_id="random-unet")
    at.multiselect(key="metrics_models").set_value(["random-unet"]).run()
    at.radio(key="metrics_mode").set_value("Batch: several files or a zip").run()
    at.file_uploader(key="metrics_batch").set_value([("a.png", img, "image/png"),
                                                      ("a_mask.png", mask, "image/png")]).run()
    assert_clean(at)
    assert any("does not match its card" in e for e in errors(at)), errors(at)


@pytest.mark.parametrize("page", ["views/segment.py", "views/compare.py", "views/lab.py"])
def test_names_are_escaped_in_errors_and_captions(models, page):
    at = run_app(page, model_id="random-unet")
    at.file_uploader[0].set_value((f"{INJECT}.png", b"not an image", "image/png")).run()
    assert_clean(at)
    assert errors(at) and all("](http" not in e for e in errors(at)), errors(at)
    assert any(r"\!\[x\]" in e for e in errors(at)), errors(at)
    img = hostile.png(np.full((64, 64), 90, np.uint8))
    at.file_uploader[0].set_value((f"{INJECT}.png", img, "image/png")).run()
    assert_clean(at)
    text = all_text(at)
    assert "](http" not in text and r"\!\[x\]" in text, text


def test_deflate_dicom_bomb_upload_is_refused_on_segment(models):
    at = run_app("views/segment.py", model_id="random-unet")
    at.file_uploader[0].set_value(("bomb.dcm", hostile.deflate_dicom(1000, 1000, 2100), "application/dicom")).run()
    assert_clean(at)
    assert any("bomb.dcm" in e and "expand" in e for e in errors(at)), errors(at)


@pytest.mark.parametrize("name,payload,reason", [
    ("overlap.zip", lambda: hostile.zip_overlapping(copies=20, inflated=20 * hostile.MIB), "overlap"),
    ("lie.zip", lambda: hostile.zip_lying_member(declared=hostile.MIB, inflated=256 * hostile.MIB), "no image has"),
])
def test_zip_bombs_on_the_metrics_page(models, name, payload, reason):
    at = run_app("views/metrics.py", model_id="random-unet")
    at.multiselect(key="metrics_models").set_value(["random-unet"]).run()
    at.radio(key="metrics_mode").set_value("Batch: several files or a zip").run()
    at.file_uploader(key="metrics_batch").set_value([(name, payload(), "application/zip")]).run()
    assert_clean(at)
    assert any(reason in e for e in errors(at)), errors(at)


def _one_frame_mp4(path: Path) -> bytes:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    writer.write(np.full((48, 64, 3), 100, np.uint8))
    writer.release()
    return path.read_bytes()


def _one_frame_dicom(path: Path) -> bytes:
    from test_io import _dicom

    _dicom(path, np.full((1, 48, 64), 100, np.uint8))
    return path.read_bytes()


@pytest.mark.parametrize("name,make", [("one.mp4", _one_frame_mp4), ("one.dcm", _one_frame_dicom)])
def test_one_frame_clip_is_a_still_on_cine(models, tmp_path, name, make):
    at = run_app("views/cine.py", model_id="random-unet")
    at.file_uploader(key="cine_upload").set_value((name, make(tmp_path / name), "video/mp4")).run()
    assert_clean(at)
    assert any("1 frames" in m.value for m in at.markdown), all_text(at)
    at.button[0].click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    assert not [s for s in at.slider if s.key == "cine_frame"]  # no slider from 0 to 0
    captions = [c for img in at.get("image") for c in img.captions]
    assert captions and captions[0].startswith("Frame 0 ·"), captions  # the single frame, shown as a still


def test_dicom_bomb_clip_is_refused_on_cine(models):
    at = run_app("views/cine.py", model_id="random-unet")
    at.file_uploader(key="cine_upload").set_value(("bomb.dcm", hostile.deflate_dicom(1000, 1000, 2100),
                                                   "application/dicom")).run()
    assert_clean(at)
    assert any("bomb.dcm" in e for e in errors(at)), errors(at)
    assert not at.button  # nothing to process


def test_many_large_pairs_are_refused_on_metrics_before_decoding(models, monkeypatch):
    from nervseg.evaluate import batch

    monkeypatch.setattr(batch, "DEFAULT_ZIP_LIMITS", batch.ZipLimits(max_batch_pixels=10_000_000))
    at = run_app("views/metrics.py", model_id="random-unet")
    at.multiselect(key="metrics_models").set_value(["random-unet"]).run()
    at.radio(key="metrics_mode").set_value("Batch: several files or a zip").run()
    data = hostile.big_pairs_zip(n=12, side=1500)  # 27 Mpx of images in a few kB
    at.file_uploader(key="metrics_batch").set_value([("pairs.zip", data, "application/zip")]).run()
    assert_clean(at)
    assert any("the batch is too large" in e for e in errors(at)), errors(at)


def test_live_falls_back_to_the_full_model_when_the_8bit_graph_does_not_load(models):
    """An int8 graph that passes its card's digest check but that ONNX Runtime cannot load (damaged in a way
    the card cannot see, or made by a newer quantizer): Live says so and runs the full model."""
    import hashlib
    import json

    from dashboard import live

    graph = models / "random-unet.int8.onnx"
    graph.write_bytes(b"not an onnx graph")
    card_path = models / "random-unet.json"
    card = json.loads(card_path.read_text())
    card["int8"] = {"file": graph.name, "sha256": hashlib.sha256(graph.read_bytes()).hexdigest(),
                    "weights_sha256": card["weights_sha256"]}
    card_path.write_text(json.dumps(card))
    at = run_app("views/live.py", model_id="random-unet")
    assert_clean(at)
    assert at.toggle(key="live_fast_random-unet").value is True
    warned = [w.value for w in at.warning if "cannot run here" in w.value]
    assert warned and "random-unet.int8.onnx" in warned[0], [w.value for w in at.warning]
    key, session = at.session_state[live.LIVE_KEY]
    assert key[-1] is None and not live.is_fast(session)
    at.run()  # a rerun keeps the same session and says it again
    assert_clean(at)
    assert at.session_state[live.LIVE_KEY][1] is session
    assert any("cannot run here" in w.value for w in at.warning)
