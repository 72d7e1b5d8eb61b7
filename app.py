"""Entry point: page config and navigation over pages/; every page lives in its own file."""

import streamlit as st
import torch

# Once per process, on import: the imported modules moved out of the garbage collector's walk.
import pages.parts.server

# One server runs every visitor's loops: one intra-op thread per run keeps forty students from
# oversubscribing a small machine's cores (the models here are too small to gain from more).
torch.set_num_threads(1)

st.set_page_config(page_title="Training-loop twins", page_icon="🔁", layout="wide")

pages = [
    st.Page("pages/compare.py", title="Compare the loops", icon="📈", default=True),
    st.Page("pages/pitfalls.py", title="Pitfalls lab", icon="🧪"),
    st.Page("pages/code_map.py", title="Code map", icon="🗺️"),
    st.Page("pages/step_through.py", title="Step through", icon="👣"),
    st.Page("pages/landscape.py", title="Loss landscape", icon="🗻"),
    st.Page("pages/line_order.py", title="Line-order lab", icon="🔀"),
    st.Page("pages/lr_map.py", title="Learning-rate map", icon="🌡️"),
    st.Page("pages/data_parallel.py", title="Data parallel", icon="🕸️"),
]
st.navigation(pages).run()
