"""Any numeric pixel array -> grey uint8, without full-size float copies.

A 40-million-pixel RGB image converted through float64 costs about 1 GB; here
8/16-bit colour goes through OpenCV and wider types are windowed in float32 chunks.
"""

from __future__ import annotations

import numpy as np

from nervseg.io.limits import InputError

_CHUNK = 1 << 20  # elements converted at a time: no full-size float copy of a large image


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map any numeric array to uint8; wider types are windowed to their own min..max.

    Windowing to the image's own range (not the type's) keeps a 12-bit scan stored
    in 16 bits from turning almost black. Float NaN/Inf are left out of the window
    (NaN -> 0, +Inf -> 255); an image with no finite value is refused. Conversion
    runs in float32 chunks, never on a float64 copy of the whole image.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    flat = np.ascontiguousarray(arr).reshape(-1)
    floating = np.issubdtype(arr.dtype, np.floating)
    lo, hi = np.inf, -np.inf
    for i in range(0, flat.size, _CHUNK):
        c = flat[i:i + _CHUNK]
        if floating:
            c = c[np.isfinite(c)]
        if c.size:
            lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
    if lo > hi:
        raise InputError("the image holds no finite pixel values (only NaN or infinity)")
    out = np.zeros(flat.shape, np.uint8)
    if hi > lo:
        scale = 255.0 / (hi - lo)
        for i in range(0, flat.size, _CHUNK):
            c = flat[i:i + _CHUNK].astype(np.float32)
            if floating:
                np.nan_to_num(c, copy=False, nan=lo, posinf=hi, neginf=lo)
            c -= lo
            c *= scale
            np.clip(np.round(c, out=c), 0, 255, out=c)
            out[i:i + _CHUNK] = c
    return out.reshape(arr.shape)


def to_grey(arr: np.ndarray) -> np.ndarray:
    """(H, W[, C]) any dtype -> (H, W) uint8 grey (ITU-R 601 luma for colour).

    8- and 16-bit colour goes through cv2.cvtColor (no float copy); colour stored
    wider than 8 bits is windowed like a grey image after the luma.
    """
    if arr.ndim == 3:
        if arr.shape[2] == 1:
            arr = arr[..., 0]
        elif arr.shape[2] in (3, 4):
            arr = _luma(arr[..., :3])
            if arr.dtype == np.uint8:
                return arr
        else:
            raise InputError(f"unsupported number of colour channels ({arr.shape[2]})")
    if arr.ndim != 2:
        raise InputError(f"unsupported image layout {arr.shape}")
    return _to_uint8(arr)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """RGB -> luma; uint8 stays uint8, 16-bit whose values fit 8 bits becomes uint8 too."""
    import cv2

    if rgb.dtype in (np.uint8, np.uint16):
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    else:
        grey = np.empty(rgb.shape[:2], np.float32)
        for i in range(0, rgb.shape[0], max(1, _CHUNK // max(1, rgb.shape[1]))):
            c = rgb[i:i + _CHUNK // max(1, rgb.shape[1])].astype(np.float32)
            grey[i:i + c.shape[0]] = c[..., 0] * 0.299 + c[..., 1] * 0.587 + c[..., 2] * 0.114
    if grey.dtype == np.uint16 and int(grey.max()) <= 255:
        return grey.astype(np.uint8)
    return grey
