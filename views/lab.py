"""Preprocessing lab: tune the filters, see before/after, and the what-if effect on the model."""

import streamlit as st

from dashboard import common as ac
from dashboard import demo, scan
from nervseg.display import viz
from nervseg.preprocess import PARAMS, Preprocess, PreprocessError

st.title("Preprocessing lab")
card = ac.require_card()

own = Preprocess.from_dict(card.preprocess)
st.info(f"**{card.name}** was trained with this preprocessing: **{own.describe()}**. Settings here replace it on "
        "every page until you reset: a what-if, since the model never saw such images in training.",
        icon=":material/science:")

def _store() -> None:
    values = {k: p.snap(st.session_state[f"lab_{k}"]) for k, p in PARAMS.items()}  # odd kernels stay odd
    for k, v in values.items():
        st.session_state[f"lab_{k}"] = v
    st.session_state["preprocess"] = values


try:
    settings = ac.current_preprocess() or own
except PreprocessError as e:
    ac.show_input_error(e)
    st.stop()

picked, _ = scan.scan_bar("lab")
if picked is None:
    st.info("Upload a scan or pick a sample to see the effect.", icon=":material/upload:")
controls, shown = st.columns([1, 2], gap="medium")  # the sliders beside the images they change
active = (ac.current_preprocess() or own).to_dict()
with controls, st.container(key="lab_controls"):
    for k, p in PARAMS.items():
        if f"lab_{k}" not in st.session_state:
            st.session_state[f"lab_{k}"] = p.type(active[k])
        st.slider(p.label, p.type(p.min), p.type(p.max), step=p.type(p.step), key=f"lab_{k}", help=p.help,
                  on_change=_store)
    st.button("Reset", key="lab_reset", on_click=ac.reset_preprocess, width="stretch", icon=":material/restart_alt:",
              help="Back to the model's own preprocessing.",
              disabled=st.session_state.get("preprocess") is None)
    st.caption(f"Active: {ac.preprocess_summary(card)}")
if picked is None:
    st.stop()
image = picked.image.image
with st.expander("Ground-truth mask: Dice before and after", expanded=False):
    truth = scan.mask_uploader("Ground-truth mask (optional: PNG/TIFF class ids or 0/255)", "lab_mask", picked)
after = ac.cached_preprocess(picked.hash, image, settings)

try:
    base = ac.cached_predict(card.id, picked.hash, image, None)
    what_if = base if ac.current_preprocess() is None else ac.cached_predict(card.id, picked.hash, image, settings.to_dict())
except ac.USER_ERRORS as e:
    ac.show_input_error(e)
    st.stop()


def views(image, after, base, what_if) -> None:
    """Before/after and the two segmentations, two per row, beside the sliders."""
    with shown, st.container(key="lab_images"):
        a, b = st.columns(2)
        a.image(viz.fit_width(image, 720), caption="Before (as loaded)", width="stretch")
        b.image(viz.fit_width(after, 720), caption=f"After: {settings.describe()}", width="stretch")
        c, d = st.columns(2)
        c.image(viz.fit_width(viz.overlay(image, base.mask), 720),
                caption=f"{card.arch_display} with its own preprocessing ({own.describe()})", width="stretch")
        d.image(viz.fit_width(viz.overlay(image, what_if.mask), 720),
                caption=f"{card.arch_display} with these settings ({settings.describe()})", width="stretch")
        changed = float((base.mask != what_if.mask).mean())
        line = ac.legend_html(card.classes) + f" &nbsp;·&nbsp; {changed:.1%} of pixels change class under these settings."
        if truth is not None:  # the scan's ground truth: Dice with the model's preprocessing and with these
            own_scores = demo.truth_scores(base.mask, truth.mask, card.classes)
            new_scores = demo.truth_scores(what_if.mask, truth.mask, card.classes)
            line += "<br>Dice against " + ac.md_escape(truth.name) + ": " + " · ".join(
                f"{name} {ac.fmt(own_scores[name]['dice'])} → <b>{ac.fmt(new_scores[name]['dice'])}</b>"
                for name in own_scores)
        st.markdown(line, unsafe_allow_html=True)


@st.fragment
def histograms(image, after) -> None:
    """The grey levels before and after; the log toggle re-runs only this."""
    h1, h2 = st.columns([4, 1])
    h1.markdown("**Grey-level histograms** (level 0, the black border around the scan, left out)")
    log = h2.toggle("Log scale", False, key="lab_hist_log")
    st.plotly_chart(viz.histogram_figure({"before": image, "after": after}, skip_black=True, log=log),
                    width="stretch")


views(image, after, base, what_if)
histograms(image, after)
