"""DICOM bytes -> grey uint8 frames, with every decode budgeted from the header first.

Why a module of its own: a small DICOM can claim (or inflate to) gigabytes. The
header (rows x columns x frames x samples x bytes) is checked against `Limits`
before any pixel is decoded; the deflated transfer syntax is inflated here with a
hard output cap (pydicom would inflate all of it at once); frames are decoded one
at a time, so peak memory is the grey output plus one decoded frame.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np

from nervseg.io.limits import InputError, Limits, check_pixels
from nervseg.io.pixels import to_grey

DEFLATED = "1.2.840.10008.1.2.1.99"
HEAD_BYTES = 1 << 20  # inflated bytes read to find the header of a deflated file


@dataclass(frozen=True)
class Header:
    """What the header says about the pixel data, before decoding any of it."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * self.samples * max(1, (self.bits_allocated + 7) // 8)


def _meta_end(data: bytes, name: str) -> tuple[object, int]:
    """(file meta dataset, offset where the main dataset starts)."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    try:
        fp = io.BytesIO(data)
        read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
        return meta, fp.tell()
    except Exception as e:  # pydicom raises many types for a damaged file meta
        raise InputError(f"{name}: the DICOM file is damaged and could not be read ({e}).") from None


def inflate(data: bytes, name: str, cap: int, head_only: bool = False) -> bytes:
    """A deflated-transfer-syntax file rewritten as explicit VR little endian, inflated with a cap.

    Refuses before allocating more than `cap` bytes of inflated data, where pydicom
    would inflate the whole dataset in one call (a 2 MB file can hold 2 GB).
    `head_only` keeps the first `cap` bytes instead (enough for the header).
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import ExplicitVRLittleEndian

    meta, start = _meta_end(data, name)
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        body = d.decompress(memoryview(data)[start:], cap + 1)
    except zlib.error as e:
        raise InputError(f"{name}: the compressed DICOM data is damaged ({e}).") from None
    if head_only:
        body = body[:cap]
    elif len(body) > cap or d.unconsumed_tail:
        raise InputError(
            f"{name}: the compressed DICOM expands beyond {cap / 1e6:.0f} MB, more than its header "
            "describes or than the limit; export it uncompressed or smaller."
        )
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = DicomBytesIO()
    write_file_meta_info(buf, meta, enforce_standard=False)
    return b"\0" * 128 + b"DICM" + buf.getvalue() + body


def read_header(data: bytes, name: str):
    """(dataset without pixel data, Header); pixel data is neither read nor decoded."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        head = Header(
            rows=int(ds.get("Rows", 0) or 0), columns=int(ds.get("Columns", 0) or 0),
            frames=int(ds.get("NumberOfFrames", 1) or 1), samples=int(ds.get("SamplesPerPixel", 1) or 1),
            bits_allocated=int(ds.get("BitsAllocated", 8) or 8),
        )
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, KeyError) as e:
        raise InputError(f"{name}: the DICOM file is damaged and could not be read ({e}).") from None
    return ds, head


def frames_in_pixel_data(data: bytes, head: Header) -> int:
    """How many whole frames the pixel data really holds (0 without pixel data), read from the element
    headers only: a header may declare 100,000 frames over one frame's bytes (a damaged or hostile file)."""
    import pydicom
    from pydicom.encaps import parse_basic_offsets, parse_fragments

    ds = pydicom.dcmread(io.BytesIO(data), defer_size=256)
    elem = ds.get_item("PixelData") if "PixelData" in ds else None
    if elem is None:
        return 0
    start = getattr(elem, "value_tell", None)
    if start is None:  # read in full (small): its length is what is there
        return _whole_frames(len(elem.value), head)
    if elem.length != 0xFFFFFFFF:  # native: bytes really present after the tag, not the length it claims
        return _whole_frames(min(elem.length, len(data) - start), head)
    buf = io.BytesIO(data)
    buf.seek(start)
    offsets = parse_basic_offsets(buf)
    n_fragments, _ = parse_fragments(buf)
    return len(offsets) if offsets else (n_fragments if head.frames > 1 else min(n_fragments, 1))


def _whole_frames(nbytes: int, head: Header) -> int:
    bits = head.rows * head.columns * head.samples * head.bits_allocated
    return (8 * nbytes) // bits if bits else 0


def check_frames_present(data: bytes, head: Header, name: str) -> None:
    """InputError when the pixel data holds fewer frames than the header declares."""
    try:
        present = frames_in_pixel_data(data, head)
    except InputError:
        raise
    except Exception as e:  # pydicom raises many types for damaged element headers
        raise InputError(f"{name}: the DICOM pixel data is damaged ({type(e).__name__}: {e}).") from None
    if present < head.frames:
        raise InputError(f"{name}: the DICOM file is damaged: its header declares {head.frames} frame(s) but its "
                         f"pixel data holds {present}. Export it again from the scanner.")


def check_budget(head: Header, name: str, limits: Limits, all_frames: bool) -> None:
    """Refuse, from the header alone, what would take too much memory to decode."""
    if head.rows == 0 or head.columns == 0:
        raise InputError(f"{name}: the DICOM file holds no image.")
    if head.frames < 1 or head.samples not in (1, 3, 4) or head.bits_allocated not in (1, 8, 16, 32, 64):
        raise InputError(
            f"{name}: the DICOM header is not one we can decode ({head.frames} frames, "
            f"{head.samples} samples, {head.bits_allocated} bits)."
        )
    check_pixels(head.columns, head.rows, name, limits.max_pixels)
    if head.frame_bytes > limits.max_decoded_bytes:
        raise InputError(f"{name}: one frame would take {head.frame_bytes / 1e6:.0f} MB to decode "
                         f"(the limit is {limits.max_decoded_bytes / 1e6:.0f} MB).")
    if all_frames:
        if head.frames > limits.max_frames:
            raise InputError(f"{name}: too many frames ({head.frames}; the limit is {limits.max_frames}).")
        total = head.frames * head.rows * head.columns
        if total > limits.max_total_pixels:
            raise InputError(
                f"{name}: the clip is too large ({head.frames} frames of {head.columns}x{head.rows}; "
                f"the limit is {limits.max_total_pixels / 1e6:.0f} million pixels in all)."
            )


def read_dicom(data: bytes, name: str, limits: Limits, all_frames: bool):
    """(frames (N, H, W) uint8, spacing mm or None, fps) from DICOM bytes, budgeted first."""
    from pydicom.pixels import iter_pixels

    meta, _ = _meta_end(data, name)
    if str(getattr(meta, "TransferSyntaxUID", "")) == DEFLATED:
        _, head = read_header(inflate(data, name, HEAD_BYTES, head_only=True), name)
        check_budget(head, name, limits, all_frames)  # before inflating the pixels
        if head.frame_bytes * head.frames > limits.max_bytes:
            raise InputError(f"{name}: the compressed DICOM would expand to {head.frame_bytes * head.frames / 1e6:.0f} "
                             f"MB (the limit is {limits.max_bytes / 1e6:.0f} MB); export it uncompressed or smaller.")
        data = inflate(data, name, min(limits.max_bytes, head.frame_bytes * head.frames + HEAD_BYTES))
    ds, head = read_header(data, name)
    check_frames_present(data, head, name)  # every loader, a still too: a header that lies is damage
    check_budget(head, name, limits, all_frames)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    n = head.frames if all_frames else 1
    out = np.empty((n, head.rows, head.columns), np.uint8)
    try:
        for i, arr in enumerate(iter_pixels(io.BytesIO(data), indices=range(n))):
            if arr.shape[:2] != (head.rows, head.columns):
                raise ValueError(f"frame {i} is {arr.shape}, the header says {head.rows}x{head.columns}")
            out[i] = to_grey(arr)
    except InputError as e:
        raise InputError(f"{name}: {e}") from None
    except Exception as e:  # pydicom raises many types for compressed/damaged pixel data
        raise InputError(
            f"{name}: the DICOM image data could not be decoded ({type(e).__name__}: {e}). "
            "Compressed DICOM may need to be exported uncompressed."
        ) from None
    if photometric == "MONOCHROME1":
        np.subtract(255, out, out=out)
    return out, _spacing(ds), _fps(ds)


def _spacing(ds) -> tuple[float, float] | None:
    """Pixel spacing in mm: PixelSpacing, ImagerPixelSpacing, or the ultrasound region (cm)."""
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if key in ds and ds.get(key):
            try:
                return (float(ds[key].value[0]), float(ds[key].value[1]))
            except (TypeError, ValueError, IndexError):
                pass
    if "SequenceOfUltrasoundRegions" in ds:
        try:
            region = ds.SequenceOfUltrasoundRegions[0]
            # physical deltas are in cm for ultrasound regions (unit code 3)
            if int(region.PhysicalUnitsXDirection) == 3 and int(region.PhysicalUnitsYDirection) == 3:
                return (float(region.PhysicalDeltaY) * 10, float(region.PhysicalDeltaX) * 10)
        except (AttributeError, TypeError, ValueError, IndexError):
            pass
    return None


def _fps(ds) -> float:
    """Frames per second from FrameTime (ms) or CineRate; 10 when neither is usable."""
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
    return fps if 0 < fps < 1000 else 10.0


def header_size(data: bytes, name: str) -> tuple[int, int, int]:
    """(width, height, frames) from a DICOM header, without decoding (or inflating) pixels."""
    meta, _ = _meta_end(data, name)
    if str(getattr(meta, "TransferSyntaxUID", "")) == DEFLATED:
        data = inflate(data, name, HEAD_BYTES, head_only=True)
    _, head = read_header(data, name)
    return head.columns, head.rows, head.frames
