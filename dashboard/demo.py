"""Streamlit glue for the first-sight demo: grouped model picker, bundled samples, truth and presence.

Beside dashboard.common (models, caching, errors) and dashboard.scan (the current scan); pages call
all three. No image processing here: pixels go through nervseg.
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from dashboard import common as ac
from dashboard import scan
from nervseg import metrics
from nervseg import models as nmodels
from nervseg.data import samples as nsamples
from nervseg.data.datasets import TASKS
from nervseg.display import viz
from nervseg.evaluate import comparison, typical
from nervseg.evaluate.presence import Presence, assess
from nervseg.inference import pool as model_pool
from nervseg.io.readers import load_image_data, load_mask
from nervseg.models import provenance
from nervseg.models.cards import ModelCard
from nervseg.preprocess import Preprocess

# ---------------------------------------------------------------- model picker


def model_groups(all_cards: list[ModelCard]) -> dict[str, list[ModelCard]]:
    """Cards grouped by what they find and what they learnt from; the default model's group first."""
    first = provenance.default_card(all_cards)
    groups: dict[str, list[ModelCard]] = {}
    for c in sorted(all_cards, key=lambda c: (first is None or c.task != first.task, provenance.group_label(c), c.id)):
        groups.setdefault(provenance.group_label(c), []).append(c)
    return groups


def _on_group_change() -> None:
    """A new group was picked: open its best model (the same rule as the opening default)."""
    group = model_groups(ac.cards()).get(st.session_state.get("_model_group_radio"), [])
    if group and st.session_state.get("model_id") not in {c.id for c in group}:
        st.session_state["model_id"] = ac.default_model_id(group)


def _on_arch_change() -> None:
    st.session_state["model_id"] = st.session_state["_model_arch_radio"]


def model_picker(all_cards: list[ModelCard]) -> None:
    """Sidebar model choice in two steps: what it finds and learnt from, then the architecture.

    Radios, not drop-downs, so the labels wrap instead of being clipped. The choice lives in
    session_state["model_id"] alone; the radios are built from it with an explicit index on
    every run, so the browser is always sent the chosen model (a radio that kept its state
    under its own key was once sent only its default, and sent it back as a new choice).
    """
    groups = model_groups(all_cards)
    ids = {c.id for c in all_cards}
    if st.session_state.get("model_id") not in ids:
        st.session_state["model_id"] = ac.default_model_id(all_cards)
    mid = st.session_state["model_id"]
    labels = list(groups)
    label = next(g for g, cs in groups.items() if mid in {c.id for c in cs})
    st.session_state.pop("_model_group_radio", None)  # the index below, not a kept widget state, decides
    st.radio("Model: finds · learnt from", labels, index=labels.index(label), key="_model_group_radio",
             on_change=_on_group_change,
             help="Models are grouped by the structures they mark and the data they were trained on. "
                  "A model sees best the kind of scan it learnt from.")
    group = groups[label]
    names = {c.id: c.arch_display for c in group}
    st.session_state.pop("_model_arch_radio", None)
    st.radio("Architecture", list(names), index=list(names).index(mid), format_func=names.get,
             key="_model_arch_radio", on_change=_on_arch_change,
             help="Used by Segment, Preprocessing lab and Cine; Compare uses every model of its group.")


@functools.lru_cache(maxsize=32)
def _sample_dice(model_id: str, weights_sha256: str, models_dir: str, preprocess_json: str) -> dict[str, float]:
    card = nmodels.get_card(model_id, Path(models_dir))
    pre = Preprocess.from_dict(json.loads(preprocess_json)) if preprocess_json else None
    return typical.sample_dice(model_pool.get(card), typical.shown_samples(card.classes, nsamples.bundled()), pre)


_TYPICAL_LOCK = threading.Lock()  # a visitor arriving during the warm-up waits for it instead of redoing it


def default_sample_dice(card: ModelCard, preprocess: dict | None = None) -> dict[str, float]:
    """Each shown bundled sample's Dice with the card's own preprocessing (or a Lab setting's): computed
    once per process, model and setting (the server's warm-up does the opening model's before the first visit)."""
    key = json.dumps(preprocess, sort_keys=True) if preprocess else ""
    with _TYPICAL_LOCK:
        return _sample_dice(card.id, card.weights_sha256, str(card.weights_path().parent), key)


def hero_choice(card: ModelCard) -> tuple[nsamples.BundledSample | None, dict[str, float]]:
    """The bundled sample Home opens with: a typical case, the one at the card's lower-median Dice (mean
    over its structures) on the bundled samples (`nervseg.evaluate.typical`); and each sample's Dice
    (with the Lab's setting when one is active)."""
    shown = typical.shown_samples(card.classes, scan.bundled_samples())
    dice = default_sample_dice(card, ac.preprocess_dict())
    stem = typical.typical_stem(dice)
    return next((s for s in shown if s.stem == stem), shown[0] if shown else None), dice


def hero_sample(card: ModelCard) -> nsamples.BundledSample | None:
    return hero_choice(card)[0]


def hero(card: ModelCard) -> None:
    """The opening model's result on a typical bundled sample, on Home before any click: what the tool does.

    The predictions go through the same cache as Segment's, so opening the sample there is instant.
    """
    try:
        s, dice = hero_choice(card)
        if s is None:
            return
        data = s.image.read_bytes()
        image = load_image_data(data, s.image.name).image
        truth = load_mask(s.mask.read_bytes(), s.mask.name)
        pred = ac.cached_predict(card.id, ac.image_hash(data), image, ac.preprocess_dict())
    except ac.USER_ERRORS as e:
        ac.show_input_error(e)
        return
    left, right = st.columns([3, 2] if not ac.presenting() else [2, 1])
    outlined = truth.shape == image.shape
    view = viz.truth_outline(viz.overlay(image, pred.mask), truth) if outlined else viz.overlay(image, pred.mask)
    left.image(viz.fit_width(view, 640 if not ac.presenting() else 960), width="stretch",
               caption=f"{s.title}: coloured = what the model marks"
               + ("; outlines = the expert's drawing." if outlined else "."))
    with right:
        st.markdown(f"**{card.name}** on **{ac.md_escape(s.title)}**, {pred.seconds * 1000:.0f} ms on this machine.")
        if dice:
            median = float(np.median(list(dice.values())))
            st.caption(f"A typical case, not a picked one: this scan's agreement with the expert "
                       f"({dice[s.stem]:.2f}, Dice averaged over {' and '.join(card.classes[1:])}) is the middle of the "
                       f"model's results on the {len(dice)} bundled scans (median {median:.2f}; of two middle "
                       "results, the lower).")
        if outlined:
            scores = truth_scores(pred.mask, truth, pred.classes)
            if ac.presenting():
                st.markdown(plain_scores(scores))
                with st.expander("The figures"):
                    st.markdown(dice_caption(scores) + f" against {ac.md_escape(s.mask.name)}.")
            else:
                st.markdown(dice_caption(scores) + " against the expert's outline "
                            f"({ac.md_escape(s.mask.name)}; this image only, the models' measured quality is below).")
        st.markdown(legend_html(pred.classes, outlined), unsafe_allow_html=True)
        if st.button("Open it on Segment", key="home_hero_open", icon=":material/image_search:", type="primary",
                     help="Zoom, other views, presence, measurements and downloads."):
            scan.open_sample(s.stem)
            st.switch_page("views/segment.py")


# ---------------------------------------------------------------- truth and presence


def truth_scores(pred_mask: np.ndarray, truth: np.ndarray, classes: list[str]) -> dict[str, dict]:
    """nervseg.metrics.score of every foreground class against the ground truth."""
    return {name: metrics.score(pred_mask, truth, cid) for cid, name in enumerate(classes) if cid > 0}


def card_presence(card: ModelCard) -> dict | None:
    return provenance.card_presence(card)


def presence(card: ModelCard, probs: np.ndarray, mask: np.ndarray) -> list[Presence]:
    return assess(probs, mask, card.classes, card_presence(card))


def presence_basis(block: dict) -> str:
    """What a calibrated presence probability rests on, in plain words."""
    n_yes, n_no = block.get("n_present"), block.get("n_absent")
    if n_yes is None or n_no is None:
        return f"learnt from {block.get('measured_on', 'held-out scans')}"
    return f"learnt from the model's results on {n_yes + n_no} scans it had not seen, {n_no} of them without one"


def likelihood_text(probability: float) -> str:
    """A calibrated probability in words: never "100%" or "0%", which an isotonic fit on a few hundred
    scans gives its extreme bins but no such data can back."""
    if probability >= 0.995:
        return "over 99% likely"
    if probability < 0.005:
        return "under 1% likely"
    return f"{probability:.0%} likely"


def show_presence(card: ModelCard, found: list[Presence], dice: dict[str, dict] | None = None) -> None:
    """One metric per structure: found / not found, the calibrated probability or 'not calibrated', Dice."""
    block = card_presence(card) or {}
    row = st.container(horizontal=True, gap="medium")  # side by side where they fit, one under the other where not
    if not any(p.calibrated for p in found):
        st.caption("Presence **not calibrated** for this model: 'found' means pixels are marked; no confidence "
                   "figure is shown until the model card carries a calibrated presence probability.")
    for p in found:
        verdict = "found" if p.found else "doubtful" if p.marked else "not found"
        if p.calibrated:
            b = block.get(p.name, {})
            delta = likelihood_text(p.probability)
            hlp = f"How likely a {p.name} is in the image, {presence_basis(b)}; found when it reaches " \
                  f"{float(b.get('threshold', 0.5)):.0%}."
            if p.marked and not p.found:
                hlp += f" The model marked {p.name} pixels anyway (drawn): the check doubts them."
            seen = b.get("on_scans_with_it")
            if seen:
                hlp += (f" On {seen['n_images']:,} scans that do show a {p.name}, this check said found for "
                        f"{seen['found_share']:.0%}.")
        else:
            delta = None
            why = block.get(p.name, {}).get("not_calibrated")
            hlp = (f"'found' means the mask marks {p.name} pixels. "
                   + (f"No calibrated probability for {p.name}s: in its dataset {why}." if why else
                      "This model's card has no calibrated presence probability yet, so no confidence figure is "
                      "shown: a mean pixel probability looks high even on images without the structure."))
        d = (dice or {}).get(p.name)
        if d is not None:
            hlp += f" Dice against the ground truth: {ac.fmt(d['dice'])}."
        row.metric(p.name, verdict, delta, delta_color="off", help=hlp, width="content")


def plain_scores(scores: dict[str, dict]) -> str:
    """Dice in words for a clinician: how far the model's marking agrees with the expert's, per structure."""
    return "Agreement with the expert's outline on this scan: " + " · ".join(
        f"{name} **{s['dice']:.0%}**" for name, s in scores.items()) + " (100% = identical)."


def dice_caption(scores: dict[str, dict], truth_name: str | None = None) -> str:
    """Dice per structure, and the mask file they were measured against."""
    line = " · ".join(f"{name} Dice **{ac.fmt(s['dice'])}**" for name, s in scores.items())
    return line + (f" (against {ac.md_escape(truth_name)})" if truth_name else "")


def legend_html(classes: list[str], truth: bool = False) -> str:
    """The class legend, plus the ground-truth outline colours when drawn."""
    html = ac.legend_html(classes)
    if truth:
        html += " &nbsp;·&nbsp; ground truth:" + "".join(
            f"{viz.swatch_html(viz.hex_colour(rgb), outline=True)}{classes[cid]} outline"
            for cid, rgb in viz.class_colours(len(classes) - 1, truth=True).items() if cid < len(classes))
    return html


def training_note(card: ModelCard, image_shape: tuple[int, int], mask: np.ndarray) -> str | None:
    """A note when the model marks nothing on a scan unlike what it learnt from (or nothing at all)."""
    if mask.any():
        return None
    unlike = provenance.unlike_training(card, image_shape)
    h, w = image_shape[:2]
    return (f"{card.name} marks nothing here. It learnt from **{provenance.dataset_label(card)}**"
            + (f" (input {card.input_size[1]}×{card.input_size[0]}); this {w}×{h} scan looks unlike those images."
               if unlike else ".")
            + " Try a model of another group in the sidebar.")


@st.cache_data(show_spinner=False)
def task_comparison(task: str) -> comparison.TaskComparison | None:
    """The task's comparison figures, read once per process (Home asks for them once per table cell)."""
    return comparison.load(task)


def architecture_verdict(task: str) -> None:
    """How the task's architectures compare, in plain words, with where the figures come from."""
    c = task_comparison(task)
    if c is None:
        return
    label = TASKS[task].display if task in TASKS else task
    st.info(f"**{label}: which architecture is better?** " + " ".join(c.plain_verdicts())
            + f" ({c.plain_source}.)", icon=":material/balance:")
    with st.expander(f"{label}: the statistics behind this"):
        st.markdown(" ".join(c.verdicts()))
        st.caption(f"Figures: {c.source}. Per-image Dice, paired on the same images; 95% CIs by bootstrap over "
                   "groups (kaggle-bp subjects, usgra images).")


def how_measured(task: str) -> str:
    """'<dataset>: <where its figures come from>.' for the caption under a table of them."""
    c = task_comparison(task)
    label = TASKS[task].display if task in TASKS else task
    return f"{label}: {c.how_measured() if c else 'the held-out figures recorded in each model card'}."


def dice_with_ci(task: str, model_id: str, cls: str, fallback: float | None) -> str:
    """'0.709 [0.652, 0.759]' from the task's comparison figures, else the card's figure alone."""
    c = task_comparison(task)
    m = c.dice_ci(model_id, cls) if c else None
    if m is None:
        return ac.fmt(fallback)
    return f"{m[0]:.3f} [{m[1]:.3f}, {m[2]:.3f}]"
