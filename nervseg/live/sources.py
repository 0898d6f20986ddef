"""Where live frames come from when there is no camera in the browser.

- a capture device on the server machine (a USB capture card on the laptop running the app):
  `NERVSEG_LIVE_DEVICE=/dev/video0` (Linux V4L2; PyAV / FFmpeg opens it);
- a recorded clip played as if live, looping at its own frame rate: the shared bp-videos clips when
  the data is present, and a synthetic clip made from the bundled scans (always there).
Each source opens as an aiortc video track (`Source.video_track`), which `nervseg.live.stream.OverlayTrack` pulls.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEVICE_ENV = "NERVSEG_LIVE_DEVICE"
SYNTHETIC_NAME = "synthetic-usgra.mp4"


@dataclass(frozen=True)
class Source:
    """A stream the server plays: a label for the page, and what to open."""

    label: str
    path: str
    device: bool = False  # a capture device (V4L2) rather than a file

    def video_track(self):
        """A new video track over this source (aiortc MediaPlayer: a file loops at its own frame rate,
        a device is opened at 640x480, 30 frames/s)."""
        from aiortc.contrib.media import MediaPlayer

        if self.device:
            player = MediaPlayer(self.path, format="v4l2", options={"video_size": "640x480", "framerate": "30"})
        else:
            player = MediaPlayer(self.path, loop=True, decode=True)
        if player.video is None:
            raise ValueError(f"{self.path} has no video")
        return player.video


def device_source() -> Source | None:
    """The server's capture device named by $NERVSEG_LIVE_DEVICE, when set."""
    dev = os.environ.get(DEVICE_ENV, "").strip()
    return Source(f"Capture device on the server ({dev})", dev, device=True) if dev else None


def synthetic_clip(folder: Path | None = None, seconds: float = 24.0, fps: float = 30.0) -> Path:
    """A looping clip of the bundled scans inside a scanner-like interface (made once, then reused)."""
    from nervseg.live import synthetic

    folder = Path(folder) if folder else Path(tempfile.gettempdir()) / "nervseg-live"
    path = folder / SYNTHETIC_NAME
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        scans = synthetic.bundled_scans()
        if not scans:
            raise FileNotFoundError("no bundled scans in sample_images/ to make a synthetic clip from")
        n = int(seconds * fps)
        part = path.with_suffix(".part.mp4")
        synthetic.write_mp4(part, synthetic.scan_frames(scans, n, frames_per_scan=max(1, n // len(scans))), fps)
        part.replace(path)
    return path


def clip_sources() -> list[Source]:
    """Clips that can be played as if live: the shared bp-videos clips, then the synthetic one."""
    from nervseg.cine.boxes import sample_clips

    out = [Source(f"Clip as if live: {p.name} (bp-videos)", str(p)) for p in sample_clips()]
    out.append(Source("Clip as if live: synthetic, from the bundled usgra-seg scans", "synthetic"))
    return out


def resolve(source: Source) -> Source:
    """The synthetic source made real (its clip written on first use); others unchanged."""
    if source.path == "synthetic" and not source.device:
        return Source(source.label, str(synthetic_clip()))
    return source
