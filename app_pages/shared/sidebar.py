"""The sidebar's settings (language, device, colour scale, colour range, precision), kept in
session_state under fixed keys so that every page sees the same choice."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app_pages.shared.figure_words import FIGURE_WORDS_ZH
from app_pages.shared.i18n import COMMON_TEXT, LANGS, tr
from viz.style import Style

PALETTES = ["cividis", "viridis", "magma", "Blues", "Greys"]  # colour-blind-safe first


@dataclass(frozen=True)
class Settings:
    lang: str
    device: str
    colorscale: str
    shared_range: bool
    precision: int


def sidebar() -> Settings:
    """Language, device, colour scale, shared/per-head range and precision; kept in
    session_state under fixed keys so every page sees the same choice."""
    with st.sidebar:
        st.radio(tr(COMMON_TEXT, "language"), list(LANGS), format_func=LANGS.get, key="lang",
                 horizontal=True)
        st.selectbox(tr(COMMON_TEXT, "device"), ["auto", "cpu", "cuda"], key="device")
        st.selectbox(tr(COMMON_TEXT, "colorscale"), PALETTES, key="colorscale")
        st.toggle(tr(COMMON_TEXT, "shared_range"), value=True, key="shared_range")
        st.slider(tr(COMMON_TEXT, "precision"), 1, 6, 3, key="precision")
    s = st.session_state
    return Settings(s["lang"], s["device"], s["colorscale"], s["shared_range"], s["precision"])


def current_settings() -> Settings:
    """The sidebar's settings (app.py draws the sidebar); defaults when a page runs alone."""
    s = st.session_state
    return Settings(s.get("lang", "en"), s.get("device", "auto"), s.get("colorscale", "cividis"),
                    bool(s.get("shared_range", True)), int(s.get("precision", 3)))


def current_style() -> Style:
    """The figure style the sidebar chose (palette, precision, shared colour range) and the
    reader's words for every figure (viz draws English unless given others)."""
    s = st.session_state
    words = tuple(FIGURE_WORDS_ZH.items()) if s.get("lang", "en") == "zh" else ()
    return Style(palette=s.get("colorscale", "cividis"), precision=int(s.get("precision", 3)),
                 shared_range=bool(s.get("shared_range", True)), words=words)
