"""Limits checked before any decode, and the error every user-caused problem raises.

Kept apart from `nervseg.io.readers` so the decoders (`nervseg.io.dicom`, `nervseg.io.pixels`)
share them without importing each other; `nervseg.io.readers` re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass


class InputError(ValueError):
    """A file the user gave cannot be used; the message says why, in plain words."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds checked before a file is fully decoded."""

    max_bytes: int = 200 * 1024 * 1024
    max_pixels: int = 40_000_000  # e.g. 8000 x 5000; a scan is ~0.3 Mpx
    max_frames: int = 3000
    max_video_pixels: int = 4_000_000  # per frame
    max_decoded_bytes: int = 512 * 1024 * 1024  # one decoded DICOM frame, before grey
    max_total_pixels: int = 400_000_000  # all frames of a clip together (400 MB as uint8)


DEFAULT_LIMITS = Limits()


def check_pixels(width: int, height: int, name: str, limit: int) -> None:
    """Refuse a width x height (read from a header) with no pixels or more than `limit`."""
    if width <= 0 or height <= 0:
        raise InputError(f"{name}: the image has no pixels ({width}x{height}).")
    if width * height > limit:
        raise InputError(
            f"{name}: the image is too large ({width}x{height} pixels; the limit is "
            f"{limit / 1e6:.0f} million pixels)."
        )


def check_size(size: int, name: str, limits: Limits) -> None:
    if size == 0:
        raise InputError(f"{name}: the file is empty (0 bytes).")
    if size > limits.max_bytes:
        raise InputError(
            f"{name}: the file is too large ({size / 1e6:.0f} MB; the limit is "
            f"{limits.max_bytes / 1e6:.0f} MB)."
        )


def safe_name(name: str) -> str:
    """A file name fit for messages and CSV: undecodable bytes (surrogates) become U+FFFD."""
    return str(name).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
