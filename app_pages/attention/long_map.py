"""One long map (more than viz LONG_INPUT tokens), shown the way its reader chooses:

- at full resolution, one pixel per cell, with the exact tokens and weight on hover;
- as an overview in blocks (the max of each block by default, or the mean);
- as each query's top-k keys;
- as a zoom window of up to WINDOW_MAX × WINDOW_MAX cells, drawn as a heatmap with every
  label.

The Head tab and the Mean & rollout tab draw their long maps through this one function, so
a view, a reduction or a log scale chosen once holds for every long map on the page.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from app_pages.attention.passes import WINDOW_MAX
from app_pages.attention.text import ATTENTION_TEXT
from app_pages.shared.download import figure_with_download
from app_pages.shared.hover_readout import EXACT_MAX_CELLS, hover_readout, prepare
from app_pages.shared.i18n import translator
from app_pages.shared.timing import timed
from app_pages.shared.widget_state import keep_in_range, keep_valid
from viz.figures.image_map import image_map
from viz.figures.long_input import REDUCTIONS, overview_figure, topk_figure
from viz.figures.window import window_heatmap
from viz.style import Style

say = translator(ATTENTION_TEXT)

VIEWS = ("v_full", "v_overview", "v_topk", "v_window")


def view_controls(with_topk: bool = True) -> tuple[str, str, bool]:
    """The page-wide choice of (view, block reduction, log scale) for long maps."""
    views = [v for v in VIEWS if with_topk or v != "v_topk"]
    keep_valid("attn_long_view", views)
    view = st.segmented_control(say("long_view"), views, key="attn_long_view",
                                format_func=say, required=True) or views[0]
    cols = st.columns([4, 3, 3])  # the view's own options, under it
    how = REDUCTIONS[0]
    if view == "v_overview":
        keep_valid("attn_reduce", list(REDUCTIONS))
        with cols[1]:
            how = st.selectbox(say("reduce"), list(REDUCTIONS), key="attn_reduce",
                               format_func=lambda r: say(f"r_{r}"))
    log = False
    if view in ("v_full", "v_overview"):
        with cols[0]:
            # on by default: over thousands of keys most weights are near 1/T, and one cell
            # at 1.0 (the first query's) would leave a linear scale dark everywhere else
            st.session_state.setdefault("attn_log", True)
            log = st.toggle(say("log_scale"), key="attn_log", help=say("log_help"))
    return view, how, log


def long_map(values: np.ndarray, q_tok: Sequence[str], k_tok: Sequence[str], *,
             style: Style, title: str, chart_key: str, download_label: str,
             view: str, how: str, log: bool, zmax: float | None = None,
             value_name: str = "weight", **download) -> None:
    """Draw one long map [Tq, Tk] in the chosen view, with its download control.

    `download`: figure_with_download's record/block/layer/head or name/table arguments.
    """
    tq, tk = values.shape
    readout = view == "v_full"
    # the readout's weights are encoded in a worker thread while the image is built
    prepared = prepare(values, f"{chart_key}_readout") if readout else None
    with timed("figure build", view=view, cells=int(values.size)):
        fig = _figure(values, q_tok, k_tok, style=style, title=title, chart_key=chart_key,
                      view=view, how=how, log=log, zmax=zmax, value_name=value_name)
    figure_with_download(fig, chart_key, download_label, width="content", **download)
    if readout:
        big = values.size > EXACT_MAX_CELLS
        st.caption(say("image_caption_big" if big else "image_caption", tq=f"{tq:,}",
                       tk=f"{tk:,}"))
        hover_readout(chart_key, values, q_tok, k_tok, precision=style.precision,
                      key=f"{chart_key}_readout", prepared=prepared,
                      words={w: say(f"rd_{w}") for w in ("query", "key", "weight",
                                                          "no_exact", "loading")})


def _figure(values, q_tok, k_tok, *, style, title, chart_key, view, how, log, zmax,
            value_name):
    """The figure of one view (its sliders drawn here too)."""
    tq, tk = values.shape
    if view == "v_full":
        return image_map(values, q_tok, k_tok, style=style, title=title, log=log, zmax=zmax,
                         value_name=value_name, meta=chart_key, plotly_hover=False)
    elif view == "v_overview":
        return overview_figure(values, q_tok, k_tok, how=how, log=log, style=style,
                               title=title)
    elif view == "v_topk":
        keep_in_range("attn_topk", 1, 32, 8)
        k = st.slider(say("k"), 1, 32, key="attn_topk")
        return topk_figure(values, q_tok, k_tok, k=k, style=style, title=title)
    else:
        size_q, size_k = min(WINDOW_MAX, tq), min(WINDOW_MAX, tk)
        keep_in_range("attn_wq", 0, tq - size_q, 0)
        keep_in_range("attn_wk", 0, tk - size_k, 0)
        qa = st.slider(say("q_window"), 0, max(1, tq - size_q), key="attn_wq",
                       disabled=tq == size_q)
        ka = st.slider(say("k_window"), 0, max(1, tk - size_k), key="attn_wk",
                       disabled=tk == size_k)
        return window_heatmap(values, q_tok, k_tok, q_range=(qa, qa + size_q),
                              k_range=(ka, ka + size_k), style=style, title=title, zmax=zmax)
