"""Live scanning as a unit: a frame in, its overlaid frame out, the crop kept, state bounded, stale frames dropped.

The shipped default model (usgra U-Net, nerve + vessel) on the bundled usgra-seg scans placed in a
scanner-like frame (nervseg.live.synthetic): the result must equal a still's prediction of the region.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from nervseg.inference import load
from nervseg.live import synthetic
from nervseg.live.processor import FrameProcessor, LiveSettings
from nervseg.live.record import Recorder
from nervseg.live.region import Crop, propose_crop
from nervseg.live.runner import LatestOnlyRunner
from nervseg.live.session import LiveSession

MODEL = "usgra-unet"


@pytest.fixture(scope="module")
def segmenter(shipped_cards):
    if MODEL not in {c.id for c in shipped_cards}:
        pytest.skip(f"{MODEL} is not shipped")
    return load(MODEL)


@pytest.fixture(scope="module")
def frames():
    scans = synthetic.bundled_scans()
    if not scans:
        pytest.skip("no bundled scans in sample_images/")
    return list(synthetic.scan_frames(scans, 24, frames_per_scan=6))


def tinted(rgb: np.ndarray) -> np.ndarray:
    """Pixels that a class colour tinted: grey scans have R == G == B, a tint does not."""
    rgb = rgb.astype(np.int16)
    return (np.abs(rgb[..., 0] - rgb[..., 2]) > 40) | (np.abs(rgb[..., 1] - rgb[..., 2]) > 40)


class SlowProcessor(FrameProcessor):
    """The real processor made slower than any test source (>= 60 ms a frame), so that on a fast
    machine too the source outpaces it and stale frames must be dropped."""

    def process(self, frame, captured_at=None):
        time.sleep(0.06)
        return super().process(frame, captured_at)


def test_frame_in_overlaid_frame_out_inside_the_crop_only(segmenter, frames):
    box = synthetic.IMAGE_BOX
    proc = FrameProcessor(segmenter, LiveSettings(crop=box, legend=False, outline_crop=False))
    frame = frames[0]
    r = proc.process(frame)
    assert r.frame.shape == frame.shape and r.frame.dtype == np.uint8
    assert r.crop == box and r.image.shape == r.mask.shape == (box.h, box.w)
    # the region is segmented exactly as a still (the one inference path)
    still = segmenter.predict(r.image)
    np.testing.assert_array_equal(r.mask, still.mask)
    assert (r.mask > 0).sum() > 500, "the default model finds structures on a bundled scan"
    # overlay colour appears inside the crop where the mask is, and the interface outside is untouched
    inside = tinted(r.frame[box.slices()])
    assert inside[r.mask > 0].mean() > 0.5 and not inside[r.mask == 0].any()
    outside = np.ones(frame.shape[:2], bool)
    outside[box.slices()] = False
    np.testing.assert_array_equal(r.frame[outside], frame[outside])
    assert r.model_ms > 0 and r.latency_ms >= r.model_ms * 0.9


def test_crop_is_kept_and_clamped_to_the_frame(segmenter, frames):
    proc = FrameProcessor(segmenter, LiveSettings(crop=Crop(600, 400, 200, 200), legend=False))
    r = proc.process(frames[0])
    assert r.crop == Crop(600, 400, 40, 80)  # the part inside the 640x480 frame
    r2 = proc.process(frames[1])
    assert r2.crop == r.crop
    whole = FrameProcessor(segmenter, LiveSettings(legend=False)).process(frames[0])
    assert whole.crop == Crop(0, 0, 640, 480)


def test_crop_proposed_from_the_static_border(frames):
    grey = [f.mean(axis=2).astype(np.uint8) for f in frames[:8]]
    crop = propose_crop(grey)
    box = synthetic.IMAGE_BOX
    assert crop is not None
    # inside the image box (give or take the drift), and most of it: a scan's black depths never change
    assert crop.x >= box.x - 4 and crop.y >= box.y - 4
    assert crop.x + crop.w <= box.x + box.w + 4 and crop.y + crop.h <= box.y + box.h + 4
    assert crop.w * crop.h >= 0.9 * box.w * box.h
    # one frame alone (a frozen image): the largest textured area holds the scan, not the flat border
    one = propose_crop(grey[:1])
    assert one is not None and one.x >= box.x - 8 and one.y + one.h <= box.y + box.h + 8
    assert one.x <= box.x + 4 and one.y <= box.y + 4 and one.x + one.w >= box.x + box.w - 4


def test_smoothing_is_the_cine_rule_and_holds_one_frame(segmenter, frames):
    from nervseg.cine.clip import smooth_probabilities

    box = synthetic.IMAGE_BOX
    proc = FrameProcessor(segmenter, LiveSettings(crop=box, smoothing=0.6, legend=False))
    results = [proc.process(f) for f in frames[:3]]
    small = [segmenter.predict(r.image).probs_small for r in results]
    expected = smooth_probabilities(small, 0.6)[-1]
    np.testing.assert_allclose(proc._smoother._state, expected, rtol=1e-5, atol=1e-6)
    assert proc._smoother._state.shape == small[0].shape  # one frame's model-resolution probabilities


def test_stale_frames_are_dropped_newest_wins():
    gate = threading.Event()
    seen: list[int] = []

    def slow(i: int) -> int:
        gate.wait(5)
        seen.append(i)
        return i

    runner = LatestOnlyRunner(slow)
    try:
        runner.offer(0)
        deadline = time.monotonic() + 5
        while runner.waiting and time.monotonic() < deadline:  # the worker takes frame 0 and blocks
            time.sleep(0.005)
        for i in range(1, 11):  # ten more frames arrive while the model is busy
            runner.offer(i)
            assert runner.waiting == 1  # never more than one waiting
        gate.set()
        deadline = time.monotonic() + 5
        while runner.latest() != 10 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert seen == [0, 10] and runner.latest() == 10
        assert (runner.offered, runner.processed, runner.dropped) == (11, 2, 9)
    finally:
        gate.set()
        runner.stop()
    assert not runner.alive


def test_a_failing_frame_is_counted_and_the_stream_goes_on():
    def fn(i: int) -> int:
        if i == 1:
            raise ValueError("bad frame")
        return i

    runner = LatestOnlyRunner(fn)
    try:
        for i in range(3):
            runner.offer(i)
            deadline = time.monotonic() + 5
            while runner.processed + runner.failed < i + 1 and time.monotonic() < deadline:
                time.sleep(0.005)
        assert runner.failed == 1 and runner.latest() == 2 and "bad frame" in runner.last_error
    finally:
        runner.stop()


def test_session_state_stays_bounded_and_freeze_gives_the_segmented_region(segmenter, frames):
    session = LiveSession(SlowProcessor(segmenter, LiveSettings(crop=synthetic.IMAGE_BOX)), window=5,
                          recorder=Recorder(max_seconds=0.5, fps=10))
    try:
        assert session.freeze() is None and session.wait_newer(0, 0.01) is None
        session.start_recording()
        # frames arrive much faster than the model (100 a second): most are dropped. The source keeps
        # going until three were processed, however slow the machine (2 cores shared with training).
        offered, deadline = 0, time.monotonic() + 30
        while offered < 40 or (session.stats().processed < 3 and time.monotonic() < deadline):
            session.offer(frames[offered % len(frames)])
            offered += 1
            time.sleep(0.01)
        stats = session.stats()
        assert stats.offered == offered and stats.dropped > 0 and stats.processed >= 3
        assert stats.processed + stats.dropped + session._runner.waiting <= stats.offered
        assert len(session._done_at) <= 5 and len(session._recent) <= 8 and session._runner.waiting <= 1
        assert stats.model_ms > 0 and stats.frame_size == (640, 480)
        seq, newest = session.wait_newer(0, 1.0)
        while (got := session.wait_newer(seq, 3.0)) is not None:  # until the worker has finished the last frame
            seq, newest = got
        inside = tinted(newest.frame[synthetic.IMAGE_BOX.slices()])  # not the legend: the overlay in the region
        assert seq == session.stats().processed and inside[newest.mask > 0].mean() > 0.5
        assert session.wait_newer(seq, 0.05) is None  # each overlay is handed out once
        snap = session.freeze()
        assert snap.image.shape == snap.mask.shape == (synthetic.IMAGE_BOX.h, synthetic.IMAGE_BOX.w)
        np.testing.assert_array_equal(snap.mask, segmenter.predict(snap.image).mask)
        assert snap.image_png()[:4] == b"\x89PNG" and snap.name.startswith("live-")
        video = session.stop_recording()
        assert video is not None and video[4:8] == b"ftyp"
        assert session.recorder.frames <= 5  # bounded: 0.5 s at 10 frames/s
        crop = session.propose_crop()
        assert crop is not None and crop.w * crop.h < 0.8 * 640 * 480
    finally:
        session.close()
    assert not session._runner.alive


def test_overlay_track_pulls_a_source_and_sends_each_new_overlay_once(segmenter, frames):
    """The WebRTC wiring without a browser: a 30 frames/s source track in, overlaid av frames out."""
    import asyncio

    import av
    from aiortc import MediaStreamTrack

    from nervseg.live.stream import OverlayTrack

    class Camera(MediaStreamTrack):
        kind = "video"

        def __init__(self):
            super().__init__()
            self.sent = 0

        async def recv(self):
            await asyncio.sleep(1 / 30)
            f = av.VideoFrame.from_ndarray(frames[self.sent % len(frames)], format="rgb24")
            self.sent += 1
            return f

    camera = Camera()
    session = LiveSession(SlowProcessor(segmenter, LiveSettings(crop=synthetic.IMAGE_BOX)))
    track = OverlayTrack(session, upstream=lambda: camera)

    async def run():
        out = [await asyncio.wait_for(track.recv(), 30) for _ in range(3)]
        track.stop()
        await asyncio.sleep(0.1)
        return out

    try:
        out = asyncio.run(run())
    finally:
        session.close()
    assert [f.pts for f in out] == sorted(set(f.pts for f in out))  # increasing timestamps
    assert all(tinted(f.to_ndarray(format="rgb24")[synthetic.IMAGE_BOX.slices()]).sum() > 500 for f in out)
    stats = session.stats()
    assert camera.sent > stats.processed >= 3 and stats.dropped > 0  # the source ran at its pace, stale frames dropped
    assert camera.readyState == "ended"  # stopping the track stops its source

    # a viewer that goes away without stopping the track: the source stops once nobody asks for frames
    camera2 = Camera()
    session2 = LiveSession(FrameProcessor(segmenter, LiveSettings(crop=synthetic.IMAGE_BOX)))
    track2 = OverlayTrack(session2, upstream=lambda: camera2, idle_s=0.5)

    async def leave():
        await asyncio.wait_for(track2.recv(), 30)
        await asyncio.sleep(2.0)  # no more recv calls

    try:
        asyncio.run(leave())
    finally:
        session2.close()
    assert camera2.readyState == "ended" and track2.readyState == "ended"


def test_recorder_keeps_real_time_and_stops_at_its_limit():
    rec = Recorder(max_seconds=1.0, fps=10)
    rec.start()
    frame = np.zeros((48, 64, 3), np.uint8)
    for t in (0.0, 0.25, 0.5, 3.0):  # four results over three seconds; the limit is one second
        rec.add(frame, 100.0 + t)
    assert rec.frames == 10 and rec.full
    data = rec.stop()
    assert data[4:8] == b"ftyp" and not rec.active
    assert rec.stop() is None


def test_settings_are_checked():
    with pytest.raises(ValueError):
        LiveSettings(view="xray")
    with pytest.raises(ValueError):
        LiveSettings(smoothing=0.99)


def test_synthetic_stamp_reads_back():
    frame = np.zeros((480, 640, 3), np.uint8)
    for i in (0, 1, 777, 4095):
        synthetic.stamp_index(frame, i)
        assert synthetic.read_index(frame) == i


def test_offline_rtc_configuration_names_no_server():
    from nervseg.live.stream import OFFLINE_RTC_CONFIGURATION

    assert OFFLINE_RTC_CONFIGURATION == {"iceServers": []}


def test_the_cards_model_at_a_stated_smaller_size(segmenter, frames):
    from nervseg.inference.segmenter import Segmenter

    region = frames[0][synthetic.IMAGE_BOX.slices()].mean(axis=2).astype(np.uint8)
    same = Segmenter(segmenter.card, input_size=tuple(segmenter.card.input_size)).predict(region)
    np.testing.assert_array_equal(same.mask, segmenter.predict(region).mask)  # the card's size: unchanged
    small = Segmenter(segmenter.card, input_size=(128, 128))
    assert (small.height, small.width) == (128, 128) and small.engine_name == segmenter.engine_name
    pred = small.predict(region)
    assert pred.mask.shape == region.shape and pred.probs_small.shape[1:] == (128, 128)
    with pytest.raises(ValueError):
        Segmenter(segmenter.card, input_size=(100, 100))


def test_another_model_is_used_from_the_next_frame_without_stopping(segmenter, frames):
    from nervseg.inference.segmenter import Segmenter

    session = LiveSession(FrameProcessor(segmenter, LiveSettings(crop=synthetic.IMAGE_BOX, smoothing=0.3)))
    try:
        session.offer(frames[0])
        seq, first = session.wait_newer(0, 30)
        small = Segmenter(segmenter.card, input_size=(128, 128))
        session.use(FrameProcessor(small))
        assert session.processor.settings.smoothing == 0.3  # the page's settings carry over
        session.offer(frames[1])
        _, second = session.wait_newer(seq, 30)
        assert second.model_id == first.model_id == segmenter.card.id
        # the new size's probabilities cannot be averaged with the old: smoothing restarts on them
        np.testing.assert_array_equal(second.mask, small.predict(second.image).mask)
        assert session._runner.alive
    finally:
        session.close()


def test_sources_without_a_camera(tmp_path, monkeypatch):
    import asyncio

    from nervseg.live import sources

    monkeypatch.delenv(sources.DEVICE_ENV, raising=False)
    assert sources.device_source() is None
    monkeypatch.setenv(sources.DEVICE_ENV, "/dev/video7")
    dev = sources.device_source()
    assert dev.device and dev.path == "/dev/video7" and "/dev/video7" in dev.label
    assert sources.clip_sources()[-1].path == "synthetic"  # always there, with or without the shared data
    if not synthetic.bundled_scans():
        pytest.skip("no bundled scans in sample_images/")
    clip = sources.synthetic_clip(tmp_path, seconds=1.0, fps=10)
    assert clip.is_file() and sources.synthetic_clip(tmp_path, seconds=1.0, fps=10) == clip  # made once
    track = sources.Source("clip", str(clip)).video_track()

    async def first_frame():
        try:
            return await asyncio.wait_for(track.recv(), 20)
        finally:
            track.stop()

    rgb = asyncio.run(first_frame()).to_ndarray(format="rgb24")
    assert rgb.shape == (480, 640, 3)
    box = synthetic.IMAGE_BOX
    assert rgb[box.slices()].std() > 10 and rgb[100:400, 10:100].std() < 5  # a scan inside a still border


@pytest.mark.parametrize("shape", [(480, 640, 3), (481, 641, 3)])
def test_outgoing_frames_keep_the_overlay_colours(shape, rng):
    """The RGB -> yuv420p conversion for the encoder (OpenCV, odd sizes through PyAV) keeps the picture."""
    from nervseg.live.stream import to_video_frame

    rgb = np.zeros(shape, np.uint8)
    rgb[..., 0] = 200  # a red block on grey noise, like an overlay on a scan
    rgb[100:, :, :] = rng.integers(20, 120, (shape[0] - 100, shape[1], 1), dtype=np.uint8)
    back = to_video_frame(rgb).to_ndarray(format="rgb24").astype(int)
    assert back.shape == shape
    assert np.abs(back - rgb).mean() < 3  # 4:2:0 chroma subsampling blurs colour edges only
