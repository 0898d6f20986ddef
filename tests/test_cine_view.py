"""cine_view: segment once at model resolution, render at any smoothing without the model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from nervseg.cine import clip as video
from nervseg.cine import view as cine_view
from nervseg.display import viz
from nervseg.inference.segmenter import Segmenter, load
from nervseg.io import readers as nio


@pytest.fixture(scope="module")
def segmenter(random_model_dir):
    return load("random-unet", random_model_dir)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    from test_video import make_clip

    path = make_clip(tmp_path_factory.mktemp("cv") / "drift.mp4", n=6, size_wh=(96, 80))
    return video.load_clip(path)


def test_segment_keeps_small_probabilities_and_render_matches_direct_prediction(segmenter, frames):
    raw = cine_view.segment_clip(segmenter, frames)
    assert raw.probs.dtype == np.float16
    assert raw.probs.shape == (6, 3, *segmenter.card.input_size)
    result = cine_view.render(raw, smoothing=0.0, write_video=False)
    direct = [segmenter.predict(f).mask for f in frames.frames]
    agree = np.mean([(m == d).mean() for m, d in zip(result.masks, direct)])
    assert agree > 0.9, agree  # random weights: near-ties flip under the down- and up-sampling
    assert len(result.stats) == 6 and result.video_mp4 is None


def test_render_at_another_smoothing_does_not_call_the_model(segmenter, frames, monkeypatch):
    raw = cine_view.segment_clip(segmenter, frames)

    def boom(*a, **k):
        raise AssertionError("the model ran again")

    monkeypatch.setattr(Segmenter, "predict_many", boom)
    monkeypatch.setattr(Segmenter, "probs_small_many", boom)
    steady = cine_view.render(raw, smoothing=0.9)
    assert steady.smoothing == 0.9 and steady.video_mp4 and steady.n_frames == 6
    plain = cine_view.render(raw, smoothing=0.0, write_video=False)
    np.testing.assert_array_equal(plain.masks[0], steady.masks[0])  # the EMA starts at the first frame


def test_video_has_the_legend_burned_in(segmenter, frames):
    import cv2

    raw = cine_view.segment_clip(segmenter, frames)
    with_legend = cine_view.render(raw, write_video=True)
    tmp = Path(tempfile.mkdtemp()) / "v.mp4"
    tmp.write_bytes(with_legend.video_mp4)
    cap = cv2.VideoCapture(str(tmp))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    plain = viz.overlay(frames.frames[0], with_legend.masks[0])
    corner = (slice(bgr.shape[0] - 30, bgr.shape[0]), slice(0, 40))
    diff = np.abs(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[corner].astype(int) - plain[corner].astype(int)).mean()
    assert diff > 20, diff  # the legend chips differ strongly from the plain overlay there


def test_empty_clip_is_an_input_error(segmenter):
    empty = nio.Frames(np.zeros((0, 8, 8), np.uint8), 10.0, "none.mp4", "mp4")
    with pytest.raises(nio.InputError, match="no frames"):
        cine_view.segment_clip(segmenter, empty)


def test_segment_clip_keeps_the_networks_own_output(segmenter, frames):
    """Cine keeps probs_small only; probs_small_many gives exactly predict_many's, without the per-frame masks."""
    raw = cine_view.segment_clip(segmenter, frames, batch_size=4)
    expected = [p.probs_small for p in segmenter.predict_many(list(frames.frames), batch_size=4)]
    np.testing.assert_array_equal(raw.probs, np.stack(expected).astype(np.float16))


def test_box_annotations_are_drawn_into_the_video(segmenter, frames):
    import cv2

    raw = cine_view.segment_clip(segmenter, frames)
    box = (20, 16, 40, 30)
    result = cine_view.render(raw, boxes={0: [box]}, legend=False)
    assert result.extras["boxes"] == {0: [box]}
    tmp = Path(tempfile.mkdtemp()) / "v.mp4"
    tmp.write_bytes(result.video_mp4)
    cap = cv2.VideoCapture(str(tmp))
    decoded = [cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB).astype(int) for _ in range(2)]
    cap.release()
    x, y, w, h = box
    edge = (slice(y + 5, y + h - 5), x)  # the box's left side
    greenness = [(f[edge][:, 1] - f[edge][:, 0]).mean() for f in decoded]
    assert greenness[0] > 100 and greenness[1] < 40, greenness  # boxed frame 0 only
