"""Bytes or paths in, grey uint8 arrays out: images, masks, DICOM and video.

Every failure a user can cause (empty, truncated, wrong or unsupported file,
too large) raises `InputError` with a message that names the file and says
what is wrong in plain words.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

Source = Union[str, os.PathLike, bytes, bytearray, BinaryIO]

IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "DICOM")
VIDEO_FORMATS = ("MP4", "AVI", "MOV", "DICOM")


class InputError(ValueError):
    """A file the user gave cannot be used; the message says why, in plain words."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds checked before a file is fully decoded."""

    max_bytes: int = 200 * 1024 * 1024
    max_pixels: int = 40_000_000  # e.g. 8000 x 5000; a scan is ~0.3 Mpx
    max_frames: int = 3000
    max_video_pixels: int = 4_000_000  # per frame


DEFAULT_LIMITS = Limits()


@dataclass
class ImageData:
    """A decoded image with what we know about it."""

    image: np.ndarray  # (H, W) uint8
    name: str
    format: str
    pixel_spacing_mm: tuple[float, float] | None = None  # (row, column) mm per pixel


@dataclass
class Frames:
    """Every frame of a clip, grey uint8, with its frame rate."""

    frames: np.ndarray  # (N, H, W) uint8
    fps: float
    name: str
    format: str
    pixel_spacing_mm: tuple[float, float] | None = None

    def __len__(self) -> int:
        return int(self.frames.shape[0])


# ---------------------------------------------------------------- reading bytes


def _read(src: Source, name: str | None, limits: Limits) -> tuple[bytes, str]:
    """Read all bytes of `src`, refusing empty and over-large files before reading."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        name = name or path.name
        if not path.is_file():
            raise InputError(f"{name}: file not found.")
        size = path.stat().st_size
        _check_size(size, name, limits)
        data = path.read_bytes()
    elif isinstance(src, (bytes, bytearray)):
        name = name or "uploaded file"
        data = bytes(src)
    elif hasattr(src, "read"):
        name = name or getattr(src, "name", None) or "uploaded file"
        name = Path(str(name)).name
        size = getattr(src, "size", None)
        if isinstance(size, int):
            _check_size(size, name, limits)
        if hasattr(src, "seek"):
            try:
                src.seek(0)
            except (OSError, ValueError):
                pass
        data = src.read(limits.max_bytes + 1)
    else:
        raise InputError(f"Cannot read {type(src).__name__}: give a path, bytes or an open file.")
    _check_size(len(data), name, limits)
    return data, name


def _check_size(size: int, name: str, limits: Limits) -> None:
    if size == 0:
        raise InputError(f"{name}: the file is empty (0 bytes).")
    if size > limits.max_bytes:
        raise InputError(
            f"{name}: the file is too large ({size / 1e6:.0f} MB; the limit is "
            f"{limits.max_bytes / 1e6:.0f} MB)."
        )


def sniff_format(data: bytes) -> str | None:
    """The container format from the first bytes, ignoring the file name."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head.startswith(b"BM"):
        return "BMP"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "DICOM"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        return "MOV" if brand == b"qt  " else "MP4"
    if head.startswith(b"RIFF") and data[8:12] == b"AVI ":
        return "AVI"
    return None


def _describe_unknown(name: str, data: bytes, expected: tuple[str, ...]) -> InputError:
    kinds = ", ".join(expected)
    return InputError(
        f"{name}: this is not a file type we can read (expected {kinds}). "
        "It may be damaged or of another kind."
    )


# ---------------------------------------------------------------- images


def _check_pixels(width: int, height: int, name: str, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{name}: the image has no pixels ({width}x{height}).")
    if width * height > limit:
        raise InputError(
            f"{name}: the image is too large ({width}x{height} pixels; the limit is "
            f"{limit / 1e6:.0f} million pixels)."
        )


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map any numeric array to uint8; wider types are windowed to their own min..max.

    Windowing to the image's own range (not the type's) keeps a 12-bit scan stored
    in 16 bits from turning almost black.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    a = arr.astype(np.float64)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return np.clip(np.round((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _grey(arr: np.ndarray) -> np.ndarray:
    """(H, W[, C]) any dtype -> (H, W) uint8 grey (ITU-R 601 luma for colour)."""
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[..., :3]
        if arr.shape[2] == 3:
            a = arr.astype(np.float64)
            arr = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
            if np.issubdtype(arr.dtype, np.floating) and a.max() <= 255:
                return np.clip(np.round(arr), 0, 255).astype(np.uint8)
        elif arr.shape[2] == 1:
            arr = arr[..., 0]
        else:
            raise InputError(f"unsupported number of colour channels ({arr.shape[2]})")
    if arr.ndim != 2:
        raise InputError(f"unsupported image layout {arr.shape}")
    return _to_uint8(arr)


def _open_pil(data: bytes, name: str, limits: Limits) -> Image.Image:
    """Open with PIL reading only the header, check the pixel count, then decode."""
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
        _check_pixels(img.width, img.height, name, limits.max_pixels)
        img.load()
        return img
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{name}: the image is far too large to open safely.") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: the file could not be read as an image; it may be damaged.") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(
            f"{name}: the image is damaged or incomplete and could not be read ({e})."
        ) from None


def _pil_array(img: Image.Image, name: str) -> np.ndarray:
    """PIL image -> numpy, keeping 16-bit values."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.array(img, dtype=np.uint16)
    if img.mode == "P":
        return np.array(img.convert("RGBA" if "transparency" in img.info else "RGB"))
    if img.mode in ("LA", "PA"):
        return np.array(img.convert("L"))
    if img.mode == "CMYK":
        return np.array(img.convert("RGB"))
    if img.mode == "1":
        return np.array(img.convert("L"))
    return np.array(img)


def _read_dicom(data: bytes, name: str, limits: Limits, all_frames: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError) as e:
        raise InputError(f"{name}: the DICOM file is damaged and could not be read ({e}).") from None
    if "PixelData" not in ds and rows == 0:
        raise InputError(f"{name}: the DICOM file holds no image.")
    _check_pixels(cols, rows, name, limits.max_pixels)
    if all_frames and n_frames > limits.max_frames:
        raise InputError(f"{name}: too many frames ({n_frames}; the limit is {limits.max_frames}).")
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        arr = ds.pixel_array
    except Exception as e:  # pydicom raises many types for compressed/damaged pixel data
        raise InputError(
            f"{name}: the DICOM image data could not be decoded ({type(e).__name__}: {e}). "
            "Compressed DICOM may need to be exported uncompressed."
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if n_frames == 1:
        arr = arr[None]
    elif samples > 1 and arr.ndim == 3:
        arr = arr[None]
    if photometric.startswith("YBR") and samples == 3:
        from pydicom.pixels import convert_color_space

        arr = convert_color_space(arr, photometric, "RGB")
    frames = [_grey(f) for f in (arr if all_frames else arr[:1])]
    frames = np.stack(frames)
    if photometric == "MONOCHROME1":
        frames = 255 - frames
    spacing = None
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if key in ds and ds.get(key):
            try:
                spacing = (float(ds[key].value[0]), float(ds[key].value[1]))
                break
            except (TypeError, ValueError, IndexError):
                pass
    if spacing is None and "SequenceOfUltrasoundRegions" in ds:
        try:
            region = ds.SequenceOfUltrasoundRegions[0]
            # physical deltas are in cm for ultrasound regions (unit code 3)
            if int(region.PhysicalUnitsXDirection) == 3 and int(region.PhysicalUnitsYDirection) == 3:
                spacing = (float(region.PhysicalDeltaY) * 10, float(region.PhysicalDeltaX) * 10)
        except (AttributeError, TypeError, ValueError, IndexError):
            pass
    fps = 0.0
    if "FrameTime" in ds and ds.get("FrameTime"):
        try:
            fps = 1000.0 / float(ds.FrameTime)
        except (TypeError, ValueError, ZeroDivisionError):
            fps = 0.0
    if not fps and "CineRate" in ds:
        try:
            fps = float(ds.CineRate)
        except (TypeError, ValueError):
            fps = 0.0
    return frames, spacing, fps or 10.0


def load_image_data(src: Source, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> ImageData:
    """Decode PNG, JPEG, TIFF (8/16-bit), BMP or DICOM into grey uint8 with metadata.

    Colour, alpha and palette images become grey (luma). 16-bit and other wide
    images are windowed linearly from their own minimum to maximum, so the full
    grey range is used. DICOM gives its first frame and, when present, pixel
    spacing in mm (PixelSpacing, or the ultrasound region calibration).
    """
    data, name = _read(src, name, limits)
    fmt = sniff_format(data)
    if fmt == "DICOM":
        frames, spacing, _ = _read_dicom(data, name, limits, all_frames=False)
        return ImageData(frames[0], name, "DICOM", spacing)
    if fmt in ("MP4", "MOV", "AVI"):
        raise InputError(f"{name}: this is a video; open it on the Cine page.")
    if fmt not in ("PNG", "JPEG", "TIFF", "BMP"):
        raise _describe_unknown(name, data, IMAGE_FORMATS)
    img = _open_pil(data, name, limits)
    try:
        arr = _grey(_pil_array(img, name))
    except InputError as e:
        raise InputError(f"{name}: {e}") from None
    return ImageData(arr, name, fmt)


def load_image(src: Source, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W) uint8 grey image from a path, bytes or file-like object."""
    return load_image_data(src, name, limits).image


# ---------------------------------------------------------------- masks


def load_mask(src: Source, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W) uint8 class ids: 0 background, 1 nerve, 2 vessel.

    Binary masks stored as 0/255 (or 0/1) become 0/1. Class masks (palette or grey
    PNG/TIFF with values 0, 1, 2) keep their ids. Any other value raises InputError,
    since guessing would silently score against the wrong structure.
    """
    data, name = _read(src, name, limits)
    fmt = sniff_format(data)
    if fmt not in ("PNG", "TIFF", "BMP", "JPEG"):
        raise InputError(f"{name}: a mask must be a PNG, TIFF or BMP image.")
    img = _open_pil(data, name, limits)
    if img.mode == "P":
        arr = np.array(img)  # palette indices are the class ids
    elif img.mode in ("RGB", "RGBA"):
        rgb = np.array(img)[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
            raise InputError(
                f"{name}: this mask is in colour; give class ids (0 background, 1 nerve, "
                "2 vessel) or a black-and-white mask."
            )
        arr = rgb[..., 0]
    elif img.mode == "1":
        arr = np.array(img).astype(np.uint8)
    else:
        arr = np.array(img)
        if arr.ndim == 3:
            arr = arr[..., 0]
    values = set(np.unique(arr).tolist())
    if values <= {0, 1, 2}:
        return arr.astype(np.uint8)
    if values <= {0, 255}:
        return (arr == 255).astype(np.uint8)
    if fmt == "JPEG":
        raise InputError(
            f"{name}: JPEG compression has blurred this mask's edges; save masks as PNG."
        )
    shown = sorted(values)[:8]
    raise InputError(
        f"{name}: this is not a mask we understand (pixel values {shown}{'...' if len(values) > 8 else ''}); "
        "expected 0/255 or 0/1 (nerve yes/no) or class ids 0 background, 1 nerve, 2 vessel."
    )


def check_pair(image: np.ndarray, mask: np.ndarray, image_name: str = "image", mask_name: str = "mask") -> None:
    """Raise InputError unless the mask has the image's height and width."""
    if image.shape[:2] != mask.shape[:2]:
        raise InputError(
            f"{mask_name} ({mask.shape[1]}x{mask.shape[0]}) does not match "
            f"{image_name} ({image.shape[1]}x{image.shape[0]}): the mask must have the same size."
        )


# ---------------------------------------------------------------- video


def load_frames(src: Source, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Frames:
    """Every frame of an mp4/avi/mov clip (OpenCV) or a multi-frame DICOM, grey uint8."""
    data, name = _read(src, name, limits)
    fmt = sniff_format(data)
    if fmt == "DICOM":
        frames, spacing, fps = _read_dicom(data, name, limits, all_frames=True)
        return Frames(frames, fps, name, "DICOM", spacing)
    if fmt not in ("MP4", "MOV", "AVI"):
        if fmt in ("PNG", "JPEG", "TIFF", "BMP"):
            raise InputError(f"{name}: this is a still image, not a clip; open it on the Segment page.")
        raise _describe_unknown(name, data, VIDEO_FORMATS)
    import cv2

    suffix = {"MP4": ".mp4", "MOV": ".mov", "AVI": ".avi"}[fmt]
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as tmp:
        tmp.write(data)
        path = tmp.name
    try:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise InputError(f"{name}: the video could not be opened; it may be damaged.")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
        _check_pixels(width, height, name, limits.max_video_pixels)
        if declared > limits.max_frames:
            raise InputError(
                f"{name}: the clip is too long ({declared} frames; the limit is {limits.max_frames})."
            )
        out = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
            if len(out) > limits.max_frames:
                raise InputError(f"{name}: the clip is too long (over {limits.max_frames} frames).")
        cap.release()
    finally:
        os.unlink(path)
    if not out:
        raise InputError(f"{name}: no frames could be decoded; the video may be damaged or empty.")
    if not (0 < fps < 1000):
        fps = 25.0
    return Frames(np.stack(out), fps, name, fmt)
