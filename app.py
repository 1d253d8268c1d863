"""Attention Studio: see, head by head and layer by layer, where each token looks.

Run with the README's command (it sets up .venv first), or: .venv/bin/streamlit run app.py
This file only wires pages together; pages (one folder each under app_pages/) wire widgets
to engine/ and viz/.
"""

from pathlib import Path

import streamlit as st

from app_pages.shared.i18n import COMMON_TEXT, tr
from app_pages.shared.sidebar import sidebar

# The tab icon is a file served by the app itself: a material icon or an emoji as page_icon
# makes the browser fetch it from a font server or a CDN, which fails offline. (Page icons
# below are Material icons, drawn from the font Streamlit bundles.)
st.set_page_config(page_title="Attention Studio",
                   page_icon=str(Path(__file__).parent / "app_pages" / "shared" / "icon.png"),
                   layout="wide")
settings = sidebar()

PAGES = [  # (file, title key, icon, url path)
    ("app_pages/attention/page.py", "page_attention", "visibility", "attention"),
    ("app_pages/masks/page.py", "page_masks", "grid_on", "masks"),
    ("app_pages/variants/page.py", "page_variants", "call_split", "variants"),
    ("app_pages/positions/page.py", "page_positions", "straighten", "positions"),
    ("app_pages/steps/page.py", "page_steps", "stairs", "steps"),
    ("app_pages/census/page.py", "page_census", "query_stats", "census"),
]
pages = [
    st.Page(file, title=tr(COMMON_TEXT, key), icon=f":material/{icon}:", url_path=path,
            default=i == 0)
    for i, (file, key, icon, path) in enumerate(PAGES)
]
st.navigation(pages).run()
