"""Box annotations of cine clips (bp-videos) and how predictions agree with them.

Boxes, not masks: weak ground truth, scored as the share of predicted nerve inside the
union of boxes and the share of annotated frames where the prediction touches a box.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from nervseg import data_root
from nervseg.cine.clip import load_clip
from nervseg.cine.view import process_clip
from nervseg.data.datasets import TASKS
from nervseg.inference.segmenter import Segmenter
from nervseg.io import readers as nio

Box = tuple[int, int, int, int]  # x, y, width, height in pixels


def read_boxes(src: str | os.PathLike | Iterable[str]) -> dict[int, list[Box]]:
    """Per-frame boxes from a bp-videos .txt (JSON lines `{"<frame>": {"bounding_boxes": "[[x,y,w,h],...]"}}`).

    Raises InputError on a line that is not such JSON.
    """
    lines = Path(src).read_text().splitlines() if isinstance(src, (str, os.PathLike)) else list(src)
    out: dict[int, list[Box]] = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
            for key, entry in obj.items():
                raw = entry["bounding_boxes"]
                boxes = json.loads(raw) if isinstance(raw, str) else raw
                out[int(key)] = [tuple(int(round(v)) for v in b[:4]) for b in boxes]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise nio.InputError(f"box file line {n} cannot be read ({e}).") from None
    return out


def boxes_mask(shape: tuple[int, int], boxes: Iterable[Box]) -> np.ndarray:
    """(H, W) bool: the union of the boxes, clipped to the frame."""
    m = np.zeros(shape, bool)
    for x, y, w, h in boxes:
        m[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)] = True
    return m


def box_agreement(masks: Sequence[np.ndarray], boxes_per_frame: dict[int, list[Box]], class_id: int = 1) -> dict:
    """How predictions sit relative to box annotations, over the annotated frames.

    inside_share: predicted `class_id` pixels inside the union of boxes / all predicted
    pixels (pooled over frames). frames_overlap_share: annotated frames where the
    prediction touches at least one box / annotated frames (a frame with no
    prediction counts as a miss). Also the per-frame mean of the inside share over
    frames with a prediction, and the pooled share of box pixels covered.
    """
    inside = total = covered = box_px = 0
    overlap_frames = predicted_frames = annotated = 0
    per_frame = []
    for idx, boxes in sorted(boxes_per_frame.items()):
        if idx >= len(masks) or not boxes:
            continue
        annotated += 1
        pred = masks[idx] == class_id
        union = boxes_mask(pred.shape, boxes)
        n_pred = int(pred.sum())
        n_in = int((pred & union).sum())
        inside += n_in
        total += n_pred
        covered += n_in
        box_px += int(union.sum())
        if n_pred:
            predicted_frames += 1
            per_frame.append(n_in / n_pred)
        if n_in:
            overlap_frames += 1
    nan = float("nan")
    return {
        "annotated_frames": annotated,
        "frames_with_prediction": predicted_frames,
        "inside_share": inside / total if total else nan,
        "inside_share_mean_per_frame": float(np.mean(per_frame)) if per_frame else nan,
        "frames_overlap_share": overlap_frames / annotated if annotated else nan,
        "box_covered_share": covered / box_px if box_px else nan,
    }


def clip_tasks() -> list[str]:
    """Tasks whose spec names a folder of box-annotated clips of the same anatomy."""
    return [key for key, ds in TASKS.items() if ds.clips]


def sample_clips(root: Path | None = None) -> list[Path]:
    """The box-annotated sample clips (bp-videos) when the shared data is present."""
    root = Path(root) if root else data_root()
    folders = [root / TASKS[t].clips for t in clip_tasks()]
    return sorted(p for f in folders if f.is_dir() for p in f.glob("*.mp4"))


def agreement_for_model(segmenter: Segmenter, clips: Sequence[Path], smoothing: float = 0.0, batch_size: int = 8) -> dict:
    """box_agreement per clip (clip.mp4 beside clip.txt) and pooled over the clips."""
    per_clip = {}
    pooled = {"inside": 0.0, "total": 0.0, "overlap": 0.0, "annotated": 0}
    for clip in clips:
        boxes = read_boxes(clip.with_suffix(".txt"))
        res = process_clip(segmenter, load_clip(clip), smoothing=smoothing, batch_size=batch_size, write_video=False)
        a = box_agreement(res.masks, boxes)
        per_clip[clip.name] = a
        pred_px = sum(int((res.masks[i] == 1).sum()) for i in boxes if i < res.n_frames)
        pooled["total"] += pred_px
        if pred_px:
            pooled["inside"] += a["inside_share"] * pred_px
        pooled["overlap"] += a["frames_overlap_share"] * a["annotated_frames"]
        pooled["annotated"] += a["annotated_frames"]
    nan = float("nan")
    return {
        "model": segmenter.card.id,
        "smoothing": smoothing,
        "clips": per_clip,
        "all": {
            "annotated_frames": pooled["annotated"],
            "inside_share": pooled["inside"] / pooled["total"] if pooled["total"] else nan,
            "frames_overlap_share": pooled["overlap"] / pooled["annotated"] if pooled["annotated"] else nan,
        },
    }
