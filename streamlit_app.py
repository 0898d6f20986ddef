"""nervseg dashboard: navigation over the pages and the sidebar every page shares.

    streamlit run streamlit_app.py
"""

from pathlib import Path

import streamlit as st

import app_common as ac
import app_demo

st.set_page_config(page_title="nervseg · ultrasound nerve segmentation", page_icon=":material/neurology:", layout="wide")

HERE = Path(__file__).parent
PAGES = [
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/segment.py", "Segment", ":material/image_search:"),
    ("pages/compare.py", "Compare models", ":material/compare:"),
    ("pages/lab.py", "Preprocessing lab", ":material/tune:"),
    ("pages/metrics.py", "Ground-truth metrics", ":material/analytics:"),
    ("pages/cine.py", "Cine", ":material/movie:"),
    ("pages/models.py", "Models", ":material/model_training:"),
]
pages = [
    st.Page(path, title=title, icon=icon, default=(i == 0))
    for i, (path, title, icon) in enumerate(PAGES)
    if (HERE / path).exists()
]
nav = st.navigation(pages)
ac.configure_threads_once()


def sidebar() -> None:
    with st.sidebar:
        cards = ac.cards()
        if not cards:
            st.warning("No trained models yet.")
        else:
            app_demo.model_picker(cards)
            card = ac.current_card()
            if card is not None:
                dice = card.validation_dice("nerve")
                st.caption(f"**{card.name}** · classes: {', '.join(card.classes[1:])}"
                           + (f" · validation nerve Dice {dice:.3f}" if dice is not None else ""))
                st.page_link("pages/models.py", label="Model card", icon=":material/description:")
            st.markdown(f"**Preprocessing:** {ac.preprocess_summary(card)}")
            if ac.current_preprocess() is not None:
                st.page_link("pages/lab.py", label="Change or reset in the lab", icon=":material/tune:")
        st.divider()
        st.caption(ac.DISCLAIMER)


sidebar()
nav.run()
