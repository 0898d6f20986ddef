"""Cine page: segment an ultrasound clip frame by frame and play it back (work in progress)."""

import streamlit as st

st.title("Cine loops")
st.info("Clip segmentation is being built; this page will let you upload a clip and play the overlay.")
