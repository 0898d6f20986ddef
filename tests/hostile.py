"""A hostile corpus, generated on the fly (nothing committed): bombs that are cheap to build.

Deflate bombs are built from one compressed block of zeros repeated: after a
Z_FULL_FLUSH the compressor's state is reset, so every 1 MiB block of zeros
compresses to the same ~1 kB, and a 2 GB stream costs a few MB and milliseconds.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

MIB = 1 << 20


def zeros_deflate(n_bytes: int, prefix: bytes = b"") -> bytes:
    """A raw deflate stream (wbits -15) of `prefix` followed by `n_bytes` zero bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "zlib did not reset its state at a full flush"
    whole, rest = divmod(n_bytes, MIB)
    tail = c.compress(bytes(rest)) + c.flush()
    return head + block * whole + tail


def _dataset_bytes(rows: int, cols: int, frames: int, bits: int = 8) -> bytes:
    """An explicit-VR little-endian dataset (no file meta) up to the PixelData element header."""
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"  # ultrasound multi-frame
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.Modality = "US"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    return buf.getvalue()


def _file_meta(transfer_syntax: str) -> bytes:
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = "1.2.3.4"
    buf = DicomBytesIO()
    write_file_meta_info(buf, meta, enforce_standard=True)
    return b"\0" * 128 + b"DICM" + buf.getvalue()


def deflate_dicom(rows: int, cols: int, frames: int) -> bytes:
    """A deflated-transfer-syntax DICOM whose dataset inflates to rows*cols*frames bytes of zeros."""
    n = rows * cols * frames
    head = _dataset_bytes(rows, cols, frames) + b"\xe0\x7f\x10\x00OB\0\0" + struct.pack("<I", n)
    return _file_meta("1.2.840.10008.1.2.1.99") + zeros_deflate(n, head)


def deflate_dicom_lying(claimed: tuple[int, int, int], inflated: int) -> bytes:
    """Deflated DICOM whose header claims small frames but whose stream inflates to `inflated` bytes."""
    rows, cols, frames = claimed
    head = _dataset_bytes(rows, cols, frames) + b"\xe0\x7f\x10\x00OB\0\0" + struct.pack("<I", inflated)
    return _file_meta("1.2.840.10008.1.2.1.99") + zeros_deflate(inflated, head)


def header_only_dicom(rows: int, cols: int, frames: int, bits: int = 16) -> bytes:
    """An uncompressed DICOM claiming rows x cols x frames with almost no pixel data behind it."""
    head = _dataset_bytes(rows, cols, frames, bits) + b"\xe0\x7f\x10\x00OW\0\0" + struct.pack("<I", 1024)
    return _file_meta("1.2.840.10008.1.2.1") + head + bytes(1024)


# ---------------------------------------------------------------- zips written by hand


def _zip(entries: list[tuple[str, bytes, int, int]], cd_repeat: int = 1) -> bytes:
    """A zip from (name, deflated data, declared size, crc); `cd_repeat` central entries per member."""
    out, central = io.BytesIO(), []
    for name, comp, size, crc in entries:
        offset = out.tell()
        n = name.encode()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(comp), size, len(n), 0) + n + comp)
        for k in range(cd_repeat):
            alias = n if k == 0 else n.replace(b".", f"_{k}.".encode(), 1)
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(comp), size,
                                       len(alias), 0, 0, 0, 0, 0, offset) + alias)
    start = out.tell()
    cd = b"".join(central)
    out.write(cd)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(cd), start, 0))
    return out.getvalue()


def zip_lying_member(declared: int, inflated: int, name: str = "images/a.png") -> bytes:
    """One member that declares `declared` bytes but inflates to `inflated` zero bytes."""
    crc = zlib.crc32(bytes(declared))
    return _zip([(name, zeros_deflate(inflated), declared, crc)])


def zip_overlapping(copies: int, inflated: int) -> bytes:
    """`copies` central-directory entries all pointing at one member inflating to `inflated` bytes."""
    data = bytes(inflated)
    return _zip([("images/a_mask.png", zeros_deflate(inflated), inflated, zlib.crc32(data))], cd_repeat=copies)


def png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def big_pairs_zip(n: int, side: int) -> bytes:
    """`n` distinct side x side image/mask pairs (flat grey, tiny once compressed) in one zip."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            img = np.full((side, side), i % 250, np.uint8)
            img[0, 0] = 255
            mask = np.zeros((side, side), np.uint8)
            mask[: side // 2, : side // 2] = 255
            zf.writestr(f"images/{i:03d}.png", png(img))
            zf.writestr(f"masks/{i:03d}.png", png(mask))
    return buf.getvalue()


def rgb_png(width: int, height: int) -> bytes:
    """A large RGB PNG that compresses to almost nothing (a near-flat colour)."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[..., 0], arr[0, 0] = 40, (255, 255, 255)
    return png(arr)


def float_tiff(values: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(values.astype(np.float32), mode="F").save(buf, format="TIFF")
    return buf.getvalue()


def cmyk_jpeg_mask(side: int = 32) -> bytes:
    """A black mask with a white square, saved as a CMYK JPEG (what some editors export)."""
    from PIL import Image

    arr = np.zeros((side, side), np.uint8)
    arr[8:24, 8:24] = 255
    buf = io.BytesIO()
    Image.fromarray(arr).convert("CMYK").save(buf, format="JPEG", quality=100)
    return buf.getvalue()
