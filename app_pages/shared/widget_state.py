"""Widget values that survive what Streamlit does to them: a page switch (Streamlit drops the
state of widgets that are not drawn) and a change of options (a model with fewer layers)."""

from __future__ import annotations

import streamlit as st

from app_pages.shared.i18n import tr

PLACEHOLDER_TEXT = {"choose": ("Choose options", "请选择")}


def choose_placeholder() -> str:
    """st.multiselect's empty-state text ("Choose options" is Streamlit's, always English)."""
    return tr(PLACEHOLDER_TEXT, "choose")


def persist(keys: tuple[str, ...], defaults: dict | None = None) -> None:
    """Keep widget values across page switches: each run copies the values aside and
    restores the missing ones (or sets `defaults`)."""
    defaults = defaults or {}
    for k in keys:
        shadow = f"_keep_{k}"
        if k in st.session_state:
            st.session_state[shadow] = st.session_state[k]
        elif shadow in st.session_state:
            st.session_state[k] = st.session_state[shadow]
        elif k in defaults:
            st.session_state[k] = defaults[k]


def keep_valid(key: str, options: list, default=None) -> None:
    """Reset a widget's stored value when it is not among this run's options (e.g. after
    switching to a model with fewer layers)."""
    if options and st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else options[0]


def keep_subset(key: str, options: list, default: list) -> None:
    """A multiselect's stored choice, minus options this run no longer has."""
    if key not in st.session_state:
        st.session_state[key] = [d for d in default if d in options]
    else:
        kept = [v for v in st.session_state[key] if v in options]
        if kept != st.session_state[key]:
            st.session_state[key] = kept


def keep_in_range(key: str, lo: int, hi: int, default: int) -> None:
    """A slider's stored value, clamped to this run's range."""
    value = st.session_state.get(key, default)
    st.session_state[key] = min(max(int(value), lo), hi)


def hand_over(values: dict) -> None:
    """Set another page's widget values just before `st.switch_page` to it: the value and
    the copy `persist` restores from, so that page opens on them whether or not Streamlit
    kept its widgets' state while it was not drawn."""
    for k, v in values.items():
        st.session_state[k] = v
        st.session_state[f"_keep_{k}"] = v


def show_stored(key: str) -> None:
    """Send a keyed widget's stored value to the browser again on this run.

    A run stopped for a rerun (a click while a long pass computes) keeps the state of widgets
    it did not draw, so a widget hidden in a closed tab comes back with its value on the
    server but no `set_value` for the browser, which mounts it afresh and shows its default
    (an empty head picker beside heads-off results). Assigning the value through the
    Session State API makes Streamlit send it with the widget."""
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]
