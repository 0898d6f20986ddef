"""Home: a gallery of bundled scans (one click opens one segmented on Segment), then the models."""

import pandas as pd
import streamlit as st

from dashboard import common as ac
from dashboard import demo, scan
from nervseg.data import samples as nsamples
from nervseg.models import provenance

GALLERY_COLUMNS = 4

st.title("Nerve and vessel segmentation in ultrasound")
st.markdown(
    "Finds **nerves** and **blood vessels** in regional-anaesthesia ultrasound scans, shows how sure the model "
    "is and how far it is from an expert's outline. " + ac.DISCLAIMER
)

samples = scan.bundled_samples()
opening = ac.current_card()
if samples and opening is not None:
    st.subheader("What it finds")
    ac.lab_notice("home")
    with st.container(key="home_hero"):
        demo.hero(opening)
if samples:
    st.subheader("Try a scan")
    st.caption(
        f"{len(samples)} usgra-seg scans with the expert's nerve and vessel outlines, bundled with the app "
        f"(CC-BY 4.0, Timm Kandaouroff; unchanged). None was used to train the shipped models. "
        + (f"Opens on **Segment** with {opening.name}." if opening else "")
    )
    for start in range(0, len(samples), GALLERY_COLUMNS):
        cols = st.columns(GALLERY_COLUMNS)
        for col, s in zip(cols, samples[start:start + GALLERY_COLUMNS], strict=False):
            with col:
                st.image(nsamples.thumbnail_png(s.stem), width="stretch")  # made once per process
                if st.button(f"Open {s.stem}", key=f"home_open_{s.stem}", icon=":material/image_search:",
                             width="stretch", help=f"{s.description}. Structures: {', '.join(s.structures)}."
                             + (f" Region: {s.region}." if s.region else "")):
                    scan.open_sample(s.stem)
                    st.switch_page("views/segment.py")
                st.caption(s.title, help=s.description)

st.subheader("Models")
cards = ac.cards()
if not cards:
    ac.no_models_notice()
else:
    ordered = sorted(cards, key=lambda c: (provenance.group_label(c), c.arch_display))
    rows = [{  # the group and the architecture together are the model's full name, in narrow columns
        "finds · learnt from": provenance.group_label(c), "architecture": c.arch_display,
        "nerve Dice": demo.dice_with_ci(c.task, c.id, "nerve", c.quality_dice("nerve")),
        "vessel Dice": (demo.dice_with_ci(c.task, c.id, "vessel", c.quality_dice("vessel"))
                                 if "vessel" in c.classes else "—"),
    } for c in ordered]
    table = pd.DataFrame(rows)
    config = {
        "nerve Dice": st.column_config.TextColumn(
            help="Mean per-image Dice [95% confidence interval] on held-out images (1 = perfect overlap)."),
        "vessel Dice": st.column_config.TextColumn(help="— : the model does not mark vessels."),
    }
    if ac.presenting():  # plain words in front, the figures one click away
        st.dataframe(pd.DataFrame([{
            "finds · learnt from": provenance.group_label(c), "architecture": c.arch_display,
            "agreement with experts (nerve)": ac.fmt(c.quality_dice("nerve"), 2),
            "(vessel)": ac.fmt(c.quality_dice("vessel"), 2) if "vessel" in c.classes else "—",
        } for c in ordered]), hide_index=True, width="stretch")
        st.caption("Agreement: overlap of the model's marking with an expert's on scans kept out of training "
                   "(1 = identical).")
        with st.expander("The figures with their 95% confidence intervals"):
            st.dataframe(table, hide_index=True, width="stretch", column_config=config)
    else:
        st.dataframe(table, hide_index=True, width="stretch", column_config=config)
    with st.expander("How these figures were measured") if ac.presenting() else st.container():
        st.caption("Dice: overlap with the expert's mask, each image at its own resolution; figures of different "
                   "groups are not comparable. " + " ".join(demo.how_measured(task) for task in
                                                            dict.fromkeys(c.task for c in ordered)))
    for task in dict.fromkeys(c.task for c in cards):
        demo.architecture_verdict(task)

st.subheader("How to start")
st.markdown(
    "1. Open a scan above, or go to **Segment** and upload your own (PNG, JPEG, TIFF, BMP or DICOM, "
    "optionally with a mask).\n"
    "2. The sidebar picks the model, grouped by what it finds and what it learnt from.\n"
    "3. Then try **Compare models**, the **Preprocessing lab**, **Ground-truth metrics**, or **Cine** for a clip."
)
with st.container(horizontal=True, gap="large"):  # each link as wide as its words; they wrap as a whole, never cut
    st.page_link("views/segment.py", label="Segment a scan", icon=":material/image_search:")
    st.page_link("views/compare.py", label="Compare models", icon=":material/compare:")
    st.page_link("views/metrics.py", label="Score against ground truth", icon=":material/analytics:")
