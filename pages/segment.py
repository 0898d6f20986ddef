"""Segment: one scan through the chosen model; overlay, confidence, measurements, downloads."""

import math

import pandas as pd
import streamlit as st

import app_common as ac
from nervseg import viz
from nervseg.inference import class_confidence
from nervseg.measure import measure
from nervseg.report import report_json, scan_report

st.title("Segment a scan")
card = ac.current_card()
if card is None:
    ac.no_models_notice()
    st.stop()

picked = ac.image_picker("segment")
if picked is None:
    st.info("Upload a scan or pick a sample to start.", icon=":material/upload:")
    st.stop()

image = picked.image.image
c1, c2, c3, c4 = st.columns([2, 2, 4, 2])
ac.remembered("seg_threshold", "threshold", 0.5)
ac.remembered("seg_opacity", "opacity", 0.45)
threshold = c1.slider("Threshold", 0.05, 0.95, step=0.05, key="seg_threshold",
                      help="A pixel is marked when the model's probability for a structure reaches this value.")
alpha = c2.slider("Overlay opacity", 0.0, 1.0, step=0.05, key="seg_opacity")
ac.remember("seg_threshold", "threshold")
ac.remember("seg_opacity", "opacity")
view = c3.radio("View", ["Overlay", "Contours", "Probability heatmap", "Original side by side"],
                horizontal=True, key="seg_view")
spacing = picked.image.pixel_spacing_mm
if spacing is None:
    mm = c4.number_input("Pixel size (mm), if known", 0.0, 5.0, 0.0, 0.01, key="seg_spacing",
                         help="Gives areas in mm². DICOM files carry it themselves.")
    spacing = (mm, mm) if mm > 0 else None
else:
    c4.metric("Pixel size (from DICOM)", f"{spacing[0]:.3f} mm")

try:
    pred = ac.cached_predict(card.id, picked.hash, image, ac.preprocess_dict())
except ac.USER_ERRORS as e:
    ac.show_input_error(e)
    st.stop()
mask = pred.mask_at(threshold)
classes = pred.classes

if view == "Overlay":
    shown = viz.overlay(image, mask, alpha)
elif view == "Contours":
    shown = viz.contours(image, mask)
elif view == "Probability heatmap":
    cls = st.selectbox("Structure", classes[1:], key="seg_heat_class") if len(classes) > 2 else classes[1]
    shown = viz.heatmap(image, pred.probs[classes.index(cls)], alpha=max(alpha, 0.3))
else:
    shown = viz.side_by_side(image, viz.overlay(image, mask, alpha))

left, right = st.columns([3, 2])
with left:
    st.image(shown, caption=f"{ac.md_escape(picked.name)} · {card.name} · {image.shape[1]}×{image.shape[0]} px · "
             f"preprocessing: {ac.preprocess_summary(card)}", width="stretch")
    st.markdown(ac.legend_html(classes), unsafe_allow_html=True)
with right:
    st.subheader("Confidence")
    conf = class_confidence(pred.probs, mask, classes)
    cols = st.columns(len(conf))
    for col, (name, value) in zip(cols, conf.items()):
        col.metric(name, "not found" if math.isnan(value) else f"{value:.0%}",
                   help="Mean model probability over the pixels marked as this structure.")
    st.caption(f"Inference {pred.seconds * 1000:.0f} ms on first run (cached since).")
    st.subheader("Measurements")
    structures = measure(mask, classes, spacing)
    table = pd.DataFrame([{
        "structure": s.name, "area (px)": s.area_px,
        "area (mm²)": s.area_mm2 if spacing else None, "components": s.components,
        "centroid (x, y)": f"{s.centroid_xy[0]:.0f}, {s.centroid_xy[1]:.0f}" if s.centroid_xy else "–",
        "depth (px)": s.depth_px,
        "depth (mm)": s.depth_mm if spacing else None,
    } for s in structures])
    if spacing is None:
        table = table.drop(columns=["area (mm²)", "depth (mm)"])
    st.dataframe(table, hide_index=True, width="stretch")
    if spacing is None:
        st.caption("Areas in mm² need the pixel size (set it above, or upload DICOM).")

    report = scan_report(picked.name, picked.hash, image.shape, spacing, card, ac.preprocess_dict(), threshold,
                         pred.seconds, conf, structures, ac.DISCLAIMER)
    stem = picked.name.rsplit(".", 1)[0]
    d1, d2, d3 = st.columns(3)
    d1.download_button("Mask", icon=":material/download:", data=viz.png_bytes(mask), file_name=f"{stem}_mask.png",
                       mime="image/png", width="stretch", help="Class ids: 0 background, 1 nerve, 2 vessel.")
    d2.download_button("Overlay", icon=":material/download:", data=viz.png_bytes(viz.overlay(image, mask, alpha)),
                       file_name=f"{stem}_overlay.png", mime="image/png", width="stretch", help="PNG as shown.")
    d3.download_button("Report", icon=":material/download:", data=report_json(report),
                       file_name=f"{stem}_report.json", mime="application/json", width="stretch",
                       help="JSON: model, settings, confidence and measurements.")
