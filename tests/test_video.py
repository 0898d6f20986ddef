"""nervseg.cine (clip loading and limits, temporal smoothing, overlay mp4, per-frame figures),
nervseg.bench.benchmark_clip, nervseg.cine.boxes (box agreement) and nervseg.cine.cli
(synthetic clips generated here; real bp-videos clips when present)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest

import nervseg
from nervseg.cine import boxes
from nervseg.cine import cli as video_cli
from nervseg.cine import clip as video
from nervseg.cine import view as cine_view
from nervseg.io.readers import Frames, InputError


def make_clip(path: Path, n: int = 24, size_wh: tuple[int, int] = (96, 80), fps: float = 10.0) -> Path:
    """A small grey clip with a bright disc drifting right (OpenCV mp4v)."""
    w, h = size_wh
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "OpenCV could not open an mp4v writer"
    rng = np.random.default_rng(1)
    for i in range(n):
        frame = rng.integers(20, 60, (h, w), dtype=np.uint8)
        cv2.circle(frame, (15 + 2 * i, h // 2), 10, 220, -1)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread, and far faster beside a busy training job."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "drift.mp4")


@pytest.fixture(scope="module")
def random_segmenter(tmp_path_factory, random_card_factory):
    """A 2-class random-weight model (64x64 input): exercises the pipeline, not accuracy."""
    from nervseg.inference.segmenter import Segmenter
    from nervseg.models.cards import load_model

    card = random_card_factory(tmp_path_factory.mktemp("models"), "unet", ["background", "nerve"], "random-bp")
    return Segmenter(card, load_model(card), device="cpu")


@pytest.fixture(scope="module")
def bp_clip() -> Path:
    clips = boxes.sample_clips()
    if not clips:
        pytest.skip(f"bp-videos clips not found under {nervseg.data_root()}")
    return clips[0]


@pytest.fixture(scope="module")
def bp_segmenter():
    from nervseg.inference.segmenter import load
    return load("kaggle-bp-unet", device="cpu")


def decode_count(data_or_path) -> tuple[int, int, int]:
    """(frames, width, height) read back with OpenCV."""
    path = data_or_path
    if isinstance(data_or_path, bytes):
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as f:
            f.write(data_or_path)
            path = f.name
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    return n, w, h


# ---------------------------------------------------------------- smoothing


def noisy_sequence(n: int = 40, seed: int = 0) -> list[np.ndarray]:
    """(2, H, W) probabilities of a fixed disc (nerve p=0.65 inside, 0.35 outside) plus heavy noise."""
    rng = np.random.default_rng(seed)
    h = w = 48
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 24) ** 2 + (xx - 24) ** 2 < 12**2
    base = np.where(disc, 0.65, 0.35)
    out = []
    for _ in range(n):
        p = np.clip(base + rng.normal(0, 0.2, (h, w)), 0, 1).astype(np.float32)
        out.append(np.stack([1 - p, p]))
    return out


def test_smoothing_reduces_flicker():
    seq = noisy_sequence()
    raw = [p.argmax(0) for p in seq]
    smooth = [p.argmax(0) for p in video.smooth_probabilities(seq, 0.8)]
    assert video.flicker(raw) > 0.1  # the noise really makes the mask flicker
    assert video.flicker(smooth) < 0.5 * video.flicker(raw)


def test_smoothing_zero_is_off_and_follows_the_formula():
    seq = noisy_sequence(3)
    off = video.smooth_probabilities(seq, 0.0)
    for a, b in zip(off, seq):
        np.testing.assert_array_equal(a, b)
    s = video.smooth_probabilities(seq, 0.6)
    np.testing.assert_allclose(s[0], seq[0])
    np.testing.assert_allclose(s[1], 0.6 * seq[0] + 0.4 * seq[1], rtol=1e-6)
    np.testing.assert_allclose(s[2], 0.6 * s[1] + 0.4 * seq[2], rtol=1e-6)


@pytest.mark.parametrize("strength", [-0.1, 0.96, 1.0])
def test_smoothing_strength_out_of_range(strength):
    with pytest.raises(ValueError):
        video.ProbabilitySmoother(strength)


# ---------------------------------------------------------------- generated clip end to end


def test_process_generated_clip(clip_path, random_segmenter):
    frames = video.load_clip(clip_path)
    assert frames.frames.shape == (24, 80, 96) and frames.fps == pytest.approx(10.0)
    calls = []
    res = cine_view.process_clip(random_segmenter, frames, smoothing=0.5, batch_size=8,
                             progress=lambda d, t: calls.append((d, t)))
    assert calls == [(8, 24), (16, 24), (24, 24)]
    assert res.masks.shape == frames.frames.shape and res.masks.dtype == np.uint8
    assert res.n_frames == 24 and res.achieved_fps > 0
    # the mp4 is H.264 (browser-playable) with every frame, at the clip's size and frame rate
    n, w, h = decode_count(res.video_mp4)
    assert (n, w, h) == (24, 96, 80)
    import imageio_ffmpeg

    tmp = clip_path.parent / "out.mp4"
    tmp.write_bytes(res.video_mp4)
    reader = imageio_ffmpeg.read_frames(str(tmp))
    meta = next(reader)
    reader.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["fps"] == pytest.approx(10.0)
    # per-frame figures match the masks; the overlay frame shows the mask's colour
    rows = list(csv.DictReader(io.StringIO(res.csv_bytes().decode())))
    assert len(rows) == 24
    assert {"frame", "time_s", "nerve_area_px", "nerve_confidence", "nerve_components"} <= set(rows[0])
    for i in (0, 11, 23):
        area = int((res.masks[i] == 1).sum())
        assert int(rows[i]["nerve_area_px"]) == area == res.stats[i]["nerve_area_px"]
        n_comp, _ = cv2.connectedComponents((res.masks[i] == 1).astype(np.uint8), connectivity=8)
        assert int(rows[i]["nerve_components"]) == n_comp - 1
        conf = rows[i]["nerve_confidence"]
        assert (conf == "") == (area == 0)
        if conf:
            assert 0.0 <= float(conf) <= 1.0
    over = res.overlay_frame(11)
    assert over.shape == (80, 96, 3)
    changed = (over != cv2.cvtColor(frames.frames[11], cv2.COLOR_GRAY2RGB)).any(axis=2)
    np.testing.assert_array_equal(changed & (res.masks[11] == 0), False)


def test_smoothing_in_pipeline_changes_masks(clip_path, random_segmenter):
    frames = video.load_clip(clip_path)
    raw = cine_view.process_clip(random_segmenter, frames, smoothing=0.0, write_video=False)
    smooth = cine_view.process_clip(random_segmenter, frames, smoothing=0.9, write_video=False)
    assert raw.video_mp4 is None
    np.testing.assert_array_equal(raw.masks[0], smooth.masks[0])  # the EMA starts at frame 0
    assert video.flicker(smooth.masks) <= video.flicker(raw.masks)
    assert not np.array_equal(raw.masks, smooth.masks)


def test_encode_mp4_odd_size_pads_to_even():
    frames = [np.full((41, 63), v, np.uint8) for v in range(0, 250, 25)]
    data = video.encode_mp4(frames, fps=5)
    assert decode_count(data) == (10, 64, 42)


def test_benchmark_clip(clip_path, random_segmenter):
    from nervseg.bench import benchmark_clip

    out = benchmark_clip(random_segmenter, clip_path, batch_size=8, max_frames=16)
    assert out["frames"] == 16 and out["resolution"] == "96x80"
    for label, bs in (("batched", 8), ("unbatched", 1)):
        r = out[label]
        assert r["batch_size"] == bs
        secs = r["seconds"]
        assert {"decode", "predict", "post", "overlay"} <= set(secs) and all(v >= 0 for v in secs.values())
        assert r["fps"] == pytest.approx(16 / secs["total"], rel=0.02)


# ---------------------------------------------------------------- bad input and limits


def test_corrupt_empty_and_unsupported_clips(clip_path):
    data = clip_path.read_bytes()
    with pytest.raises(InputError, match="empty"):
        video.load_clip(b"", "empty.mp4")
    with pytest.raises(InputError):
        video.load_clip(data[:40] + bytes(2000), "damaged.mp4")  # mp4 header, then zeros
    with pytest.raises(InputError):
        video.load_clip(b"just some text, not a video at all", "notes.mov")
    png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    with pytest.raises(InputError, match="still image"):
        video.load_clip(png, "scan.png")


def test_limits(clip_path):
    with pytest.raises(InputError, match="too"):
        video.load_clip(clip_path, limits=video.ClipLimits(max_frames=10))
    with pytest.raises(InputError, match="too large"):
        video.load_clip(clip_path, limits=video.ClipLimits(max_pixels=50 * 50))
    with pytest.raises(InputError, match="too long"):
        video.load_clip(clip_path, limits=video.ClipLimits(max_seconds=1.0))  # 24 frames at 10/s
    ok = video.load_clip(clip_path, limits=video.ClipLimits(max_seconds=2.5, max_frames=24, max_pixels=96 * 80))
    assert len(ok) == 24


def test_eta():
    assert video.eta_seconds(0, 10, 1.0) is None
    assert video.eta_seconds(5, 10, 2.0) == pytest.approx(2.0)
    assert video.eta_seconds(10, 10, 3.0) == 0.0


# ---------------------------------------------------------------- boxes


def test_read_boxes_and_agreement_synthetic():
    lines = [
        '{"0": {"tracker": "human", "bounding_boxes": "[[10, 10, 10, 10], [30, 30, 5, 5]]"}}',
        '{"1": {"tracker": "csrt", "bounding_boxes": "[[10, 10, 10, 10]]"}}',
        "",
        '{"2": {"tracker": "csrt", "bounding_boxes": "[[10, 10, 10, 10]]"}}',
    ]
    per_frame = boxes.read_boxes(lines)
    assert per_frame == {0: [(10, 10, 10, 10), (30, 30, 5, 5)], 1: [(10, 10, 10, 10)], 2: [(10, 10, 10, 10)]}
    masks = np.zeros((3, 50, 50), np.uint8)
    masks[0, 12:17, 12:16] = 1  # 20 px inside box 1
    masks[0, 40:45, 40:46] = 1  # 30 px outside every box
    masks[2, 0:5, 0:4] = 1  # 20 px, outside; frame 1 has no prediction
    a = boxes.box_agreement(masks, per_frame)
    assert a["annotated_frames"] == 3 and a["frames_with_prediction"] == 2
    assert a["inside_share"] == pytest.approx(20 / 70)
    assert a["frames_overlap_share"] == pytest.approx(1 / 3)
    assert a["inside_share_mean_per_frame"] == pytest.approx((20 / 50 + 0) / 2)
    assert a["box_covered_share"] == pytest.approx(20 / (125 + 100 + 100))
    with pytest.raises(InputError, match="line 1"):
        boxes.read_boxes(['{"0": {"tracker": "human"}}'])


def test_boxes_mask_clips_to_frame():
    m = boxes.boxes_mask((20, 30), [(-5, -5, 10, 10), (25, 15, 10, 10)])
    assert m.sum() == 25 + 25
    assert m[0, 0] and m[19, 29] and not m[10, 10]


# ---------------------------------------------------------------- real clips (shared data)


def test_real_clip_boxes_match_frames(bp_clip):
    frames = video.load_clip(bp_clip)
    per_frame = boxes.read_boxes(bp_clip.with_suffix(".txt"))
    n, h, w = frames.frames.shape
    assert sorted(per_frame) == list(range(n))  # one annotation per frame, numbered from 0
    for bs in per_frame.values():
        for x, y, bw, bh in bs:
            assert 0 <= x < w and 0 <= y < h and bw > 0 and bh > 0


def test_real_clip_with_shipped_model(bp_clip, bp_segmenter):
    """The first 16 frames of a real clip through the shipped brachial-plexus model.

    The bp-videos clips are supraclavicular views from another scanner than the Kaggle
    training frames, so how much nerve the model finds is a finding for the report
    (`python -m nervseg.cine agreement`), not asserted here; the figures must agree
    with the masks.
    """
    full = video.load_clip(bp_clip)
    frames = Frames(full.frames[:16], full.fps, full.name, full.format)
    res = cine_view.process_clip(bp_segmenter, frames, smoothing=0.5, batch_size=8)
    assert decode_count(res.video_mp4) == (16, full.frames.shape[2], full.frames.shape[1])
    areas = [int((m == 1).sum()) for m in res.masks]
    assert [r["nerve_area_px"] for r in res.stats] == areas
    per_frame = boxes.read_boxes(bp_clip.with_suffix(".txt"))
    a = boxes.box_agreement(res.masks, per_frame)
    assert a["annotated_frames"] == 16
    assert a["frames_with_prediction"] == sum(x > 0 for x in areas)
    if a["frames_with_prediction"]:
        assert 0.0 <= a["inside_share"] <= 1.0 and 0.0 <= a["frames_overlap_share"] <= 1.0
    else:
        assert np.isnan(a["inside_share"]) and a["frames_overlap_share"] == 0.0


def test_agreement_cli(tmp_path, clip_path, monkeypatch, capsys, random_card_factory):
    """`python -m nervseg.cine agreement` over every kaggle-bp card, figures printed and saved."""
    import json

    models = tmp_path / "models"
    models.mkdir()
    random_card_factory(models, "unet", ["background", "nerve"], "random-bp")
    random_card_factory(models, "unet", ["background", "nerve", "vessel"], "random-usgra")  # not brachial plexus
    monkeypatch.setenv("NERVSEG_MODELS", str(models))
    clip = tmp_path / "c.mp4"
    clip.write_bytes(clip_path.read_bytes())
    lines = [json.dumps({str(i): {"tracker": "csrt", "bounding_boxes": "[[20, 20, 40, 40]]"}}) for i in range(24)]
    clip.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    out_json = tmp_path / "agreement.json"
    assert video_cli.main(["agreement", str(clip), "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "random-bp" in printed and "random-usgra" not in printed
    (result,) = json.loads(out_json.read_text())
    assert result["model"] == "random-bp" and result["all"]["annotated_frames"] == 24
    share = result["clips"]["c.mp4"]["inside_share"]
    assert share != share or 0.0 <= share <= 1.0  # NaN when the random model predicts no nerve


def test_multiframe_dicom_clip(tmp_path, random_segmenter):
    """A multi-frame DICOM cine: frame rate from FrameTime, areas in mm² from PixelSpacing."""
    from test_io import _dicom  # the DICOM writer of the io tests (pydicom)

    rng = np.random.default_rng(2)
    stack = rng.integers(0, 255, (6, 40, 50), dtype=np.uint8)
    path = tmp_path / "cine.dcm"
    _dicom(path, stack, spacing=(0.1, 0.2), frame_time_ms=50.0)
    frames = video.load_clip(path)
    assert frames.format == "DICOM" and frames.fps == pytest.approx(20.0)
    np.testing.assert_array_equal(frames.frames, stack)
    res = cine_view.process_clip(random_segmenter, frames)
    assert decode_count(res.video_mp4) == (6, 50, 40)
    for row, mask in zip(res.stats, res.masks):
        assert row["nerve_area_mm2"] == pytest.approx(int((mask == 1).sum()) * 0.1 * 0.2, abs=0.01)
    assert res.stats[3]["time_s"] == pytest.approx(0.15)
