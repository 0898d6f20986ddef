"""The scan the user works on, shared by every page: upload, bundled and shared-data samples, its mask.

State: st.session_state["current_image"] (name, bytes, hash, optional mask and its name),
so a scan picked on one page is there on the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from dashboard.common import image_hash, md_escape, show_input_error
from nervseg.data import samples as nsamples
from nervseg.io import ImageData, InputError, load_image_data, load_mask
from nervseg.io.readers import IMAGE_SUFFIXES, MASK_SUFFIXES

UPLOAD_TYPES = [s.lstrip(".") for s in IMAGE_SUFFIXES]
MASK_TYPES = [s.lstrip(".") for s in MASK_SUFFIXES]


@dataclass
class Picked:
    """The scan the user is working on, decoded."""

    name: str
    data: bytes
    hash: str
    image: ImageData
    mask: np.ndarray | None = None
    mask_name: str | None = None


def _set_current(name: str, data: bytes, mask_name: str | None = None, mask: bytes | None = None,
                 source: str | None = None) -> None:
    st.session_state["current_image"] = {
        "name": name, "data": data, "hash": image_hash(data), "mask_name": mask_name, "mask": mask,
        "source": source,
    }


def _on_upload(key: str) -> None:
    f = st.session_state.get(key)
    if f is not None:
        _set_current(f.name, f.getvalue())


def _on_local_sample(key: str) -> None:
    title = st.session_state.get(key)
    sample = next((s for s in nsamples.local_samples() if s.title == title), None)
    if sample is not None:
        _set_current(sample.image.name, sample.image.read_bytes(), sample.mask.name if sample.mask else None,
                     sample.mask.read_bytes() if sample.mask else None)


@st.cache_data(show_spinner=False)
def _local_sample_titles() -> list[str]:
    return [s.title for s in nsamples.local_samples()]


def image_picker(page: str) -> Picked | None:
    """Upload or sample chooser; returns the current scan (shared by all pages) or None.

    With a scan open, the chooser folds into an expander named after it, so the page's result
    starts in the first screen; with none, it is open.
    """
    picked = current_picked()
    label = f"Scan: **{md_escape(picked.name)}** · change" if picked is not None else "Choose a scan"
    with st.expander(label, expanded=picked is None, icon=":material/upload_file:"):
        # side by side at full width (no scan yet); stacked in the half-width row beside the page's own settings
        up, sample = st.columns([3, 2]) if picked is None else (st.container(), st.container())
        with up:
            st.file_uploader(
                "Upload an ultrasound scan (PNG, JPEG, TIFF, BMP, DICOM)", type=UPLOAD_TYPES,
                key=f"{page}_upload", on_change=_on_upload, args=(f"{page}_upload",),
            )
        with sample:
            bundled_picker(page)
            titles = _local_sample_titles()
            if titles:
                st.selectbox("…or pick a sample from the shared data", titles, index=None,
                             placeholder="Choose a sample", key=f"{page}_local",
                             on_change=_on_local_sample, args=(f"{page}_local",))
            download_sample_picker(page)
        if picked is not None:
            h, w = picked.image.image.shape
            source = (st.session_state.get("current_image") or {}).get("source")
            st.caption(f"Working on **{md_escape(picked.name)}** ({w}×{h} px, {picked.image.format}"
                       + (f"; {source}" if source else "")
                       + (", with its ground-truth mask" if picked.mask is not None else "")
                       + "); it stays selected on the other pages.")
    return picked


def scan_bar(page: str):
    """The scan chooser and, beside it, a slot for the page's own scan settings (ground-truth mask, pixel
    size): one row while a scan is open, so the result starts high on the page. Returns (scan or None, slot)."""
    if st.session_state.get("current_image"):
        left, right = st.columns(2)
    else:
        left = right = st.container()
    with left:
        picked = image_picker(page)
    return picked, right


def download_sample_picker(page: str) -> None:
    """Public samples from the manifest, downloaded on request with a progress bar."""
    try:
        public = nsamples.manifest()
    except nsamples.SampleError as e:
        show_input_error(e)
        return
    if not public:
        return
    with st.popover("Download a public sample", width="stretch"):
        titles = {f"{s.title} ({s.licence}, {s.attribution.split(',')[0]})": s for s in public}
        choice = st.selectbox("Public scan", list(titles), key=f"{page}_public")
        if st.button("Download and open", key=f"{page}_public_go"):
            s = titles[choice]
            bar = st.progress(0.0, text=f"Downloading {s.name}…")

            def progress(done: int, total: int) -> None:
                bar.progress(min(1.0, done / total) if total else 0.5, text=f"Downloading {s.name}… {done // 1024} kB")

            try:
                path = nsamples.fetch(s, progress)
            except nsamples.SampleError as e:
                show_input_error(e)
                return
            bar.progress(1.0, text=f"{s.name} ready")
            _set_current(s.name, path.read_bytes())
            st.rerun()


def current_picked() -> Picked | None:
    """Decode the current scan (errors shown, None returned)."""
    cur = st.session_state.get("current_image")
    if not cur:
        return None
    try:
        data = load_image_data(cur["data"], cur["name"])
    except InputError as e:
        show_input_error(e)
        return None
    mask = None
    if cur.get("mask"):
        try:
            mask = load_mask(cur["mask"], cur["mask_name"])
            if mask.shape != data.image.shape:
                mask = None
        except InputError:
            mask = None
    return Picked(cur["name"], cur["data"], cur["hash"], data, mask, cur.get("mask_name"))


@dataclass
class Truth:
    """A ground-truth mask and the file it came from (shown beside every score made with it)."""

    mask: np.ndarray
    name: str


def mask_uploader(label: str, key: str, picked: Picked) -> Truth | None:
    """Optional ground-truth mask for the current scan; a bad file or a size mismatch shows st.error.

    The uploader is keyed by the scan, so a mask given for one scan is never applied to the
    next; a mask whose name does not pair with the scan's is named in a warning.
    """
    from nervseg.data.datasets import mask_names_image
    from nervseg.io.readers import check_pair

    f = st.file_uploader(label, type=MASK_TYPES, key=f"{key}_{picked.hash[:16]}")
    if f is None:
        return Truth(picked.mask, picked.mask_name or "its mask") if picked.mask is not None else None
    try:
        mask = load_mask(f.getvalue(), f.name)
        check_pair(picked.image.image, mask, picked.name, f.name)
    except InputError as e:
        show_input_error(e)
        return None
    if not mask_names_image(f.name, picked.name):
        st.warning(f"The mask **{md_escape(f.name)}** is not named after the scan **{md_escape(picked.name)}** "
                   f"(expected {md_escape(Path(picked.name).stem)}.png or {md_escape(Path(picked.name).stem)}_mask.png): "
                   "the scores below use it; check that it belongs to this scan.", icon=":material/warning:")
    return Truth(mask, f.name)



# ---------------------------------------------------------------- bundled samples


@st.cache_data(show_spinner=False)
def bundled_samples() -> list[nsamples.BundledSample]:
    """The demo pairs shipped in sample_images/ ([] if the list is unreadable: error shown)."""
    try:
        return nsamples.bundled()
    except nsamples.SampleError as e:
        show_input_error(e)
        return []


def open_sample(stem: str) -> None:
    """Make a bundled sample (with its ground-truth mask) the current scan on every page."""
    s = next((x for x in bundled_samples() if x.stem == stem), None)
    if s is not None:
        _set_current(s.image.name, s.image.read_bytes(), s.mask.name, s.mask.read_bytes(),
                     source=f"{s.title} ({s.licence}, {s.attribution.split(',')[0]})")


def _on_bundled(key: str) -> None:
    title = st.session_state.get(key)
    s = next((x for x in bundled_samples() if x.title == title), None)
    if s is not None:
        open_sample(s.stem)


def bundled_picker(page: str) -> None:
    """A drop-down of the bundled samples (opens one with its ground truth)."""
    shipped = [s.title for s in bundled_samples()]
    if shipped:
        st.selectbox("…or open a bundled sample (usgra-seg, with ground truth)", shipped, index=None,
                     placeholder="Choose a sample", key=f"{page}_bundled",
                     on_change=_on_bundled, args=(f"{page}_bundled",))
