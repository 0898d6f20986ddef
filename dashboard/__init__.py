"""The dashboard's glue: Streamlit code around nervseg calls (views/ hold the page scripts)."""
