"""advlens: ``streamlit run streamlit_app.py`` (add ``-- --cpu`` to force the CPU)."""

import streamlit as st

from advlens.threads import set_interactive_threads

set_interactive_threads()  # this session's torch threads, from the CPU policy (ADVLENS_THREADS)
st.set_page_config(page_title="advlens", page_icon=":material/biotech:", layout="wide")
st.navigation(
    [
        st.Page("dashboard/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("dashboard/lessons.py", title="Lessons", icon=":material/school:", url_path="lessons"),
        st.Page("dashboard/attack_lab.py", title="Attack Lab", icon=":material/bolt:", url_path="attack"),
        st.Page("dashboard/attention.py", title="Attention", icon=":material/visibility:", url_path="attention"),
        st.Page("dashboard/features.py", title="Features", icon=":material/layers:", url_path="features"),
        st.Page("dashboard/training.py", title="Training", icon=":material/model_training:", url_path="training"),
        st.Page("dashboard/compare.py", title="Compare models", icon=":material/compare:", url_path="compare"),
        st.Page("dashboard/evaluate.py", title="Evaluate", icon=":material/verified:", url_path="evaluate"),
    ]
).run()
