"""A scanner-like stream made from real scans, for a demo, a test or a benchmark with no camera.

Each bundled usgra-seg scan (or any grey scans given) is shown for a while inside a 640x480 frame
with a static interface around it (a dark border, a title bar, a depth ruler), drifting a few pixels
per frame as if the probe moved. The frame index can be stamped as a binary code in the top-left
corner (outside the image region) so a benchmark can match a shown frame to the one sent.
Written as an H.264 mp4 (a clip played as if live) or as a y4m file (Chromium's fake camera).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from nervseg.live.region import Crop

FRAME_WH = (640, 480)
IMAGE_BOX = Crop(120, 56, 400, 400)  # where the scan sits in the frame (the region to find)
CODE_BITS = 12  # frame index stamp: 12 cells of CODE_CELL px in the top-left corner
CODE_CELL = 8
CODE_ORIGIN = (4, 4)  # (x, y) of the first cell


def bundled_scans() -> list[np.ndarray]:
    """The bundled usgra-seg scans as grey arrays (sample_images/; [] when absent)."""
    from nervseg.data import samples

    return [img for s in samples.bundled() if (img := cv2.imread(str(s.image), cv2.IMREAD_GRAYSCALE)) is not None]


def _interface(size_wh: tuple[int, int]) -> np.ndarray:
    """The static part of the frame: a dark border, a title bar with text, a depth ruler."""
    w, h = size_wh
    ui = np.full((h, w, 3), 18, np.uint8)
    cv2.rectangle(ui, (0, 0), (w - 1, 40), (40, 44, 52), -1)
    cv2.putText(ui, "nervseg synthetic scanner  L12-5  12 MHz", (130, 27), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                (200, 200, 200), 1, cv2.LINE_AA)
    for k in range(0, 9):  # depth ruler right of the image, 1 cm ticks
        y = IMAGE_BOX.y + k * IMAGE_BOX.h // 8
        cv2.line(ui, (IMAGE_BOX.x + IMAGE_BOX.w + 8, y), (IMAGE_BOX.x + IMAGE_BOX.w + 18, y), (160, 160, 160), 1)
        cv2.putText(ui, str(k), (IMAGE_BOX.x + IMAGE_BOX.w + 24, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (160, 160, 160), 1, cv2.LINE_AA)
    return ui


def stamp_index(frame: np.ndarray, index: int) -> None:
    """Write `index` (mod 2**CODE_BITS) into the frame's top-left corner as black/white cells, in place."""
    x0, y0 = CODE_ORIGIN
    for bit in range(CODE_BITS):
        on = (index >> bit) & 1
        x = x0 + bit * CODE_CELL
        frame[y0:y0 + CODE_CELL, x:x + CODE_CELL] = 255 if on else 0


def read_index(frame: np.ndarray) -> int:
    """The index stamped by `stamp_index` (the centre of each cell, thresholded at mid grey)."""
    x0, y0 = CODE_ORIGIN
    grey = frame if frame.ndim == 2 else frame.mean(axis=2)
    c = CODE_CELL // 2
    return sum(1 << b for b in range(CODE_BITS) if grey[y0 + c, x0 + b * CODE_CELL + c] > 127)


def scan_frames(scans: Sequence[np.ndarray], n_frames: int, frames_per_scan: int = 30,
                size_wh: tuple[int, int] = FRAME_WH, stamp: bool = False) -> Iterator[np.ndarray]:
    """`n_frames` RGB frames: each scan for `frames_per_scan` frames inside the interface, drifting."""
    if not len(scans):
        raise ValueError("no scans to make a stream from")
    ui = _interface(size_wh)
    box = IMAGE_BOX
    margin = 12  # the scan is cut a little larger than the box, so it can drift inside it
    sized = [cv2.resize(s, (box.w + 2 * margin, box.h + 2 * margin), interpolation=cv2.INTER_AREA) for s in scans]
    for i in range(n_frames):
        scan = sized[(i // frames_per_scan) % len(sized)]
        phase = 2 * np.pi * (i % frames_per_scan) / frames_per_scan
        dx, dy = int(round(margin * np.sin(phase))), int(round(margin / 2 * np.sin(2 * phase)))
        view = scan[margin + dy: margin + dy + box.h, margin + dx: margin + dx + box.w]
        frame = ui.copy()
        frame[box.slices()] = view[..., None]
        if stamp:
            stamp_index(frame, i)
        yield frame


def write_y4m(path: str | Path, frames: Iterator[np.ndarray] | Sequence[np.ndarray], fps: int = 30) -> Path:
    """RGB frames -> an uncompressed YUV4MPEG2 (I420) file, the format of Chromium's fake camera."""
    path = Path(path)
    with path.open("wb") as f:
        header = False
        for rgb in frames:
            h, w = rgb.shape[:2]
            if not header:
                f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
                header = True
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def write_mp4(path: str | Path, frames: Iterator[np.ndarray] | Sequence[np.ndarray], fps: float = 30.0) -> Path:
    """RGB frames -> an H.264 mp4 (nervseg.cine.clip.Mp4Writer)."""
    from nervseg.cine.clip import Mp4Writer

    path = Path(path)
    writer = None
    try:
        for rgb in frames:
            if writer is None:
                writer = Mp4Writer(path, (rgb.shape[1], rgb.shape[0]), fps)
            writer.write(rgb)
    finally:
        if writer is not None:
            writer.close()
    return path
