"""nervseg.io.readers: every format written for real, real data, and every kind of bad input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from nervseg.io.readers import InputError, Limits, check_pair, load_frames, load_image, load_image_data, load_mask


def _gradient(h: int = 40, w: int = 60) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 251).astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    a = rgb.astype(np.float64)
    return np.clip(np.round(a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- formats


def test_png_grey_roundtrip_from_path_bytes_and_filelike(tmp_path):
    img = _gradient()
    p = tmp_path / "grey.png"
    Image.fromarray(img).save(p)
    for src in (p, str(p), p.read_bytes(), io.BytesIO(p.read_bytes())):
        out = load_image(src)
        assert out.dtype == np.uint8 and out.shape == img.shape
        np.testing.assert_array_equal(out, img)


def test_png_rgb_becomes_luma(tmp_path, rng):
    rgb = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)
    p = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(p)
    out = load_image(p)
    assert out.shape == (30, 20)
    np.testing.assert_array_equal(out, _luma(rgb))


def test_png_rgba_ignores_alpha(tmp_path, rng):
    rgb = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (16, 24, 1), dtype=np.uint8)
    p = tmp_path / "rgba.png"
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), mode="RGBA").save(p)
    np.testing.assert_array_equal(load_image(p), _luma(rgb))


def test_png_palette_becomes_grey_of_its_colours(tmp_path):
    idx = np.array([[0, 1], [2, 1]], np.uint8).repeat(5, 0).repeat(5, 1)
    pal_img = Image.fromarray(idx, mode="P")
    pal_img.putpalette([0, 0, 0, 255, 255, 255, 100, 100, 100] + [0] * (256 * 3 - 9))
    p = tmp_path / "pal.png"
    pal_img.save(p)
    out = load_image(p)
    expected = np.choose(idx, [0, 255, 100]).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_jpeg_close_to_source(tmp_path):
    img = cv2.GaussianBlur(_gradient(64, 64), (0, 0), 3)
    p = tmp_path / "scan.jpg"
    Image.fromarray(img).save(p, quality=95)
    d = load_image_data(p)
    assert d.format == "JPEG" and d.image.shape == (64, 64)
    assert np.abs(d.image.astype(int) - img.astype(int)).mean() < 3


@pytest.mark.parametrize("suffix,fmt", [(".tif", "TIFF"), (".png", "PNG")])
def test_16bit_windowed_to_own_range(tmp_path, suffix, fmt):
    # 12-bit values stored in 16 bits: 1000..3000 must map to 0..255, not stay dark.
    arr = np.linspace(1000, 3000, 50 * 40).reshape(50, 40).astype(np.uint16)
    p = tmp_path / f"scan16{suffix}"
    Image.fromarray(arr).save(p)
    d = load_image_data(p)
    assert d.format == fmt and d.image.dtype == np.uint8
    assert d.image.min() == 0 and d.image.max() == 255
    expected = np.round((arr.astype(float) - 1000) * 255 / 2000).astype(np.uint8)
    np.testing.assert_array_equal(d.image, expected)


def test_tiff_8bit(tmp_path):
    img = _gradient()
    p = tmp_path / "scan8.tif"
    Image.fromarray(img).save(p)
    np.testing.assert_array_equal(load_image(p), img)


def test_bmp(tmp_path):
    img = _gradient()
    p = tmp_path / "scan.bmp"
    Image.fromarray(img).save(p)
    d = load_image_data(p)
    assert d.format == "BMP"
    np.testing.assert_array_equal(d.image, img)


def _dicom(path: Path, frames: np.ndarray, spacing=None, bits: int = 8, frame_time_ms: float | None = None) -> None:
    """Write an uncompressed MONOCHROME2 DICOM with pydicom (single or multi-frame)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # ultrasound image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    n, h, w = frames.shape
    ds.Rows, ds.Columns = h, w
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if n > 1:
        ds.NumberOfFrames = n
    if spacing:
        ds.PixelSpacing = [spacing[0], spacing[1]]
    if frame_time_ms:
        ds.FrameTime = frame_time_ms
    ds.PixelData = (frames if n > 1 else frames[0]).astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_dicom_single_frame_with_spacing(tmp_path):
    img = _gradient(32, 48)
    p = tmp_path / "scan.dcm"
    _dicom(p, img[None], spacing=(0.1, 0.12))
    d = load_image_data(p)
    assert d.format == "DICOM"
    np.testing.assert_array_equal(d.image, img)
    assert d.pixel_spacing_mm == pytest.approx((0.1, 0.12))


def test_dicom_without_spacing_reports_none(tmp_path):
    p = tmp_path / "nospacing.dcm"
    _dicom(p, _gradient(16, 16)[None])
    assert load_image_data(p).pixel_spacing_mm is None


def test_dicom_multiframe_first_frame_and_all_frames(tmp_path):
    frames = np.stack([np.full((20, 30), v, np.uint8) for v in (10, 120, 240)])
    frames[:, 0, 0] = 0  # each frame has some contrast
    p = tmp_path / "cine.dcm"
    _dicom(p, frames, spacing=(0.2, 0.2), frame_time_ms=50)
    np.testing.assert_array_equal(load_image(p), frames[0])
    clip = load_frames(p)
    assert clip.format == "DICOM" and len(clip) == 3
    np.testing.assert_array_equal(clip.frames, frames)
    assert clip.fps == pytest.approx(20.0)
    assert clip.pixel_spacing_mm == pytest.approx((0.2, 0.2))


def test_dicom_16bit_windowed(tmp_path):
    arr = np.linspace(0, 4095, 24 * 24).reshape(1, 24, 24).astype(np.uint16)
    p = tmp_path / "scan16.dcm"
    _dicom(p, arr, bits=16)
    out = load_image(p)
    assert out.min() == 0 and out.max() == 255


def _mp4(path: Path, n: int = 6, size=(48, 64), fps: float = 12.0) -> list[np.ndarray]:
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write mp4 here"
    written = []
    for i in range(n):
        frame = np.full((h, w), 30 + i * 35, np.uint8)
        written.append(frame)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return written


def test_mp4_frames_and_fps(tmp_path):
    p = tmp_path / "clip.mp4"
    written = _mp4(p)
    for src in (p, p.read_bytes()):
        clip = load_frames(src, name="clip.mp4")
        assert clip.format == "MP4"
        assert clip.frames.shape == (6, 48, 64) and clip.frames.dtype == np.uint8
        assert clip.fps == pytest.approx(12.0)
        # lossy codec: flat frames stay within a few grey levels of what was written
        means = clip.frames.reshape(6, -1).mean(axis=1)
        np.testing.assert_allclose(means, [f.mean() for f in written], atol=4)


def test_video_refused_by_load_image_and_still_by_load_frames(tmp_path):
    p = tmp_path / "clip.mp4"
    _mp4(p, n=2)
    with pytest.raises(InputError, match="clip.mp4.*video"):
        load_image(p)
    q = tmp_path / "still.png"
    Image.fromarray(_gradient()).save(q)
    with pytest.raises(InputError, match="still.png.*still image"):
        load_frames(q)


def test_video_frame_limit(tmp_path):
    p = tmp_path / "long.mp4"
    _mp4(p, n=6)
    with pytest.raises(InputError, match="long.mp4.*too long"):
        load_frames(p, limits=Limits(max_frames=3))


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("stored,expected", [((0, 255), (0, 1)), ((0, 1), (0, 1)), ((0, 1, 2), (0, 1, 2))])
def test_mask_value_conventions(tmp_path, stored, expected):
    idx = np.arange(30 * 30).reshape(30, 30) % len(stored)
    arr = np.asarray(stored, np.uint8)[idx]
    p = tmp_path / "m.png"
    Image.fromarray(arr).save(p)
    np.testing.assert_array_equal(load_mask(p), np.asarray(expected, np.uint8)[idx])


def test_mask_palette_keeps_indices(tmp_path):
    idx = np.zeros((20, 20), np.uint8)
    idx[2:8, 2:8], idx[10:15, 10:18] = 1, 2
    m = Image.fromarray(idx, mode="P")
    m.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (253 * 3))
    p = tmp_path / "pal_mask.png"
    m.save(p)
    np.testing.assert_array_equal(load_mask(p), idx)


def test_mask_with_other_values_refused(tmp_path):
    arr = np.zeros((10, 10), np.uint8)
    arr[3:5, 3:5] = 7
    p = tmp_path / "odd_mask.png"
    Image.fromarray(arr).save(p)
    with pytest.raises(InputError, match=r"odd_mask.png.*\[0, 7\]"):
        load_mask(p)


def test_colour_mask_refused(tmp_path):
    arr = np.zeros((10, 10, 3), np.uint8)
    arr[2:4, 2:4] = (255, 0, 0)
    p = tmp_path / "colour_mask.png"
    Image.fromarray(arr).save(p)
    with pytest.raises(InputError, match="colour_mask.png.*colour"):
        load_mask(p)


def test_check_pair_size_mismatch_names_both():
    with pytest.raises(InputError, match=r"m.png \(30x20\) does not match scan.png \(40x20\)"):
        check_pair(np.zeros((20, 40), np.uint8), np.zeros((20, 30), np.uint8), "scan.png", "m.png")
    check_pair(np.zeros((20, 40), np.uint8), np.zeros((20, 40), np.uint8))  # same size: no error


# ---------------------------------------------------------------- real data


def test_real_usgra_pair(usgra_pair):
    img_path, mask_path = usgra_pair
    img, mask = load_image(img_path), load_mask(mask_path)
    assert img.dtype == np.uint8 and img.ndim == 2
    assert mask.shape == img.shape
    values = set(np.unique(mask).tolist())
    assert values <= {0, 1, 2} and 1 in values  # every usgra mask has nerve
    check_pair(img, mask, img_path.name, mask_path.name)


def test_real_usgra_masks_have_vessels_too(data_root):
    masks = sorted((data_root / "usgra-seg" / "masks").glob("*.png"))[:5]
    ids = set()
    for m in masks:
        ids |= set(np.unique(load_mask(m)).tolist())
    assert ids == {0, 1, 2}


def test_real_kaggle_pair_binary(kaggle_pair):
    img_path, mask_path = kaggle_pair
    img, mask = load_image(img_path), load_mask(mask_path)
    assert img.shape == (186, 256) and mask.shape == (186, 256)
    assert set(np.unique(mask).tolist()) == {0, 1}
    raw = np.array(Image.open(mask_path))
    np.testing.assert_array_equal(mask, (raw > 127).astype(np.uint8))


def test_real_fullres_tiff(fullres_pair):
    img_path, mask_path = fullres_pair
    d = load_image_data(img_path)
    assert d.format == "TIFF" and d.image.shape == (420, 580)
    np.testing.assert_array_equal(d.image, np.array(Image.open(img_path).convert("L")))
    mask = load_mask(mask_path)
    assert mask.shape == (420, 580) and set(np.unique(mask).tolist()) == {0, 1}


# ---------------------------------------------------------------- bad input


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature plus a valid IHDR (correct CRC) claiming width x height, and no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + iend


def test_huge_png_header_refused_before_allocation(tmp_path):
    import tracemalloc

    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(60000, 60000))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"bomb.png.*too large"):
            load_image(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024  # 3.6 GB of pixels were never allocated


@pytest.mark.parametrize(
    "name,content,pattern",
    [
        ("empty.png", b"", "empty"),
        ("noise.png", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "not a file type"),
        ("notes.txt", b"patient notes, not an image\n" * 20, "not a file type"),
        ("scan.gif", b"GIF89a" + b"\0" * 200, "not a file type"),
    ],
)
def test_bad_bytes_refused_naming_the_file(tmp_path, name, content, pattern):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputError, match=f"{name}.*{pattern}"):
        load_image(p)
    with pytest.raises(InputError, match=name):
        load_mask(p)
    with pytest.raises(InputError, match=name):
        load_frames(p)


def test_truncated_png_refused(tmp_path):
    p = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (200, 200), dtype=np.uint8)).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.png.*damaged"):
        load_image(p)


def test_too_large_file_refused_by_size(tmp_path):
    p = tmp_path / "big.png"
    Image.fromarray(_gradient(100, 100)).save(p)
    small = Limits(max_bytes=100)
    with pytest.raises(InputError, match="big.png.*too large"):
        load_image(p, limits=small)
    with pytest.raises(InputError, match="upload.png.*too large"):
        load_image(io.BytesIO(p.read_bytes()), name="upload.png", limits=small)


def test_pixel_limit(tmp_path):
    p = tmp_path / "wide.png"
    Image.fromarray(_gradient(100, 100)).save(p)
    with pytest.raises(InputError, match="wide.png.*too large"):
        load_image(p, limits=Limits(max_pixels=5000))


def test_missing_path_and_wrong_type():
    with pytest.raises(InputError, match="nothere.png.*not found"):
        load_image("/nonexistent/nothere.png")
    with pytest.raises(InputError):
        load_image(12345)  # type: ignore[arg-type]


def test_filelike_with_name_attribute(tmp_path):
    """Streamlit's UploadedFile is a BytesIO with .name and .size; the name shows in errors."""
    buf = io.BytesIO(b"")
    buf.name, buf.size = "upload/empty_scan.png", 0
    with pytest.raises(InputError, match="^empty_scan.png: the file is empty"):
        load_image(buf)


def test_jpeg_mask_blurred_refused(tmp_path):
    arr = np.zeros((32, 32), np.uint8)
    cv2.circle(arr, (15, 17), 9, 255, -1)  # curved edges ring under JPEG compression
    p = tmp_path / "mask.jpg"
    Image.fromarray(arr).save(p, quality=50)
    with pytest.raises(InputError, match="mask.jpg.*JPEG"):
        load_mask(p)
