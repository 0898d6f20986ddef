"""Compare models: one scan through every model of the group, large panels, agreement, ground truth."""

import pandas as pd
import streamlit as st

from dashboard import common as ac
from dashboard import demo, scan
from nervseg import metrics
from nervseg.display import viz
from nervseg.models import provenance

PANEL_COLUMNS = 2  # each panel at least half the page width


def panel_view(image, pred, truth, view: str, alpha: float, outline: bool, classes: list[str]):
    """The RGB shown in one model's panel: overlay (with truth outlines) or a TP/FP/FN map of one class."""
    if view.startswith("Errors"):
        cls = view.split("(", 1)[1].rstrip(")")
        return viz.error_map(image, pred.mask, truth, classes.index(cls))
    rgb = viz.overlay(image, pred.mask, alpha)
    return viz.truth_outline(rgb, truth) if truth is not None and outline else rgb


@st.fragment
def panels(image, group, preds, truth, truth_name) -> None:
    """Display settings re-run only this fragment, on the cached predictions."""
    classes = group[0].classes
    c1, c2 = st.columns([1, 2])
    ac.remembered("cmp_opacity", "opacity", 0.45)
    alpha = c1.slider("Overlay opacity", 0.0, 1.0, step=0.05, key="cmp_opacity")
    ac.remember("cmp_opacity", "opacity")
    views = ["Overlay"] + ([f"Errors ({c})" for c in classes[1:]] if truth is not None else [])
    view = c2.radio("View", views, horizontal=True, key="cmp_view",
                    help="Errors: true positives, false positives and false negatives against the ground truth.")
    outline = truth is not None and view == "Overlay" and c2.toggle("Outline the ground truth", True, key="cmp_truth")
    names = {c.id: c.arch_display for c in group}
    ids = list(preds)
    for start in range(0, len(ids), PANEL_COLUMNS):
        cols = st.columns(PANEL_COLUMNS)
        for col, mid in zip(cols, ids[start:start + PANEL_COLUMNS]):
            card, pred = next(c for c in group if c.id == mid), preds[mid]
            with col:
                st.markdown(f"**{names[mid]}**")
                rgb = panel_view(image, pred, truth, view, alpha, outline, classes)
                st.plotly_chart(viz.image_figure(rgb, max_width=700, height=int(400 * image.shape[0] / image.shape[1])),
                                width="stretch", key=f"cmp_fig_{mid}", config={"scrollZoom": True, "displaylogo": False})
                if ac.presenting():  # plain words; the figures are in the table below
                    line = (demo.plain_scores(demo.truth_scores(pred.mask, truth, classes)) if truth is not None
                            else "Coloured: what this model marks.")
                else:
                    line = f"{pred.seconds * 1000:.0f} ms · {card.parameters / 1e6:.1f} M parameters"
                    if truth is not None:
                        line += " · " + demo.dice_caption(demo.truth_scores(pred.mask, truth, classes), truth_name)
                st.caption(line)
    if view.startswith("Errors"):
        st.markdown(viz.error_legend_html() + " · false positive: marked but not in the truth; false negative: missed",
                    unsafe_allow_html=True)
    else:
        st.markdown(demo.legend_html(classes, truth is not None and outline), unsafe_allow_html=True)


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
card = ac.current_card()
if card is None:
    ac.no_models_notice()
    st.stop()
ac.lab_notice("compare")

group = ac.same_task_cards(card)
st.caption(f"Every **{provenance.group_label(card)}** model ({', '.join(c.arch_display for c in group)}), same image, "
           f"same preprocessing: {ac.preprocess_summary(card)}. Another group: choose it in the sidebar.")
demo.architecture_verdict(card.task)
picked = scan.image_picker("compare")
if picked is None:
    st.info("Upload a scan, or open one of the bundled samples.", icon=":material/upload:")
    st.stop()
image = picked.image.image

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
