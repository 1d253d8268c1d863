"""Shared wiring: the sidebar settings, cached model loading and cached attention runs.

Models sit behind `st.cache_resource` (one copy per process, shared by every session:
forward passes run under torch.inference_mode and never mutate the model); results sit
behind `st.cache_data`, keyed by every argument that changes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import engine
from app_pages.i18n import COMMON, LANGS, tr
from engine.models.registry import MODELS
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
        st.radio(tr(COMMON, "language"), list(LANGS), format_func=LANGS.get, key="lang",
                 horizontal=True)
        st.selectbox(tr(COMMON, "device"), ["auto", "cpu", "cuda"], key="device")
        st.selectbox(tr(COMMON, "colorscale"), PALETTES, key="colorscale")
        st.toggle(tr(COMMON, "shared_range"), value=True, key="shared_range")
        st.slider(tr(COMMON, "precision"), 1, 6, 3, key="precision")
    s = st.session_state
    return Settings(s["lang"], s["device"], s["colorscale"], s["shared_range"], s["precision"])


def current_settings() -> Settings:
    """The sidebar's settings (app.py draws the sidebar); defaults when a page runs alone."""
    s = st.session_state
    return Settings(s.get("lang", "en"), s.get("device", "auto"), s.get("colorscale", "cividis"),
                    bool(s.get("shared_range", True)), int(s.get("precision", 3)))


def current_style() -> Style:
    """The figure style the sidebar chose (palette, precision, shared colour range)."""
    s = st.session_state
    return Style(palette=s.get("colorscale", "cividis"), precision=int(s.get("precision", 3)),
                 shared_range=bool(s.get("shared_range", True)))


def installed_models(kinds: tuple[str, ...] | None = None) -> tuple[list[str], dict[str, str]]:
    """(installed model names, {missing name: install command})."""
    ok, missing = [], {}
    for name, e in MODELS.items():
        if kinds and e.kind not in kinds:
            continue
        if e.is_installed():
            ok.append(name)
        else:
            missing[name] = e.install or ""
    return ok, missing


@st.cache_resource(show_spinner=False)
def _load(name: str, device: str) -> engine.LoadedModel:
    bar = st.progress(0.0, text=tr(COMMON, "loading", name=name))

    def progress(fraction: float, message: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=message)

    try:
        return engine.load(name, device=device, progress=progress)
    finally:
        bar.empty()


def get_model(name: str, device: str) -> engine.LoadedModel | None:
    """The model, or None after showing why it cannot be loaded."""
    try:
        with st.spinner(tr(COMMON, "loading", name=name)):
            return _load(name, device)
    except engine.ModelNotInstalled as exc:
        st.warning(f"{tr(COMMON, 'not_installed')}")
        st.code(exc.command, language="bash")
    except (ValueError, ImportError, OSError) as exc:  # a corrupt file, a broken package
        st.error(tr(COMMON, "error", msg=str(exc)))
    return None


def model_picker(key: str, kinds: tuple[str, ...] | None = None, default: str | None = None):
    """A selectbox of installed models, with the missing ones listed with their command."""
    names, missing = installed_models(kinds)
    if not names:
        st.error("no model is installed")
        return None
    index = names.index(default) if default in names else 0
    name = st.selectbox(tr(COMMON, "model"), names, index=index, key=key,
                        format_func=lambda n: f"{n} — {MODELS[n].summary}")
    if missing:
        with st.expander(f"{tr(COMMON, 'not_installed')} {', '.join(missing)}"):
            for n, cmd in missing.items():
                st.markdown(f"**{n}**")
                st.code(cmd, language="bash")
    return name


@st.cache_data(show_spinner=False, max_entries=64)
def attend(name: str, device: str, text: str, **kwargs) -> engine.AttentionRecord:
    """Cached `model.attend`; every keyword argument is part of the cache key."""
    return _load(name, device).attend(text, **kwargs)


def show_notices(record: engine.AttentionRecord) -> None:
    for notice in record.meta.get("notices", []):
        st.info(notice)
