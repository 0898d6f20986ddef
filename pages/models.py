"""Models: one section per model card, everything read from the card."""

import json

import pandas as pd
import streamlit as st

import app_common as ac
from nervseg import viz
from nervseg.models import ARCHITECTURES
from nervseg.preprocess import Preprocess

st.title("Model cards")
cards = ac.cards()
if not cards:
    ac.no_models_notice()
    st.stop()

current = ac.current_model_id()
st.caption("Every figure here comes from the JSON card beside each weights file in models/.")
for c in sorted(cards, key=lambda c: (c.id != current, c.id)):
    with st.expander(f"{c.name}  ·  `{c.id}`" + ("  (selected)" if c.id == current else ""), expanded=c.id == current):
        spec = ARCHITECTURES.get(c.architecture)
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Architecture", c.arch_display)
        m2.metric("Parameters", f"{c.parameters / 1e6:.2f} M")
        m3.metric("Weights", f"{c.weights_bytes / 1e6:.1f} MB", help=f"{c.weights_dtype}, sha256 {c.weights_sha256[:16]}…")
        dice = c.validation_dice("nerve")
        m4.metric("Validation nerve Dice", ac.fmt(dice))
        st.markdown(
            f"**Build:** {spec.description if spec else c.architecture} · smp `{c.smp_class}` · encoder `{c.encoder}` · "
            f"{json.dumps(c.smp_kwargs)}  \n"
            f"**Input:** {c.input_size[0]}×{c.input_size[1]} (H×W) grey · normalisation {json.dumps(c.normalisation)} · "
            f"preprocessing: {Preprocess.from_dict(c.preprocess).describe()}  \n"
            f"**Classes:** {', '.join(c.classes)}"
        )
        left, right = st.columns(2)
        with left:
            st.markdown("**Training data**")
            data = dict(c.data)
            st.markdown(f"{data.pop('name', '–')}  \n*Licence:* {data.pop('licence', '–')}")
            split = data.pop("split", {})
            if split:
                st.json({k: v for k, v in split.items() if k != "val_stems"}, expanded=False)
            st.markdown("**Training recipe**")
            st.dataframe(pd.DataFrame([{"setting": k, "value": str(v)} for k, v in c.training.items()]),
                         hide_index=True, width="stretch")
            if c.command:
                st.code(c.command, language="bash")
        with right:
            if c.curves.get("epoch"):
                st.markdown("**Training curves**")
                st.plotly_chart(viz.curves_figure(c.curves), width="stretch", key=f"curves_{c.id}")
            per_class = c.validation.get("per_class", {})
            if per_class:
                st.markdown("**Validation metrics per class**")
                st.dataframe(pd.DataFrame([{"class": k, **v} for k, v in per_class.items()]),
                             hide_index=True, width="stretch")
            extra = {k: v for k, v in c.validation.items() if k != "per_class"}
            if extra:
                st.json(extra, expanded=False)
        if c.notes:
            st.caption(c.notes)
