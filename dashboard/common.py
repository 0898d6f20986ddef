"""Streamlit glue shared by every page: the models, caching around nervseg calls, errors and formatting.

State lives in `st.session_state` under plain keys: "model_id", "preprocess" (dict or None
= the card's own settings), "presenter" (bool: plain words, large images); the current scan is
dashboard.scan's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import streamlit as st

from nervseg.cine.clip import VideoEncodeError
from nervseg.data import samples as nsamples
from nervseg.inference import pool as model_pool
from nervseg.inference.segmenter import Prediction, Segmenter
from nervseg.io.budget import ByteBudget, nbytes_of
from nervseg.io.hashing import sha256_bytes
from nervseg.io.readers import IMAGE_FORMATS, ImageData, InputError, load_image_data, load_mask  # noqa: F401
from nervseg.models import cards as nmodels
from nervseg.models import provenance
from nervseg.models.cards import ModelCard, ModelError
from nervseg.preprocess import Preprocess, PreprocessError

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
    from nervseg.inference.segmenter import configure_threads

    return configure_threads()


def get_segmenter(model_id: str) -> Segmenter:
    """The loaded model (once per process, shared by all sessions; reloaded when its weights change)."""
    card = nmodels.get_card(model_id)
    if model_pool.key(card) in model_pool.loaded():
        return model_pool.get(card)
    with st.spinner("Loading model…"):  # or waiting for the warm-up thread (dashboard.serve) to finish loading it
        return model_pool.get(card)


def int8_agreement(card) -> str:
    """The int8 graph's measured closeness to the full model, in words, from the card's `int8` block."""
    v = card.int8.get("validation", {})
    trained_on = v.get("n_trained_on", 0)  # a final model trained on them: its Dice there says nothing of quality
    parts = [f"{cls}: masks agree {fmt(r.get('agreement_dice_mean'))} (Dice between the two), largest loss on "
             f"one image {fmt(r.get('int8_worst_image_dice_loss'))}"
             + ("" if trained_on else f", Dice against the experts {fmt(r.get('int8_dice_mean'))} (full model "
                                      f"{fmt(r.get('full_dice_mean'))})")
             for cls, r in v.get("per_class", {}).items()]
    if not parts:
        return "Not measured against the full model."
    where = "scans not used to make it" + (", which the model itself trained on" if trained_on else
                                            ", held out from the model's training")
    return f"Measured on {v.get('n_images', '?')} {where}: " + "; ".join(parts) + "."


def default_model_id(all_cards: list[ModelCard]) -> str | None:
    """The opening model: the most structures found, then the best nerve Dice (cross-validated where the card has it)."""
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


# ---------------------------------------------------------------- presenter mode


def presenting() -> bool:
    """Presenter mode: plain-language captions and large images; statistics one click away."""
    return bool(st.session_state.get("presenter", False))


def _on_presenter() -> None:
    st.session_state["presenter"] = st.session_state["_presenter_toggle"]


def presenter_toggle() -> None:
    """The sidebar switch; built from the plain key on every run (its own widget state is not kept)."""
    st.session_state.pop("_presenter_toggle", None)
    st.toggle("Presenter mode", value=presenting(), key="_presenter_toggle", on_change=_on_presenter,
              help="For showing the tool to clinicians: large images and plain words; the statistics stay "
                   "one click away (expanders) for engineers.")


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


def reset_preprocess() -> None:
    """Back to each model's own preprocessing (the Lab's sliders too)."""
    from nervseg.preprocess import PARAMS

    st.session_state["preprocess"] = None
    for k in PARAMS:
        st.session_state.pop(f"lab_{k}", None)


def lab_notice(key: str) -> None:
    """On a page whose results the Lab's what-if settings change: say so, with a reset right there."""
    custom = current_preprocess()
    if custom is None:
        return
    text, button = st.columns([5, 1], vertical_alignment="center")
    text.warning(f"**Preprocessing lab setting active** ({custom.describe()}): the results on this page use it "
                 "instead of the model's own preprocessing.", icon=":material/science:")
    button.button("Reset", key=f"{key}_lab_reset", on_click=reset_preprocess, icon=":material/restart_alt:",
                  help="Back to the model's own preprocessing, on every page.")


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


def no_models_notice() -> None:
    st.info(
        "No trained models yet: models/ holds no model cards. Train one with "
        "`python -m nervseg.train --arch unet --task kaggle-bp` (see README), then reload this page.",
        icon=":material/hourglass_empty:",
    )


def require_card() -> ModelCard:
    """The sidebar's model; with no model at all, the notice and the end of the page's run."""
    card = current_card()
    if card is None:
        no_models_notice()
        st.stop()
    return card


def legend_html(classes: list[str]) -> str:
    """The class colours as chips readable on light and dark themes (viz.swatch_html)."""
    from nervseg.display import viz

    return "Legend:" + "".join(f"{viz.swatch_html(colour)}{name}" for name, colour in viz.legend(classes))


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
