"""Compare models: one scan through every model of the task, agreement, latency, optional truth."""

import pandas as pd
import streamlit as st

import app_common as ac
from nervseg import metrics, viz

st.title("Compare models")
card = ac.current_card()
if card is None:
    ac.no_models_notice()
    st.stop()

group = ac.same_task_cards(card)
st.caption(f"Every model of the task **{card.task}** ({', '.join(c.arch_display for c in group)}), "
           f"same image, same preprocessing: {ac.preprocess_summary(card)}. Change the task by choosing "
           "another model in the sidebar.")
picked = ac.image_picker("compare")
if picked is None:
    st.info("Upload a scan or pick a sample to start.", icon=":material/upload:")
    st.stop()
image = picked.image.image

truth = ac.mask_uploader("Ground-truth mask (optional: PNG/TIFF class ids or 0/255)", "compare_mask", image,
                         default=picked.mask)
ac.remembered("cmp_opacity", "opacity", 0.45)
alpha = st.slider("Overlay opacity", 0.0, 1.0, step=0.05, key="cmp_opacity")
ac.remember("cmp_opacity", "opacity")

preds = {}
for c in group:
    try:
        preds[c.id] = ac.cached_predict(c.id, picked.hash, image, ac.preprocess_dict())
    except ac.USER_ERRORS as e:
        ac.show_input_error(e)
if not preds:
    st.stop()
names = {c.id: c.arch_display for c in group}

cols = st.columns(len(preds))
for col, (mid, pred) in zip(cols, preds.items()):
    c = next(x for x in group if x.id == mid)
    with col:
        st.markdown(f"**{names[mid]}**")
        st.image(viz.overlay(image, pred.mask, alpha), width="stretch")
        dice = c.validation_dice("nerve")
        st.caption(f"{pred.seconds * 1000:.0f} ms inference · {c.parameters / 1e6:.2f} M parameters"
                   + (f" · validation nerve Dice {dice:.3f}" if dice is not None else ""))
st.markdown(ac.legend_html(card.classes), unsafe_allow_html=True)

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
    st.image(viz.disagreement_map(image, [p.mask for p in preds.values()]), width="stretch",
             caption="Red: pixels where the models do not all agree (any class).")

st.subheader("Latency and size")
st.dataframe(pd.DataFrame([{
    "model": names[mid], "inference (ms, this image)": round(p.seconds * 1000, 1),
    "parameters (M)": round(next(c for c in group if c.id == mid).parameters / 1e6, 2),
    "weights (MB)": round(next(c for c in group if c.id == mid).weights_bytes / 1e6, 1),
} for mid, p in preds.items()]), hide_index=True, width="stretch")

if truth is not None:
    st.subheader("Against the ground truth")
    rows = []
    for mid, p in preds.items():
        s = metrics.score(p.mask, truth, cid)
        rows.append({"model": names[mid], **{k: s[k] for k in metrics.METRIC_KEYS}})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in metrics.METRIC_KEYS})
    cols = st.columns(len(preds))
    for col, (mid, p) in zip(cols, preds.items()):
        col.image(viz.error_map(image, p.mask, truth, cid), caption=f"{names[mid]}: {cls}", width="stretch")
    st.markdown(viz.error_legend_html(), unsafe_allow_html=True)
