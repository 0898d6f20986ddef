"""Segment: one scan through the chosen model; zoomable views, ground truth, presence, measurements."""

import pandas as pd
import streamlit as st

from dashboard import common as ac
from dashboard import demo, scan
from nervseg.display import viz
from nervseg.evaluate.measure import measure
from nervseg.evaluate.report import report_json, scan_report
from nervseg.models import provenance

VIEWS = ["Overlay", "Contours", "Uncertainty", "Probability", "Original"]
FIGURE_WIDTH = 440  # about the image column's width at 1280 px: the figure's height follows the scan's aspect
FIGURE_MAX_HEIGHT = 440  # at most: the image stays in the first screen at 1280x800 (its top is at ~240 px)
PRESENTER_WIDTH, PRESENTER_MAX_HEIGHT = 700, 620  # presenter mode: a larger image


def shown_view(view: str, image, pred, mask, alpha: float, truth, outline: bool):
    """(RGB view, colour scale or None) for the chosen view; ground-truth outlines on top when asked."""
    scale = None
    if view == "Overlay":
        rgb = viz.overlay(image, mask, alpha)
    elif view == "Contours":
        rgb = viz.contours(image, mask)
    elif view == "Uncertainty":
        rgb = viz.heatmap(image, viz.entropy(pred.probs), alpha=max(alpha, 0.5))
        scale = ("Inferno", "uncertainty")
    elif view == "Probability":
        cls = st.session_state.get("seg_heat_class") or pred.classes[1]
        rgb = viz.heatmap(image, pred.probs[pred.classes.index(cls)], alpha=max(alpha, 0.5))
        scale = ("Inferno", f"P({cls})")
    else:
        rgb = viz.to_rgb(image)
    if truth is not None and outline:
        rgb = viz.truth_outline(rgb, truth.mask)
    return rgb, scale


def measurements_table(mask, classes, spacing) -> pd.DataFrame:
    """One column per structure (fits a narrow column), one row per measurement; '—' where absent."""
    unit = "mm" if spacing else "px"
    table = {}
    for s in measure(mask, classes, spacing):
        area = ac.fmt(s.area_mm2, 1) if spacing else str(s.area_px)
        depth = s.depth_mm if spacing else s.depth_px
        table[s.name] = {
            f"area ({unit}²)" if spacing else "area (px)": area, "parts": str(s.components),
            "centre x, y (px)": f"{s.centroid_xy[0]:.0f}, {s.centroid_xy[1]:.0f}" if s.centroid_xy else "—",
            f"depth ({unit})": ac.fmt(depth, 1) if spacing and depth is not None else ac.fmt(depth),
        }
    return pd.DataFrame(table).rename_axis("measure").reset_index()


@st.fragment
def results(picked, card, pred, truth, spacing) -> None:
    """Everything that depends only on display settings: re-runs alone, on the cached prediction.

    The image on the left and, beside it, the answer (Dice, presence) above the display settings,
    so both start in the first screen at 1024x768 and 1280x800.
    """
    image, classes = picked.image.image, pred.classes
    left, right = st.columns([3, 2])
    answer = right.container(key="seg_answer")  # filled once the settings below have given the mask
    with right:
        c1, c2 = st.columns(2)
        ac.remembered("seg_threshold", "threshold", 0.5)
        ac.remembered("seg_opacity", "opacity", 0.45)
        threshold = c1.slider("Threshold", 0.05, 0.95, step=0.05, key="seg_threshold",
                              help="At 0.50 (the default) the mask is the model's own decision (most likely class, "
                                   "as scored in the cards and on Compare and Metrics); otherwise a pixel is marked "
                                   "when its most likely structure's probability reaches this.")
        alpha = c2.slider("Overlay opacity", 0.0, 1.0, step=0.05, key="seg_opacity")
        ac.remember("seg_threshold", "threshold")
        ac.remember("seg_opacity", "opacity")
        view = st.radio("View", VIEWS, horizontal=True, key="seg_view",
                        help="Uncertainty: per-pixel entropy of the class probabilities (0 = sure, 1 = no idea).")
        outline = truth is not None and st.toggle("Outline the ground truth", True, key="seg_truth",
                                                  help="The expert's mask, drawn over the view.")
        if view == "Probability" and len(classes) > 2:
            st.radio("Structure", classes[1:], horizontal=True, key="seg_heat_class")
    mask = pred.mask if threshold == 0.5 else pred.mask_at(threshold)  # default: the model's decision
    with left:
        rgb, scale = shown_view(view, image, pred, mask, alpha, truth, outline)
        width, cap = (PRESENTER_WIDTH, PRESENTER_MAX_HEIGHT) if ac.presenting() else (FIGURE_WIDTH, FIGURE_MAX_HEIGHT)
        height = min(cap, int(width * image.shape[0] / image.shape[1]))
        st.plotly_chart(viz.image_figure(rgb, colour_scale=scale, height=height), width="stretch", key="seg_figure",
                        config={"scrollZoom": True, "displaylogo": False})
        st.markdown(demo.legend_html(classes, truth is not None and outline), unsafe_allow_html=True)
        if ac.presenting():
            st.caption(f"{ac.md_escape(picked.name)} · {card.name}: coloured = what the model marks"
                       + ("; outlines = the expert's drawing" if truth is not None and outline else "")
                       + ". Scroll to zoom, double-click to reset.")
        else:
            st.caption(f"{ac.md_escape(picked.name)} · {card.name} · {image.shape[1]}×{image.shape[0]} px · preprocessing: "
                       f"{ac.preprocess_summary(card)} · scroll or drag to zoom and pan, double-click to reset.")
    with answer:
        scores, found = details(card, pred, mask, truth, image.shape)
    st.subheader("Measurements")
    st.dataframe(measurements_table(mask, classes, spacing), hide_index=True, width="stretch")
    st.caption(("Areas and depth in mm from the pixel size. " if spacing else
                "Areas and depth in pixels (set the pixel size, or upload DICOM, for mm). ")
               + f"Inference {pred.seconds * 1000:.0f} ms (cached since).")
    downloads(picked, card, pred, mask, spacing, threshold, alpha, found, scores, truth.name if truth else None)


def details(card, pred, mask, truth, shape):
    """Dice against the ground truth, presence per structure and the 'unlike its training data' note."""
    classes = pred.classes
    scores = demo.truth_scores(mask, truth.mask, classes) if truth is not None else None
    found = demo.presence(card, pred.probs, mask)
    demo.show_presence(card, found, scores)
    if scores and ac.presenting():
        st.markdown(demo.plain_scores(scores))
        with st.expander("The figures"):
            st.markdown(demo.dice_caption(scores, truth.name))
    elif scores:
        st.markdown(demo.dice_caption(scores, truth.name),
                    help="Dice: overlap of the model's mask with the expert's (1 = identical, 0 = none).")
    note = demo.training_note(card, shape, mask)
    if note:
        st.info(note, icon=":material/info:")
    return scores, found


def downloads(picked, card, pred, mask, spacing, threshold, alpha, found, scores, truth_name) -> None:
    """Mask, overlay and report, each made when its button is clicked (not on every display change).

    The callables run outside the script run, so they use only what is read here.
    """
    image = picked.image.image
    preprocess = ac.preprocess_dict()  # read now: a deferred download runs outside the script (no session state)

    def report() -> bytes:
        structures = measure(mask, pred.classes, spacing)
        # the report schema is nervseg.evaluate.report's; no mean probability posing as confidence, presence beside it
        rep = scan_report(picked.name, picked.hash, image.shape, spacing, card, preprocess, threshold,
                          pred.seconds, {}, structures, ac.DISCLAIMER)
        rep["presence"] = [{"structure": p.name, "found": p.found, "marked": p.marked, "score": round(p.score, 4),
                            "calibrated_probability": p.probability} for p in found]
        rep["dice_vs_ground_truth"] = {k: v["dice"] for k, v in scores.items()} if scores else None
        rep["ground_truth_file"] = truth_name
        return report_json(rep)

    stem = picked.name.rsplit(".", 1)[0]
    d1, d2, d3 = st.columns(3)
    d1.download_button("Mask", icon=":material/download:", data=lambda: viz.png_bytes(mask),
                       file_name=f"{stem}_mask.png", mime="image/png", width="stretch",
                       help="Class ids: 0 background, 1 nerve, 2 vessel.")
    d2.download_button("Overlay", icon=":material/download:", data=lambda: viz.png_bytes(viz.overlay(image, mask, alpha)),
                       file_name=f"{stem}_overlay.png", mime="image/png", width="stretch", help="PNG, full size.")
    d3.download_button("Report", icon=":material/download:", data=report, file_name=f"{stem}_report.json",
                       mime="application/json", width="stretch",
                       help="JSON: model, settings, presence, Dice and measurements.")


st.title("Segment a scan")
card = ac.require_card()
ac.lab_notice("segment")

picked, beside = scan.scan_bar("segment")
if picked is None:
    st.info("Upload a scan, or open one of the bundled samples (Home shows them all).", icon=":material/upload:")
    st.stop()
image = picked.image.image
with beside.expander("Ground-truth mask and pixel size", expanded=False, icon=":material/draw:"):
    truth = scan.mask_uploader("Ground-truth mask (optional: PNG/TIFF class ids or 0/255)", "segment_mask", picked)
    spacing = picked.image.pixel_spacing_mm
    if spacing is None:
        mm = st.number_input("Pixel size (mm)", 0.0, 5.0, 0.0, 0.01, key="seg_spacing",
                             help="Gives areas and depth in mm. DICOM files carry it themselves.")
        spacing = (mm, mm) if mm > 0 else None
    else:
        st.metric("Pixel size (DICOM)", f"{spacing[0]:.3f} mm")
if provenance.trained_on(card, picked.name):
    st.warning(f"{ac.md_escape(picked.name)} was among the training images of {card.name}: its result flatters the model.",
               icon=":material/warning:")

try:
    pred = ac.cached_predict(card.id, picked.hash, image, ac.preprocess_dict())
except ac.USER_ERRORS as e:
    ac.show_input_error(e)
    st.stop()
results(picked, card, pred, truth, spacing)
