"""Positions: how a Transformer knows word order — sinusoidal, learned (MiniLM), RoPE, ALiBi.

Numbers come from engine.lessons.positions (numpy from engine.core.positions and MiniLM's own
position table); figures from viz.figures.positions. d_model, length and base are editable
and shared by the views.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app_pages.positions.text import POSITIONS_TEXT
from app_pages.shared.download import figure_with_download
from app_pages.shared.i18n import translator
from app_pages.shared.models import get_model, installed_models
from app_pages.shared.sidebar import current_style
from engine.lessons import positions as lesson
from engine.models.registry import MODELS
from viz.figures.positions import (
    alibi_figure,
    dimension_curves_figure,
    encoding_figure,
    rope_circle_figure,
    rope_distance_figure,
    score_matrix_figure,
    similarity,
    similarity_figure,
)

say = translator(POSITIONS_TEXT)


ALIBI_MAX = 64  # positions drawn per ALiBi head (8 small heatmaps stay light)


def axes() -> dict:
    """Translated axis titles of a position × dimension table."""
    return dict(x_title=say("dimension"), y_title=say("position"),
                value_name=say("value"))


def sim_axes() -> dict:
    return dict(value_name=say("sim_value"),
                axis_title=say("position"))


def plot(fig, name: str, numbers: np.ndarray | None = None, columns=None,
         table: pd.DataFrame | None = None) -> None:
    """The figure and its download control; `numbers` (a matrix) or `table` are the numbers
    the CSV/JSON/NPZ downloads carry."""
    if table is None and numbers is not None:
        numbers = np.asarray(numbers, dtype=np.float32)
        table = pd.DataFrame(numbers, columns=columns)
    figure_with_download(fig, f"fig_{name}", f"dl_{name}", name=name, table=table,
                         config={"displaylogo": False})


@st.cache_data(show_spinner=False, max_entries=32)
def rope_scores(length: int, d: int, base: float, seed: int) -> np.ndarray:
    """q_m·k_n for one random q and k placed at every position: [length, length] float32."""
    return lesson.rope_scores(length, d, base, seed)


def minilm_positions(device: str) -> np.ndarray | None:
    """MiniLM's learned position table [512, 384], or None after saying why it cannot load."""
    model = get_model("minilm", device)
    if model is None:
        return None
    return lesson.learned_positions(model.transformer)


def show_sinusoidal(d_model: int, length: int, base: float, kinds: dict) -> None:
    st.caption(say("sin_help"))
    table = lesson.sinusoidal(length, d_model, base)  # [L, D]
    plot(encoding_figure(table, title=say("sin_title"), style=STYLE, **axes()),
         "pos_sinusoidal", table)
    # a fast pair (0, 1), a middle one, and a slow sine (d/2) that still moves over 64 positions
    q = 2 * (d_model // 8)
    default = [d for d in (0, 1, q, q + 1, 2 * (d_model // 4)) if 0 <= d < d_model]
    dims = st.multiselect(say("dims"), list(range(d_model)),
                          default=list(dict.fromkeys(default)), key=f"pos_dims_{d_model}",
                          placeholder=say("choose"))
    if dims:
        plot(dimension_curves_figure(table, dims, title=say("curves_title"), style=STYLE,
                                     x_title=say("position"), y_title=say("value"),
                                     dim_label=say("dim")),
             "pos_curves", table[:, dims], [f"dim {d}" for d in dims])
    kind = st.radio(say("similarity"), list(kinds), format_func=kinds.get, horizontal=True,
                    key="pos_sim")
    st.caption(say("sim_help"))
    sim = similarity(table, kind)
    plot(similarity_figure(sim, title=say("sim_title", kind=kinds[kind]), style=STYLE,
                           **sim_axes()), "pos_similarity", sim)


def show_learned(length: int, kinds: dict) -> None:
    st.caption(say("learned_help"))
    names, _ = installed_models(("encoder",))
    if "minilm" not in names:
        st.info(say("learned_missing"))
        st.code(MODELS["minilm"].install or "", language="bash")
        return
    try:
        learned = minilm_positions(st.session_state.get("device", "auto"))
    except ImportError as exc:
        st.error(str(exc))
        return
    if learned is None:
        return
    if length > learned.shape[0]:
        st.info(say("learned_cut"))
    part = learned[:length]
    plot(encoding_figure(part, title=say("learned_title"), style=STYLE, clip_quantile=0.99,
                         **axes()), "pos_learned", part)
    st.caption(say("learned_clip"))
    kind = st.radio(say("similarity"), list(kinds), format_func=kinds.get, horizontal=True,
                    key="pos_sim_learned", index=1)
    sim = similarity(part, kind)
    plot(similarity_figure(sim, title=say("learned_sim_title", kind=kinds[kind]),
                           style=STYLE, **sim_axes()), "pos_learned_similarity", sim)


def show_rope(d_model: int, length: int, base: float) -> None:
    st.caption(say("rope_help"))
    d = d_model - d_model % 2
    if d != d_model:
        st.info(say("odd", d=d))
    half = d // 2
    thetas = lesson.rope_thetas(d, base)  # [d / 2]
    pairs = st.multiselect(say("pairs"), list(range(half)),
                           default=list(dict.fromkeys([0, half // 4, half - 1])),
                           key=f"pos_rope_pairs_{d}", max_selections=4,
                           placeholder=say("choose"))
    n_pos = st.slider(say("n_positions"), 1, min(16, length), min(6, length),
                      key="pos_rope_npos")
    cos, sin = lesson.rope_angles(length, d, base)  # [L, d] each
    if pairs:
        plot(rope_circle_figure(cos, sin, pairs, list(range(n_pos)), thetas,
                                title=say("circle_title"), style=STYLE,
                                pair_label=say("pair"), position_label=say("position"),
                                angle_label=say("angle")), "pos_rope_circle",
             np.stack([cos[:n_pos, pairs], sin[:n_pos, pairs]], axis=-1)
             .reshape(n_pos, -1),
             [f"pair {q} {c}" for q in pairs for c in ("cos", "sin")])
    seed = int(st.columns(3)[0].number_input(say("seed"), 0, 10_000, 0, key="pos_rope_seed"))
    scores = rope_scores(length, d, base, seed)
    ms = list(dict.fromkeys([0, length // 4, length // 2]))
    cols = st.columns(2)
    with cols[0]:
        plot(rope_distance_figure(scores, ms, title=say("distance_title"), style=STYLE,
                                  x_title=say("distance"), y_title=say("qk_rope")),
             "pos_rope_distance", scores[ms].T, [f"m = {m}" for m in ms])
    with cols[1]:
        plot(score_matrix_figure(scores, title=say("matrix_title"), style=STYLE,
                                 x_title=say("key_pos"), y_title=say("query_pos")),
             "pos_rope_matrix", scores)
    p = int(st.session_state.get("precision", 3))
    st.markdown(say("spread", spread=f"{lesson.diagonal_spread(scores):.2g}",
                   range=f"{float(scores.max() - scores.min()):.{p}g}"))


def show_alibi(length: int) -> None:
    st.caption(say("alibi_help"))
    cols = st.columns(2)
    n_heads = int(cols[0].number_input(say("heads"), 1, 32, 8, key="pos_alibi_heads"))
    causal = cols[1].toggle(say("causal"), value=False, key="pos_alibi_causal")
    n = min(length, ALIBI_MAX)
    if n < length:
        st.caption(say("alibi_cut", n=n))
    slopes, bias = lesson.alibi(n_heads, n)  # [H], [H, n, n]
    if causal:
        bias = np.where(np.tril(np.ones((n, n), dtype=bool))[None], bias, np.nan)
    slopes_table = pd.DataFrame({
        say("head"): np.arange(1, n_heads + 1),
        say("slope"): slopes.astype(np.float64),
        "1 / " + say("slope"): 1.0 / slopes.astype(np.float64),
    })
    plot(alibi_figure(bias, slopes, title=say("alibi_title"), style=STYLE,
                      head_label=say("head"), slope_label=say("slope"),
                      value_name=say("bias")), "pos_alibi", table=slopes_table)
    with st.container(key="pos_slopes"):
        st.dataframe(slopes_table, hide_index=True)


st.title(say("title"))
STYLE = current_style()  # the sidebar's choice, read once per run
st.markdown(say("intro"))

c = st.columns(3)
d_model = int(c[0].number_input(say("d_model"), min_value=2, max_value=1024, value=64,
                                step=2, key="pos_d_model"))
length = int(c[1].number_input(say("length"), min_value=2, max_value=512, value=64,
                               key="pos_length"))
base = float(c[2].number_input(say("base"), min_value=1.0001, max_value=1e8, value=10_000.0,
                               step=1000.0, format="%g", key="pos_base"))
kinds = {"dot": say("sim_dot"), "cosine": say("sim_cosine")}

TABS = ("tab_sin", "tab_learned", "tab_rope", "tab_alibi")
chosen = st.session_state.get("pos_tab")
for tab_key in TABS:  # keep the open tab when the language (and so its label) changes
    if chosen in POSITIONS_TEXT[tab_key]:
        st.session_state["pos_tab"] = say(tab_key)
# lazy tabs: only the open one runs (MiniLM loads only when its tab is opened)
tabs = st.tabs([say(k) for k in TABS], key="pos_tab", on_change="rerun")
views = (
    lambda: show_sinusoidal(d_model, length, base, kinds),
    lambda: show_learned(length, kinds),
    lambda: show_rope(d_model, length, base),
    lambda: show_alibi(length),
)
for tab, view in zip(tabs, views, strict=True):
    if tab.open:
        with tab:
            view()
