"""Pair uploaded images with their masks (several files, or one zip) and score them.

Naming follows `nervseg.data` (`mask_names_image`, the one pairing rule): a mask is
`<stem>_mask.<ext>` anywhere, or `<stem>.<ext>` inside a `masks/` folder (its image then
lives in `images/`). Loose uploads lose their folders (a browser sends `images/x.png` and
`masks/x.png` both as `x.png`): of two files with one name, the one that reads as a label
mask is the mask. Works on bytes, so uploads never touch the disk. A bad or empty file is
reported on its own (`Pairing.errors`) and the rest of the batch is scored.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from nervseg import metrics
from nervseg.data.datasets import MASK_MARK, mask_names_image
from nervseg.io.limits import safe_name
from nervseg.io.readers import (
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    InputError,
    check_pair,
    image_size,
    load_image_data,
    load_mask,
)


@dataclass(frozen=True)
class ZipLimits:
    """What a zip and a batch may hold; checked on real inflated bytes and image headers."""

    max_members: int = 5000
    max_bytes: int = 500 * 1024 * 1024  # inflated bytes read, counted as they come (not as declared)
    max_batch_pixels: int = 300_000_000  # all images of a batch together, from their headers
    chunk: int = 1 << 16  # bytes inflated at a time


DEFAULT_ZIP_LIMITS = ZipLimits()  # read at call time: a deployment (or a test) may replace it


@dataclass
class BatchPair:
    """One image and its ground-truth mask, as bytes."""

    stem: str
    image_name: str
    image: bytes
    mask_name: str
    mask: bytes


@dataclass
class Pairing:
    pairs: list[BatchPair]
    unmatched: list[str]  # images without a mask, or masks without an image
    errors: list[str] = field(default_factory=list)  # files that could not be used, one message each


def _role(path: str) -> tuple[str, str] | None:
    """('image'|'mask', stem) from a file path, or None for files we ignore."""
    p = PurePosixPath(path.replace("\\", "/"))
    if p.name.startswith(".") or "__MACOSX" in p.parts:
        return None
    suffix = p.suffix.lower()
    parents = {part.lower() for part in p.parts[:-1]}
    if p.stem.lower().endswith(MASK_MARK) and suffix in MASK_SUFFIXES:
        return "mask", p.stem[: -len(MASK_MARK)]
    if "masks" in parents and suffix in MASK_SUFFIXES:
        return "mask", p.stem
    if suffix in IMAGE_SUFFIXES:
        return "image", p.stem
    return None


def _reads_as_mask(data: bytes, name: str) -> bool:
    """Whether a file decodes as a label mask (class ids or 0/255); an ultrasound image does not."""
    try:
        load_mask(data, name)
    except InputError:
        return False
    return True


def empty_file_message(name: str) -> str:
    return f"{safe_name(name)}: the file is empty (0 bytes)."


def pair_files(files: list[tuple[str, bytes]], limits: ZipLimits | None = None) -> Pairing:
    """Match (name, bytes) files into image/mask pairs (`mask_names_image`); the batch's pixels are budgeted.

    Two files of one name and no folder to tell them apart (loose `images/x.png` + `masks/x.png`)
    pair when exactly one of them reads as a label mask. Empty files are listed in `errors`.
    """
    limits = limits or DEFAULT_ZIP_LIMITS
    images: dict[str, tuple[str, bytes]] = {}
    masks: dict[str, tuple[str, bytes]] = {}
    errors: list[str] = []
    same_name: dict[str, list[tuple[str, bytes]]] = {}  # image-like files by stem, to spot name twins
    for name, data in files:
        role = _role(name)
        if role is None:
            continue
        if not data:
            errors.append(empty_file_message(name))
            continue
        kind, stem = role
        if kind == "mask":
            masks[stem] = (safe_name(name), data)
        else:
            same_name.setdefault(stem, []).append((name, data))
    for stem, entries in same_name.items():
        if len(entries) == 2 and stem not in masks:
            as_mask = [_reads_as_mask(d, n) for n, d in entries]
            if sum(as_mask) == 1:
                (mname, mdata), (iname, idata) = entries if as_mask[0] else entries[::-1]
                masks[stem] = (safe_name(mname), mdata)
                images[stem] = (safe_name(iname), idata)
                continue
        images[stem] = (safe_name(entries[0][0]), entries[0][1])
        if len(entries) > 1:
            errors.append(f"{safe_name(entries[0][0])}: {len(entries)} files of this name and none or several of "
                          "them read as a mask; name the mask <image name>_mask.png.")
    pairs = [
        BatchPair(stem, images[stem][0], images[stem][1], masks[stem][0], masks[stem][1])
        for stem in sorted(images)
        if stem in masks and mask_names_image(masks[stem][0], images[stem][0])
    ]
    paired = {p.stem for p in pairs}
    unmatched = sorted({images[s][0] for s in images if s not in paired} | {masks[s][0] for s in masks if s not in paired})
    check_batch_pixels(pairs, limits)
    return Pairing(pairs, unmatched, errors)


def check_batch_pixels(pairs: list[BatchPair], limits: ZipLimits | None = None) -> int:
    """Total image pixels of `pairs` from their headers (nothing decoded); InputError over the limit.

    A pair whose header cannot be read counts 0 here and is skipped, with its reason, when scored.
    """
    limits = limits or DEFAULT_ZIP_LIMITS
    total = 0
    for p in pairs:
        try:
            w, h, _ = image_size(p.image, p.image_name)
        except InputError:
            continue
        total += w * h
        if total > limits.max_batch_pixels:
            raise InputError(
                f"the batch is too large: its images hold over {limits.max_batch_pixels / 1e6:.0f} million "
                f"pixels together (the limit; reached at {p.image_name}). Score it in smaller parts."
            )
    return total


def _check_overlaps(zf: zipfile.ZipFile, name: str) -> None:
    """Refuse entries whose data overlap (several directory entries on one member: a zip bomb)."""
    spans = []
    for m in zf.infolist():
        enc = "utf-8" if m.flag_bits & 0x800 else "cp437"
        head = 30 + len(m.orig_filename.encode(enc, "replace"))  # local header, at least
        spans.append((m.header_offset, m.header_offset + head + m.compress_size))
    spans.sort()
    limit = getattr(zf, "start_dir", None)
    for (_, end), nxt in zip(spans, [s for s, _ in spans[1:]] + [limit], strict=True):
        if nxt is not None and end > nxt:
            raise InputError(f"{name}: the archive's entries overlap (a sign of a zip bomb); it was not unpacked.")


def _read_member(zf: zipfile.ZipFile, m: zipfile.ZipInfo, budget: int, limits: ZipLimits) -> bytes:
    """A member's bytes, inflated a chunk at a time and counted: stops at its declared size or the budget."""
    out = bytearray()
    with zf.open(m) as f:
        while True:
            chunk = f.read(limits.chunk)
            if not chunk:
                return bytes(out)
            out += chunk
            if len(out) > budget:
                raise _TooLarge()


class _TooLarge(Exception):
    pass


def read_zip(data: bytes, name: str = "archive.zip", limits: ZipLimits | None = None) -> list[tuple[str, bytes]]:
    """(path, bytes) of every image or mask in a zip, refusing damaged, overlapping or over-large archives.

    Sizes are counted on the bytes really inflated, a chunk at a time, so a member that
    lies about its size never takes more than the remaining budget.
    """
    limits = limits or DEFAULT_ZIP_LIMITS
    name = safe_name(name)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InputError(f"{name}: this is not a zip archive, or it is damaged.") from None
    members = [m for m in zf.infolist() if not m.is_dir()]
    if len(members) > limits.max_members:
        raise InputError(f"{name}: too many files ({len(members)}; the limit is {limits.max_members}).")
    too_large = InputError(f"{name}: too large once unpacked (over {limits.max_bytes / 1e6:.0f} MB, the limit).")
    if sum(m.file_size for m in members) > limits.max_bytes:
        raise too_large
    _check_overlaps(zf, name)
    out, left = [], limits.max_bytes
    try:
        for m in members:
            if _role(m.filename) is not None:
                out.append((m.filename, _read_member(zf, m, min(left, m.file_size), limits)))
                left -= len(out[-1][1])
    except _TooLarge:
        raise too_large from None
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError, NotImplementedError) as e:
        raise InputError(f"{name}: a file in the archive could not be unpacked ({e}).") from None
    return out


def pair_zip(data: bytes, name: str = "archive.zip", limits: ZipLimits | None = None) -> Pairing:
    """Image/mask pairs from a zip (images/ + masks/, or *_mask files); InputError if none."""
    limits = limits or DEFAULT_ZIP_LIMITS
    files = read_zip(data, name, limits)
    name = safe_name(name)
    if not any(_role(n)[0] == "image" for n, _ in files):
        raise InputError(f"{name}: the archive holds no images (PNG, JPEG, TIFF, BMP or DICOM).")
    pairing = pair_files(files, limits)
    if not pairing.pairs:
        raise InputError(
            f"{name}: no image has a matching mask. Put images in images/ and masks in masks/ "
            "with the same name, or name each mask <image name>_mask.png."
        )
    return pairing


def pair_uploads(files: list[tuple[str, bytes]]) -> Pairing:
    """Pairs from uploaded files: each zip paired on its own (pair_zip), the loose files together
    (pair_files). A bad zip or an empty file goes to `errors` and the rest is still paired;
    InputError only when nothing pairs and nothing was wrong with a file (the naming is at fault)."""
    pairing = Pairing([], [])
    loose = [(name, data) for name, data in files if not name.lower().endswith(".zip")]
    parts = []
    for name, data in files:
        if not name.lower().endswith(".zip"):
            continue
        if not data:
            pairing.errors.append(empty_file_message(name))
            continue
        try:
            parts.append(pair_zip(data, name))
        except InputError as e:
            pairing.errors.append(str(e))
    for part in parts + ([pair_files(loose)] if loose else []):
        pairing.pairs += part.pairs
        pairing.unmatched += part.unmatched
        pairing.errors += part.errors
    if not pairing.pairs and not pairing.errors:
        raise InputError("No image has a matching mask: name masks <image name>_mask.png (or .tif), "
                         "or put them in a zip with images/ and masks/.")
    return pairing


@dataclass
class Loaded:
    stem: str
    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float] | None
    image_name: str


def load_pair(pair: BatchPair) -> Loaded:
    """Decode one pair and check that the mask fits the image (InputError otherwise)."""
    data = load_image_data(pair.image, pair.image_name)
    mask = load_mask(pair.mask, pair.mask_name)
    check_pair(data.image, mask, pair.image_name, pair.mask_name)
    return Loaded(pair.stem, data.image, mask, data.pixel_spacing_mm, pair.image_name)


def score_rows(model_id: str, image_name: str, pred_mask: np.ndarray, true_mask: np.ndarray,
               classes: list[str], spacing=None, seconds: float = 0.0) -> list[dict]:
    """One row per foreground class (`nervseg.metrics.class_rows`) with the model, image and time.

    `absent` marks a class in neither the mask nor the prediction: its Dice of 1 (the empty-mask
    rule) says nothing about the model, so `summarise(..., skip_absent=True)` leaves such rows out.
    """
    return [{"model": model_id, "image": image_name, "class": r["class"], "truth_empty": r["truth_empty"],
             "absent": r["absent"], "seconds": round(seconds, 4),
             **{k: r[k] for k in (*metrics.METRIC_KEYS, "tp", "fp", "fn", "tn")}}  # the CSV's columns, in their order
            for r in metrics.class_rows(pred_mask, true_mask, classes, spacing)]


def class_figures(rows: list[dict]) -> dict:
    """Figures of one model and class over images: per-image mean and sd of every metric, pooled
    overlap (a dict), the count of infinite HD95, and the Dice mean over images whose truth is not empty."""
    agg = metrics.aggregate(rows)
    entry = {f"{k}_mean": agg.mean[k] for k in metrics.METRIC_KEYS}
    entry.update({f"{k}_sd": agg.sd[k] for k in metrics.METRIC_KEYS})
    entry["pooled"] = agg.pooled
    entry["hd95_infinite"] = agg.hd95_infinite
    nonempty = [r for r in rows if r["tp"] + r["fn"] > 0]
    entry["n_truth_nonempty"] = len(nonempty)
    entry["dice_mean_truth_nonempty"] = float(sum(r["dice"] for r in nonempty) / len(nonempty)) if nonempty else None
    return entry


def summarise(rows: list[dict], skip_absent: bool = False) -> list[dict]:
    """Per (model, class): mean ± sd and pooled of every metric (class_figures, flattened for a table).

    With `skip_absent`, rows whose class is in neither mask nor prediction are left out of the
    figures and counted in `n_absent`; a (model, class) with only such rows is not listed.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    absent: dict[tuple[str, str], int] = {}
    for r in rows:
        k = (r["model"], r["class"])
        if skip_absent and r.get("absent"):
            absent[k] = absent.get(k, 0) + 1
            continue
        groups.setdefault(k, []).append(r)
    out = []
    for (model, cname), rs in groups.items():
        f = class_figures(rs)
        entry = {"model": model, "class": cname, "n_images": len(rs), "n_absent": absent.get((model, cname), 0)}
        for k in metrics.METRIC_KEYS:
            entry[f"{k}_mean"] = f[f"{k}_mean"]
            entry[f"{k}_sd"] = f[f"{k}_sd"]
            if k != "hd95":
                entry[f"{k}_pooled"] = f["pooled"].get(k)
        entry["hd95_infinite"] = f["hd95_infinite"]
        out.append(entry)
    return out


def score_batch(predict: Callable, model_ids: list[str], pairs: list[BatchPair], classes_of: Callable,
                progress: Callable[[int, int], None] | None = None) -> tuple[list[dict], list[str]]:
    """Score every model on every pair; returns (rows, skipped pair reasons).

    `predict(model_id, pair, image)` returns a Prediction; `classes_of(model_id)`
    the model's class names. A pair that cannot be read, or that a model refuses (InputError),
    is skipped with its reason; the rest of the batch is scored.
    """
    rows, skipped = [], []
    total, done = len(pairs) * len(model_ids), 0
    for pair in pairs:  # one pair decoded at a time: memory stays at one image, not the batch
        try:
            item = load_pair(pair)
        except InputError as e:
            skipped.append(str(e))
            total -= len(model_ids)
            if progress and total:
                progress(done, total)
            continue
        for mid in model_ids:
            try:
                pred = predict(mid, pair, item.image)
            except InputError as e:
                skipped.append(f"{pair.image_name}: {e}")
                done += 1
                continue
            rows += score_rows(mid, item.image_name, pred.mask, item.mask, classes_of(mid), item.spacing, pred.seconds)
            done += 1
            if progress:
                progress(done, total)
    return rows, skipped
