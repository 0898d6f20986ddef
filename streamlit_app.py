"""nervseg dashboard: navigation over the pages and the sidebar every page shares.

    streamlit run streamlit_app.py
"""

from pathlib import Path

import streamlit as st

from dashboard import common as ac
from dashboard import demo
from dashboard.pages import PAGES

HERE = Path(__file__).parent
# The tab icon is a file served by this server: a ":material/…" page icon makes the browser fetch it from
# fonts.gstatic.com (Streamlit's favicon rule), which fails offline and tells an outside host the tool is in use.
st.set_page_config(page_title="nervseg · ultrasound nerve segmentation", page_icon=str(HERE / "dashboard" / "assets" / "icon.png"),
                   layout="wide")
pages = [
    st.Page(p.path, title=p.title, icon=p.icon, default=(i == 0))
    for i, p in enumerate(PAGES)
    if (HERE / p.path).exists()
]
nav = st.navigation(pages)
ac.configure_threads_once()


def sidebar() -> None:
    with st.sidebar:
        cards = ac.cards()
        if not cards:
            st.warning("No trained models yet.")
        else:
            demo.model_picker(cards)
            card = ac.current_card()
            if card is not None:
                dice, where = card.quality("nerve")
                st.caption(f"**{card.name}** · classes: {', '.join(card.classes[1:])}"
                           + (f" · {where} nerve Dice {dice:.3f}" if dice is not None else ""))
                st.page_link("views/models.py", label="Model card", icon=":material/description:")
            st.markdown(f"**Preprocessing:** {ac.preprocess_summary(card)}")
            if ac.current_preprocess() is not None:
                st.page_link("views/lab.py", label="Change or reset in the lab", icon=":material/tune:")
        ac.show_card_errors()
        st.divider()
        ac.presenter_toggle()
        st.caption(ac.DISCLAIMER)


sidebar()
with ac.user_errors():  # the one place a typed library error becomes a readable st.error
    nav.run()
