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

from nervseg.io.limits import DEFAULT_LIMITS, InputError, Limits, check_pixels, check_size, safe_name
from nervseg.io.pixels import to_grey

_check_size = check_size

Source = Union[str, os.PathLike, bytes, bytearray, BinaryIO]

IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "DICOM")
VIDEO_FORMATS = ("MP4", "AVI", "MOV", "DICOM")
# The file names each kind is looked for under (data folders, uploads, pairing): the one list of each.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".dcm", ".dicom")
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".dcm", ".dicom")
# The largest class id a mask may hold. 2 (nerve, vessel) until a dataset spec with more classes is
# loaded: nervseg.data.datasets raises it to its largest task's, so io itself names no class.
_max_class_id = 2


def allow_class_ids(largest: int) -> None:
    """Let masks hold class ids up to `largest` (never lowers the current limit)."""
    global _max_class_id
    _max_class_id = max(_max_class_id, int(largest))


def max_class_id() -> int:
    return _max_class_id


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
        name = safe_name(name or path.name)
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
    name = safe_name(name)
    _check_size(len(data), name, limits)
    return data, name


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


def _open_pil(data: bytes, name: str, limits: Limits) -> Image.Image:
    """Open with PIL reading only the header, check the pixel count, then decode."""
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
        check_pixels(img.width, img.height, name, limits.max_pixels)
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


_TO_L = ("RGB", "RGBA", "RGBX", "P", "PA", "LA", "CMYK", "YCbCr", "LAB", "HSV", "1")


def _pil_grey(img: Image.Image) -> np.ndarray:
    """PIL image -> (H, W) uint8 grey; 8-bit colour via PIL's own luma (no RGB array copy)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return to_grey(np.array(img, dtype=np.uint16))
    if img.mode in _TO_L:
        return np.array(img.convert("L"))
    return to_grey(np.array(img))


def image_size(src: Source, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> tuple[int, int, int]:
    """(width, height, frames) from the header only: budget a batch before decoding any of it."""
    data, name = _read(src, name, limits)
    fmt = sniff_format(data)
    if fmt == "DICOM":
        from nervseg.io.dicom import header_size

        return header_size(data, name)
    if fmt not in ("PNG", "JPEG", "TIFF", "BMP"):
        raise _describe_unknown(name, data, IMAGE_FORMATS)
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.width, img.height, int(getattr(img, "n_frames", 1) or 1)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise InputError(f"{name}: the image header could not be read ({e}).") from None


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
        from nervseg.io.dicom import read_dicom

        frames, spacing, _ = read_dicom(data, name, limits, all_frames=False)
        return ImageData(frames[0], name, "DICOM", spacing)
    if fmt in ("MP4", "MOV", "AVI"):
        raise InputError(f"{name}: this is a video; open it on the Cine page.")
    if fmt not in ("PNG", "JPEG", "TIFF", "BMP"):
        raise _describe_unknown(name, data, IMAGE_FORMATS)
    img = _open_pil(data, name, limits)
    try:
        arr = _pil_grey(img)
    except InputError as e:
        raise InputError(f"{name}: {e}") from None
    return ImageData(arr, name, fmt)


def load_image(src: Source, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W) uint8 grey image from a path, bytes or file-like object."""
    return load_image_data(src, name, limits).image


# ---------------------------------------------------------------- masks


def load_mask(src: Source, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W) uint8 class ids: 0 background, 1 nerve, 2 vessel (and up to `max_class_id()`).

    Binary masks stored as 0/255 (or 0/1) become 0/1. Class masks (palette or grey
    PNG/TIFF with values 0, 1, 2, ...) keep their ids. Any other value raises InputError,
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
                f"2 vessel{_more_ids()}) or a black-and-white mask."
            )
        arr = rgb[..., 0]
    elif img.mode == "1":
        arr = np.array(img).astype(np.uint8)
    elif img.mode in _TO_L:  # CMYK, YCbCr...: their first channel is not the grey level
        arr = np.array(img.convert("L"))
    else:
        arr = np.array(img)
        if arr.ndim == 3:
            arr = arr[..., 0]
    values = set(np.unique(arr).tolist())
    if values <= set(range(_max_class_id + 1)):
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
        f"expected 0/255 or 0/1 (nerve yes/no) or class ids 0 background, 1 nerve, 2 vessel{_more_ids()}."
    )


def _more_ids() -> str:
    return f", ... up to {_max_class_id}" if _max_class_id > 2 else ""


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
        from nervseg.io.dicom import read_dicom

        frames, spacing, fps = read_dicom(data, name, limits, all_frames=True)
        return Frames(frames, fps, name, "DICOM", spacing)
    if fmt not in ("MP4", "MOV", "AVI"):
        if fmt in ("PNG", "JPEG", "TIFF", "BMP"):
            raise InputError(f"{name}: this is a still image, not a clip; open it on the Segment page.")
        raise _describe_unknown(name, data, VIDEO_FORMATS)
    suffix = {"MP4": ".mp4", "MOV": ".mov", "AVI": ".avi"}[fmt]
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as tmp:
        tmp.write(data)
        path = tmp.name
    try:
        out, fps = _decode_video(path, name, limits)
    finally:
        os.unlink(path)
    return Frames(out, fps, name, fmt)


def _decode_video(path: str, name: str, limits: Limits) -> tuple[np.ndarray, float]:
    """(frames (N, H, W) uint8, fps) with OpenCV; size, length and total pixels checked first.

    Frames go into one array sized from the limits: pages never touched stay unallocated,
    so memory follows the real length and there is no list-then-stack copy.
    """
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise InputError(f"{name}: the video could not be opened; it may be damaged.")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
        check_pixels(width, height, name, limits.max_video_pixels)
        most = min(limits.max_frames, limits.max_total_pixels // (width * height))
        if declared > limits.max_frames:
            raise InputError(f"{name}: the clip is too long ({declared} frames; the limit is {limits.max_frames}).")
        if declared > most:
            raise InputError(f"{name}: the clip is too large ({declared} frames of {width}x{height}; the limit "
                             f"is {limits.max_total_pixels / 1e6:.0f} million pixels in all).")
        out, n = np.empty((most, height, width), np.uint8), 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if n >= most or frame.shape[:2] != (height, width):
                raise InputError(f"{name}: the clip is too long or its frames change size (over {n} frames).")
            out[n] = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise InputError(f"{name}: no frames could be decoded; the video may be damaged or empty.")
    return out[:n], fps if 0 < fps < 1000 else 25.0
