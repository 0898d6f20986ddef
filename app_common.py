"""Streamlit glue shared by every page: caching around nervseg, state, pickers, errors.

The only module with streamlit caching. State lives in `st.session_state` under
plain keys: "model_id", "preprocess" (dict or None = the card's own settings),
"current_image" (name, bytes, hash, optional mask) so a scan picked on one page
is there on the others.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from nervseg import model_pool, provenance
from nervseg import models as nmodels
from nervseg import samples as nsamples
from nervseg.budget import ByteBudget, nbytes_of
from nervseg.hashing import sha256_bytes
from nervseg.inference import Prediction, Segmenter
from nervseg.io import IMAGE_FORMATS, ImageData, InputError, load_image_data, load_mask  # noqa: F401
from nervseg.models import ModelCard, ModelError
from nervseg.preprocess import Preprocess, PreprocessError
from nervseg.video import VideoEncodeError

UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "dcm", "dicom"]
MASK_TYPES = ["png", "tif", "tiff", "bmp"]
USER_ERRORS = (InputError, ModelError, PreprocessError, nsamples.SampleError, VideoEncodeError)
DISCLAIMER = "Research demo, not a medical device: do not use for clinical decisions."


# ---------------------------------------------------------------- errors


_MD_SPECIAL = re.compile(r"([\\`\[\]()!<>$&])|(:)(?=//)|(?<=www)(\.)", re.IGNORECASE)


def md_escape(text: object) -> str:
    """Text (a file name, a message quoting one) shown literally in markdown.

    A name like `![x](http://host/track.png)` would otherwise become an image the
    browser fetches, or a link; bare `http://` and `www.` are broken too (autolinks),
    and code, maths and entities. Emphasis marks (`_`, `*`) stay: they change only
    how a name looks, and names keep their underscores readable.
    """
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), str(text))


def show_input_error(exc: BaseException) -> None:
    """A user-caused problem as a readable st.error (never a traceback); names in it are escaped."""
    st.error(md_escape(str(exc) or type(exc).__name__), icon=":material/error:")


@contextmanager
def user_errors() -> Iterator[None]:
    """The one place typed library errors become a readable st.error: wraps `nav.run()`.

    Pages may still catch around one step to carry on; whatever they leave ends here.
    """
    try:
        yield
    except USER_ERRORS as e:
        show_input_error(e)


# ---------------------------------------------------------------- models


def cards() -> list[ModelCard]:
    """Every readable model card in models/ ([] when none); malformed ones: `card_errors()`."""
    return nmodels.available_with_errors()[0]


def card_errors() -> list[ModelError]:
    """One ModelError per malformed card (named), so the other models stay usable."""
    return nmodels.available_with_errors()[1]


def show_card_errors() -> None:
    for e in card_errors():
        st.warning(md_escape(f"{e} (this model is left out)"), icon=":material/warning:")


def card_by_id(model_id: str | None) -> ModelCard | None:
    return next((c for c in cards() if c.id == model_id), None)


@st.cache_resource
def configure_threads_once() -> int:
    """Inference threads for this server process, set once ($NERVSEG_THREADS or the cores)."""
    from nervseg.inference import configure_threads

    return configure_threads()


def get_segmenter(model_id: str) -> Segmenter:
    """The loaded model (once per process, shared by all sessions; reloaded when its weights change)."""
    card = nmodels.get_card(model_id)
    if model_pool.key(card) in model_pool.loaded():
        return model_pool.get(card)
    with st.spinner("Loading model…"):  # or waiting for the warm-up thread (app_serve) to finish loading it
        return model_pool.get(card)


def default_model_id(all_cards: list[ModelCard]) -> str | None:
    """The opening model: the most structures found, then the best validation nerve Dice."""
    card = provenance.default_card(all_cards)
    return card.id if card else None


def current_model_id() -> str | None:
    """The sidebar's model choice, falling back to the best validated card."""
    all_cards = cards()
    mid = st.session_state.get("model_id")
    if mid in {c.id for c in all_cards}:
        return mid
    return default_model_id(all_cards)


def current_card() -> ModelCard | None:
    return card_by_id(current_model_id())


def same_task_cards(card: ModelCard | None) -> list[ModelCard]:
    if card is None:
        return []
    return [c for c in cards() if c.task == card.task]


# ---------------------------------------------------------------- preprocessing


def current_preprocess() -> Preprocess | None:
    """The Preprocessing lab's settings, or None for each card's own preprocessing."""
    d = st.session_state.get("preprocess")
    if not d:
        return None
    try:
        return Preprocess.from_dict(d)
    except PreprocessError as e:
        show_input_error(e)
        return None


def preprocess_summary(card: ModelCard | None) -> str:
    custom = current_preprocess()
    if custom is not None:
        return f"what-if: {custom.describe()}"
    own = Preprocess.from_dict(card.preprocess).describe() if card else "none"
    return f"the model's own ({own})"


# ---------------------------------------------------------------- predictions


def image_hash(data: bytes) -> str:
    return sha256_bytes(data)


CACHE_MB = int(os.environ.get("NERVSEG_CACHE_MB", "512") or 512)
PREDICTIONS = ByteBudget(CACHE_MB << 20)  # per server process, all sessions together
PREPROCESSED = ByteBudget((CACHE_MB // 2) << 20)


@st.cache_data(show_spinner="Segmenting…", max_entries=64)
def _predict(model_id: str, weights_sha256: str, image_bytes_hash: str, preprocess_key: str, _image: np.ndarray) -> Prediction:
    seg = get_segmenter(model_id)
    pre = Preprocess.from_dict(json.loads(preprocess_key)) if preprocess_key else None
    return seg.predict(_image, pre)


def cached_predict(model_id: str, image_bytes_hash: str, image: np.ndarray, preprocess_dict: dict | None = None) -> Prediction:
    """Prediction cached by model (and its weights), image hash and preprocessing settings.

    `image_bytes_hash` must identify `image` (e.g. `image_hash(file bytes)`, plus a
    frame index for video); the array itself is not hashed, so reruns are fast. The
    cache holds at most $NERVSEG_CACHE_MB (default 512) MB of results, oldest out first.
    """
    card = nmodels.get_card(model_id)
    key = json.dumps(preprocess_dict, sort_keys=True) if preprocess_dict else ""
    args = (model_id, card.weights_sha256, image_bytes_hash, key)
    pred = _predict(*args, image)
    PREDICTIONS.admit(args, nbytes_of(pred), _predict.clear)
    return pred


def preprocess_dict() -> dict | None:
    """The active what-if settings as a dict (None = the card's own)."""
    pre = current_preprocess()
    return pre.to_dict() if pre is not None else None


# ---------------------------------------------------------------- images


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
    """Upload or sample chooser; returns the current scan (shared by all pages) or None."""
    up, sample = st.columns([3, 2])
    with up:
        st.file_uploader(
            "Upload an ultrasound scan (PNG, JPEG, TIFF, BMP, DICOM)", type=UPLOAD_TYPES,
            key=f"{page}_upload", on_change=_on_upload, args=(f"{page}_upload",),
        )
    with sample:
        import app_demo

        app_demo.bundled_picker(page)
        titles = _local_sample_titles()
        if titles:
            st.selectbox("…or pick a sample from the shared data", titles, index=None,
                         placeholder="Choose a sample", key=f"{page}_local",
                         on_change=_on_local_sample, args=(f"{page}_local",))
        download_sample_picker(page)
    picked = current_picked()
    if picked is not None:
        h, w = picked.image.image.shape
        source = (st.session_state.get("current_image") or {}).get("source")
        st.caption(f"Working on **{md_escape(picked.name)}** ({w}×{h} px, {picked.image.format}"
                   + (f"; {source}" if source else "")
                   + (", with its ground-truth mask" if picked.mask is not None else "")
                   + "); it stays selected on the other pages.")
    return picked


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
    from nervseg.datasets import mask_names_image
    from nervseg.io import check_pair

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


def no_models_notice() -> None:
    st.info(
        "No trained models yet: models/ holds no model cards. Train one with "
        "`python -m nervseg.train --arch unet --task kaggle-bp` (see README), then reload this page.",
        icon=":material/hourglass_empty:",
    )


def legend_html(classes: list[str]) -> str:
    from nervseg import viz

    chips = [
        f"<span style='display:inline-block;width:0.9em;height:0.9em;background:{colour};"
        f"border-radius:2px;margin:0 0.3em 0 0.8em;vertical-align:middle'></span>{name}"
        for name, colour in viz.legend(classes)
    ]
    return "Legend:" + "".join(chips)


def fmt(v, digits: int = 3) -> str:
    """A metric for display: None or NaN -> '—', inf -> '∞'."""
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != v:
            return "—"
        if v == float("inf"):
            return "∞"
        return f"{v:.{digits}f}"
    return str(v)


def remembered(widget_key: str, store_key: str, default):
    """Seed a widget from a plain session key so its value survives page switches.

    Streamlit drops a widget's state when its page is left; the plain key keeps it.
    Call before creating the widget (without `value=`), then `remember` after.
    """
    if widget_key not in st.session_state:
        st.session_state[widget_key] = st.session_state.get(store_key, default)


def remember(widget_key: str, store_key: str) -> None:
    st.session_state[store_key] = st.session_state[widget_key]


@st.cache_data(show_spinner=False, max_entries=64)
def _preprocessed(image_bytes_hash: str, preprocess_key: str, _image: np.ndarray) -> np.ndarray:
    from nervseg.preprocess import apply

    return apply(_image, Preprocess.from_dict(json.loads(preprocess_key)))


def cached_preprocess(image_bytes_hash: str, image: np.ndarray, settings: Preprocess) -> np.ndarray:
    """`nervseg.preprocess.apply`, cached by image hash and settings (NLM is slow), bounded by bytes."""
    args = (image_bytes_hash, json.dumps(settings.to_dict(), sort_keys=True))
    out = _preprocessed(*args, image)
    PREPROCESSED.admit(args, out.nbytes, _preprocessed.clear)
    return out
