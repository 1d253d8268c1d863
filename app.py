"""Attention Studio: see, head by head and layer by layer, where each token looks.

Run with the README's command (it sets up .venv first), or: .venv/bin/streamlit run app.py
This file only wires pages together; pages wire widgets to engine/ and viz/.
"""

import streamlit as st

from app_pages.common import sidebar
from app_pages.i18n import COMMON, tr

st.set_page_config(page_title="Attention Studio", page_icon="🔍", layout="wide")
settings = sidebar()

pages = [
    st.Page("app_pages/attention_page.py", title=tr(COMMON, "page_attention"), icon="🔍",
            url_path="attention", default=True),
    st.Page("app_pages/masks_page.py", title=tr(COMMON, "page_masks"), icon="🎭",
            url_path="masks"),
    st.Page("app_pages/variants_page.py", title=tr(COMMON, "page_variants"), icon="🧮",
            url_path="variants"),
    st.Page("app_pages/positions_page.py", title=tr(COMMON, "page_positions"), icon="📐",
            url_path="positions"),
    st.Page("app_pages/steps_page.py", title=tr(COMMON, "page_steps"), icon="🪜",
            url_path="steps"),
]
st.navigation(pages).run()
