"""Attention Studio: see, head by head and layer by layer, where each token looks.

Run with the README's command (it sets up .venv first), or: .venv/bin/streamlit run app.py
This file only wires pages together; pages wire widgets to engine/ and viz/.
"""

import streamlit as st

from app_pages.common import sidebar
from app_pages.i18n import COMMON, tr

# Material icons, not emoji: headless Chromium on a bare Debian has no emoji font.
st.set_page_config(page_title="Attention Studio", page_icon=":material/visibility:",
                   layout="wide")
settings = sidebar()

PAGES = [  # (file, title key, icon, url path)
    ("attention_page.py", "page_attention", "visibility", "attention"),
    ("masks_page.py", "page_masks", "grid_on", "masks"),
    ("variants_page.py", "page_variants", "call_split", "variants"),
    ("positions_page.py", "page_positions", "straighten", "positions"),
    ("steps_page.py", "page_steps", "stairs", "steps"),
]
pages = [
    st.Page(f"app_pages/{file}", title=tr(COMMON, key), icon=f":material/{icon}:",
            url_path=path, default=i == 0)
    for i, (file, key, icon, path) in enumerate(PAGES)
]
st.navigation(pages).run()
