"""advlens: ``streamlit run streamlit_app.py`` (add ``-- --cpu`` to force the CPU)."""

import streamlit as st

st.set_page_config(page_title="advlens", page_icon="🔬", layout="wide")
st.navigation([
    st.Page("dashboard/home.py", title="Home", icon="🏠", default=True),
    st.Page("dashboard/attack_lab.py", title="Attack Lab", icon="⚔️", url_path="attack"),
    st.Page("dashboard/attention.py", title="Attention", icon="👁️", url_path="attention"),
    st.Page("dashboard/features.py", title="Features", icon="🧩", url_path="features"),
]).run()
