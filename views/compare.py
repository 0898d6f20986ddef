"""Compare models: one scan through every model of the group, large panels, agreement, ground truth."""

import pandas as pd
import streamlit as st

from dashboard import common as ac
from dashboard import demo, scan
from nervseg import metrics
from nervseg.display import viz
from nervseg.models import provenance

PANEL_WIDTH = 210  # between a third of the page at 1024 and at 1280 px: a panel's figure height follows the scan's aspect


def panel_view(image, pred, truth, view: str, alpha: float, outline: bool, classes: list[str]):
    """The RGB shown in one model's panel: overlay (with truth outlines) or a TP/FP/FN map of one class."""
    if view.startswith("Errors"):
        return viz.error_map(image, pred.mask, truth, classes.index(_view_class(view)))
    rgb = viz.overlay(image, pred.mask, alpha)
    return viz.truth_outline(rgb, truth) if truth is not None and outline else rgb


def _view_class(view: str) -> str:
    """'Errors (nerve)' -> 'nerve'."""
    return view.split("(", 1)[1].rstrip(")")


def _figure(rgb, key: str, width: int) -> None:
    height = int(width * rgb.shape[0] / rgb.shape[1])
    st.plotly_chart(viz.image_figure(rgb, max_width=700, height=height), width="stretch", key=key,
                    config={"scrollZoom": True, "displaylogo": False})


@st.fragment
def panels(image, group, preds, truth, truth_name) -> None:
    """The group's models side by side in one row (each with its Dice under it), or all their outlines on one
    image; the display settings below re-run only this fragment, on the cached predictions."""
    classes = group[0].classes
    names = {c.id: c.arch_display for c in group}
    ids = list(preds)
    row = st.container()  # filled once the settings below are read
    c1, c2 = st.columns([1, 3])
    ac.remembered("cmp_opacity", "opacity", 0.45)
    alpha = c1.slider("Overlay opacity", 0.0, 1.0, step=0.05, key="cmp_opacity")
    ac.remember("cmp_opacity", "opacity")
    views = (["Overlay"] + [f"All outlines ({c})" for c in classes[1:]]
             + ([f"Errors ({c})" for c in classes[1:]] if truth is not None else []))
    view = c2.radio("View", views, horizontal=True, key="cmp_view",
                    help="All outlines: every model's outline of one structure on one image, one colour per model. "
                         "Errors: true positives, false positives and false negatives against the ground truth.")
    outline = truth is not None and view == "Overlay" and c2.toggle("Outline the ground truth", True, key="cmp_truth")
    with row:
        if view.startswith("All outlines"):
            cls = _view_class(view)
            left, right = st.columns([3, 2])
            with left:
                rgb = viz.model_outlines(image, [preds[m].mask for m in ids], classes.index(cls), truth)
                _figure(rgb, "cmp_fig_all", 2 * PANEL_WIDTH)
            with right:
                chips = [(viz.model_colour_hex(k), names[m]) for k, m in enumerate(ids)]
                if truth is not None:
                    chips.append((viz.hex_colour(viz.TRUTH_COLOURS[1]), "ground truth (thin)"))
                st.markdown(f"**{cls}**, one outline per model:" + "".join(
                    f"<br>{viz.swatch_html(colour, outline=True)}{label}" for colour, label in chips),
                    unsafe_allow_html=True)
                for m in ids:
                    _answer(m, names[m], preds[m], truth, truth_name, classes)
        else:
            for col, mid in zip(st.columns(len(ids)), ids, strict=True):
                with col:
                    st.markdown(f"**{names[mid]}**")
                    _figure(panel_view(image, preds[mid], truth, view, alpha, outline, classes), f"cmp_fig_{mid}",
                            PANEL_WIDTH)
                    _answer(mid, None, preds[mid], truth, truth_name, classes,
                            next(c for c in group if c.id == mid).parameters)
        if view.startswith("Errors"):
            st.markdown(viz.error_legend_html() + " · false positive: marked but not in the truth; false negative: "
                        "missed", unsafe_allow_html=True)
        elif view == "Overlay":
            st.markdown(demo.legend_html(classes, truth is not None and outline), unsafe_allow_html=True)


def _answer(mid, name, pred, truth, truth_name, classes, parameters: int | None = None) -> None:
    """One model's line: its time (and size), and its Dice against the ground truth when there is one."""
    line = f"**{name}**: " if name else ""
    if ac.presenting():  # plain words; the figures are in the table below
        line += (demo.plain_scores(demo.truth_scores(pred.mask, truth, classes)) if truth is not None
                 else "coloured: what this model marks.")
    else:
        line += f"{pred.seconds * 1000:.0f} ms"
        if parameters is not None:
            line += f" · {parameters / 1e6:.1f} M parameters"
        if truth is not None:
            line += " · " + demo.dice_caption(demo.truth_scores(pred.mask, truth, classes), truth_name)
    with st.container(key=f"cmp_answer_{mid}"):
        st.caption(line)


def truth_table(preds, truth, classes, names) -> pd.DataFrame:
    rows = []
    for mid, p in preds.items():
        for cid, cname in enumerate(classes):
            if cid == 0:
                continue
            s = metrics.score(p.mask, truth, cid)
            rows.append({"model": names[mid], "structure": cname,
                         **{k: ac.fmt(s[k], 1 if k == "hd95" else 3) for k in metrics.METRIC_KEYS}})
    return pd.DataFrame(rows)


st.title("Compare models")
card = ac.require_card()
ac.lab_notice("compare")

group = ac.same_task_cards(card)
st.caption(f"Every **{provenance.group_label(card)}** model ({', '.join(c.arch_display for c in group)}), same image, "
           f"same preprocessing: {ac.preprocess_summary(card)}. Another group: choose it in the sidebar.")
picked, beside = scan.scan_bar("compare")
if picked is None:
    demo.architecture_verdict(card.task)
    st.info("Upload a scan, or open one of the bundled samples.", icon=":material/upload:")
    st.stop()
image = picked.image.image

with beside.expander("Ground-truth mask", expanded=False, icon=":material/draw:"):
    given = scan.mask_uploader("Ground-truth mask (optional: PNG/TIFF class ids or 0/255)", "compare_mask", picked)
truth = given.mask if given else None
preds = {}
for c in group:
    try:
        preds[c.id] = ac.cached_predict(c.id, picked.hash, image, ac.preprocess_dict())
    except ac.USER_ERRORS as e:
        ac.show_input_error(e)
if not preds:
    st.stop()
names = {c.id: c.arch_display for c in group}
trained = [names[c.id] for c in group if provenance.trained_on(c, picked.name)]
if trained:
    st.warning(f"{ac.md_escape(picked.name)} was among the training images of {', '.join(trained)}: their results flatter them.")
panels(image, group, preds, truth, given.name if given else None)
demo.architecture_verdict(card.task)

if truth is not None:
    st.subheader(f"Against the ground truth ({ac.md_escape(given.name)})")
    st.dataframe(truth_table(preds, truth, card.classes, names), hide_index=True, width="stretch",
                 column_config={"hd95": st.column_config.TextColumn("HD95 (px)", help="95th-percentile boundary "
                                "distance; ∞ when one of the two masks is empty.")})

st.subheader("Agreement between models")
ids = list(preds)
cls_names = card.classes[1:]
cls = st.radio("Structure", cls_names, horizontal=True, key="cmp_class") if len(cls_names) > 1 else cls_names[0]
cid = card.classes.index(cls)
matrix = metrics.pairwise_dice([preds[i].mask for i in ids], cid)
a, b = st.columns(2)
with a:
    st.plotly_chart(viz.dice_matrix_figure([names[i] for i in ids], matrix), width="stretch")
    st.caption(f"Pairwise Dice of the {cls} masks (1 = identical).")
with b:
    st.image(viz.fit_width(viz.disagreement_map(image, [p.mask for p in preds.values()]), 640), width="stretch",
             caption="Red: pixels where the models do not all agree (any class).")

st.subheader("Latency and size")
st.dataframe(pd.DataFrame([{
    "model": names[mid], "inference (ms, this image)": round(p.seconds * 1000, 1),
    "parameters (M)": round(next(c for c in group if c.id == mid).parameters / 1e6, 2),
    "weights (MB)": round(next(c for c in group if c.id == mid).weights_bytes / 1e6, 1),
} for mid, p in preds.items()]), hide_index=True, width="stretch")
