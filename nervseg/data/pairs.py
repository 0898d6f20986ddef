"""Image/mask pairs in a folder, and which mask file names pair with an image: the one pairing rule.

`find_pairs` takes either layout: `images/<stem>.png` + `masks/<stem>.png`, or
`<stem>_mask.png|.tif` beside or under `masks/` (evaluation folders and uploads).
"""

from __future__ import annotations

from pathlib import Path

from nervseg.data.datasets import Pair
from nervseg.io.readers import IMAGE_SUFFIXES, MASK_SUFFIXES


def _mask_for(stem: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for name in (f"{stem}_mask", stem):
            for suf in MASK_SUFFIXES:
                p = folder / f"{name}{suf}"
                if p.is_file():
                    return p
    return None


def find_pairs(folder: Path) -> list[Pair]:
    """Image/mask pairs under `folder` (with images/ and masks/, or flat with *_mask files)."""
    folder = Path(folder)
    img_dir = folder / "images" if (folder / "images").is_dir() else folder
    mask_dirs = [folder / "masks", img_dir] if (folder / "masks").is_dir() else [img_dir]
    pairs = []
    for p in sorted(img_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.stem.endswith("_mask") or not p.is_file():
            continue
        m = _mask_for(p.stem, mask_dirs)
        if m is not None and m != p:
            pairs.append(Pair(p, m))
    return pairs
