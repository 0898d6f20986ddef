"""Home: what the tool does, which models exist, how to start."""

import pandas as pd
import streamlit as st

import app_common as ac

st.title("Nerve and vessel segmentation in ultrasound")
st.markdown(
    "- Finds **nerves** (and, for the usgra-seg models, **blood vessels**) in regional-anaesthesia ultrasound scans.\n"
    "- Shows where each structure is, how sure the model is, and its size and depth.\n"
    "- Compares U-Net, DenseNet and SK-U-Net, tunes preprocessing, and scores models against ground-truth masks."
)
st.warning(ac.DISCLAIMER, icon=":material/warning:")

st.subheader("Models")
cards = ac.cards()
if not cards:
    ac.no_models_notice()
else:
    rows = []
    for c in cards:
        rows.append({
            "model": c.name, "architecture": c.arch_display, "task": c.task,
            "structures": ", ".join(c.classes[1:]),
            "validation nerve Dice": c.validation_dice("nerve"),
            "validation vessel Dice": c.validation_dice("vessel"),
            "parameters (M)": round(c.parameters / 1e6, 2),
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"validation nerve Dice": st.column_config.NumberColumn(format="%.3f"),
                                "validation vessel Dice": st.column_config.NumberColumn(format="%.3f")})
    st.caption("Dice: overlap with the expert's mask on held-out validation images (1 = perfect), from each model card.")

st.subheader("How to start")
st.markdown(
    "1. Choose a model in the sidebar (kaggle-bp models find the brachial plexus; usgra models find nerves and vessels).\n"
    "2. Open **Segment** and upload a scan (PNG, JPEG, TIFF, BMP or DICOM) or pick a sample.\n"
    "3. Then try **Compare models**, the **Preprocessing lab**, **Ground-truth metrics** with your own masks, "
    "or **Cine** for a video clip."
)
c1, c2, c3 = st.columns(3)
c1.page_link("pages/segment.py", label="Segment a scan", icon=":material/image_search:")
c2.page_link("pages/compare.py", label="Compare models", icon=":material/compare:")
c3.page_link("pages/metrics.py", label="Score against ground truth", icon=":material/analytics:")
