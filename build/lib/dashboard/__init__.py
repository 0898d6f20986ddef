"""The dashboard's glue: Streamlit code around nervseg calls (pages/ hold the page scripts)."""
