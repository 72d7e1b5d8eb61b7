"""Entry point: page config and navigation over pages/; every page lives in its own file."""

import streamlit as st

st.set_page_config(page_title="Training-loop twins", page_icon="🔁", layout="wide")

pages = [
    st.Page("pages/compare.py", title="Compare the loops", icon="📈", default=True),
    st.Page("pages/pitfalls.py", title="Pitfalls lab", icon="🧪"),
    st.Page("pages/code_map.py", title="Code map", icon="🗺️"),
    st.Page("pages/step_through.py", title="Step through", icon="👣"),
]
st.navigation(pages).run()
