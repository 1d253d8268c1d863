"""Q·K of one query of a long input (> ~128 tokens): the whole row as one compact line (every
key's weight against its position, the shown keys marked), then the scores and weights of a
selection of keys as labelled bars (the query's k strongest keys and a window around it, in
position order, the keys left out marked "… 1,203 …" between them), then the q_d·k_d products
of the top keys as in qk_view.py.

The weights are the model's: a softmax over every key, never over the shown bars, so the
bars of a selection sum to less than 1 (the subtitle says how much they hold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.figures.key_selection import KeySelection, select_keys
from viz.figures.qk_view import qk_data
from viz.style import (
    DEFAULT,
    MASKED_COLOR,
    Style,
    apply_style,
    colorscale,
    number_format,
    safe_labels,
)

STRONG_COLOR, WINDOW_COLOR, SCORE_COLOR, ROW_COLOR = "#D55E00", "#56B4E9", "#0072B2", "#7f7f7f"
# Heights in px of the four panels (whole row, scores, weights, q_d·k_d) and of the space
# above each one after the first: room for an axis title, for the weights' rotated key
# labels (the scores share their axis and show none), and for each panel's title.
PANEL_PX = (130, 170, 190, 260)
SPACE_PX = (86, 34, 140)
# Fixed margins, no auto-expansion: with ~80 rotated labels and a colour bar, Plotly's
# automatic margins redraw the figure until they settle.
MARGIN = dict(t=110, b=60, l=170, r=120, autoexpand=False)
LABEL_CHARS = 14  # a key's tick label: its position and at most this much of its token


def place_rows(fig: go.Figure, panels: Sequence[int], spaces: Sequence[int]) -> None:
    """Give subplot rows 1..n the heights `panels` (px), `spaces[i]` px above row i + 2, and
    move each row's title (make_subplots' annotation) to the top of its row."""
    total = sum(panels) + sum(spaces)
    top = 1.0
    for i, px in enumerate(panels):
        if i:
            top -= spaces[i - 1] / total
        bottom = top - px / total
        fig.layout[f"yaxis{'' if i == 0 else i + 1}"].domain = [max(0.0, bottom), top]
        fig.layout.annotations[i].y = top
        top = bottom


def slots(sel: KeySelection) -> tuple[np.ndarray, list[str], list[tuple[int, int]]]:
    """Bar positions of a selection: (slot of each shown key int32 [N], tick text of every
    slot, (slot, keys left out) of each gap). A gap takes one slot, so a jump in positions
    is visible between the bars."""
    key_slot, ticks, gaps = [], [], []
    for i, (kind, a, b) in enumerate(sel.rows()):
        if kind == "key":
            key_slot.append(i)
            ticks.append(str(a))
        else:
            gaps.append((i, b - a))
            ticks.append(f"… {b - a:,} …")
    return np.asarray(key_slot, dtype=np.int32), ticks, gaps


def qk_view_query(
    q: np.ndarray,
    k: np.ndarray,
    query: int,
    k_tokens: Sequence[object],
    q_tokens: Sequence[object] | None = None,
    *,
    head: int = 0,
    scores: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    scale: float | None = None,
    top_k: int = 32,
    half_width: int = 8,
    top_keys: int = 5,
    top_dims: int = 16,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """The row of query `query` in head `head`: a line over all Tk keys, then the scores and
    weights of its top_k strongest keys and of the keys query ± half_width (the union, by
    position), then q_d·k_d of the top_keys strongest over the top_dims dimensions.

    Shapes: see `qk_data` (q [H, Tq, D], k [H, Tk, D], scores/weights [H, Tq, Tk]). The
    weights drawn are `weights[head, query, key]` (or, without them, the softmax of the
    whole row): the selection changes which keys are drawn, never a weight.
    """
    data = qk_data(q, k, query, head=head, scores=scores, weights=weights, scale=scale,
                   top_keys=top_keys, top_dims=top_dims)
    q_tokens = k_tokens if q_tokens is None else q_tokens
    s, w = data["scores"], data["weights"]
    tk = s.shape[0]
    if len(k_tokens) != tk:
        raise ValueError(f"{len(k_tokens)} key tokens for a row of {tk} keys")
    center = query if len(q_tokens) == tk else int(np.argmax(w))
    sel = select_keys(w, query, half_width=half_width, k=top_k, center=center,
                      outside_window=False)
    x_slot, ticks, gaps = slots(sel)
    keys = sel.keys
    klab = safe_labels(k_tokens)
    names = [f"{p}: {klab[p]}" for p in keys.tolist()]
    short = [f"{p}: {lab}" for p, lab in zip(
        keys.tolist(), safe_labels(shorten(k_tokens[p]) for p in keys.tolist()), strict=True)]
    fmt = number_format(style)
    masked = np.isneginf(s[keys])
    fig = make_subplots(
        rows=4, cols=1,
        subplot_titles=(
            style.say("weight over all {n} keys (the shown keys marked)", n=f"{tk:,}"),
            style.say("scores (pre-softmax) = q·k/√d, computed here" if data["computed_scores"]
                      else "scores (pre-softmax)"),
            style.say("weights (softmax over all {n} keys)", n=f"{tk:,}"),
            style.say("q_d·k_d for the top keys (row sum × scale = score before bias)"),
        ),
    )
    place_rows(fig, PANEL_PX, SPACE_PX)
    # the whole row: one line of Tk points, no per-key text (a 2,048-key row stays small)
    fig.add_trace(
        go.Scatter(x=np.arange(tk, dtype=np.int32), y=w.astype(np.float32), mode="lines",
                   line=dict(color=ROW_COLOR, width=1), name=style.say("weight"),
                   hovertemplate=f"k %{{x}}<br>weight %{{y:{fmt}}}<extra></extra>"),
        row=1, col=1,
    )
    strong = np.isin(keys, sel.strongest)
    fig.add_trace(
        go.Scatter(x=keys, y=w[keys].astype(np.float32), mode="markers",
                   marker=dict(size=5, color=np.where(strong, STRONG_COLOR, WINDOW_COLOR)),
                   customdata=names, name=style.say("shown keys"),
                   hovertemplate=f"k %{{customdata}}<br>weight %{{y:{fmt}}}<extra></extra>"),
        row=1, col=1,
    )
    lo, hi = sel.window
    fig.add_vrect(x0=lo - 0.5, x1=hi - 0.5, fillcolor=WINDOW_COLOR, opacity=0.18, line_width=0,
                  row=1, col=1)
    finite = np.where(masked, np.nan, s[keys]).astype(np.float32)
    fig.add_trace(
        go.Bar(x=x_slot, y=finite, customdata=names, marker_color=SCORE_COLOR,
               name=style.say("score"),
               hovertemplate=f"k %{{customdata}}<br>score %{{y:{fmt}}}<extra></extra>"),
        row=2, col=1,
    )
    if masked.any():
        base = float(np.nanmin(finite)) if np.isfinite(finite).any() else 0.0
        fig.add_trace(
            go.Scatter(x=x_slot[masked], y=np.full(int(masked.sum()), base, np.float32),
                       mode="markers+text", text="−∞", textposition="bottom center",
                       marker=dict(symbol="x-thin", color="#707070", size=8,
                                   line=dict(width=2, color="#707070")),
                       textfont=dict(color="#707070", size=max(8, style.font_size - 3)),
                       customdata=[n for n, m in zip(names, masked, strict=True) if m],
                       name=style.say("masked (−∞)"),
                       hovertemplate="k %{customdata}<br>score −∞ (masked)<extra></extra>"),
            row=2, col=1,
        )
    colors = np.where(strong, STRONG_COLOR, WINDOW_COLOR).astype(object)
    colors[masked] = MASKED_COLOR
    fig.add_trace(
        go.Bar(x=x_slot, y=w[keys].astype(np.float32), customdata=names, marker_color=colors,
               name=style.say("weight"),
               hovertemplate=f"k %{{customdata}}<br>weight %{{y:{fmt}}}<extra></extra>"),
        row=3, col=1,
    )
    c = data["contrib"]
    m = float(np.abs(c).max()) if c.size else 1.0
    d0, d1 = fig.layout.yaxis4.domain
    fig.add_trace(
        go.Heatmap(
            z=c, x=np.arange(c.shape[1], dtype=np.int32),
            y=np.arange(c.shape[0], dtype=np.int32),
            colorscale=colorscale(style, "puor"), zmid=0.0, zmin=-m, zmax=m,
            customdata=np.broadcast_to(np.asarray(data["dims"])[None, :], c.shape),
            colorbar=dict(title=dict(text=style.say("q_d·k_d")), len=d1 - d0, y=(d0 + d1) / 2),
            hovertemplate=f"key row %{{y}}<br>dim %{{customdata}}<br>q_d·k_d %{{z:{fmt}}}"
            "<extra></extra>",
        ),
        row=4, col=1,
    )
    fig.update_xaxes(title=dict(text=style.say("key position")), range=[-0.5, tk - 0.5],
                     showgrid=False, row=1, col=1)
    n_slots = len(ticks)
    tick_text = list(ticks)
    for slot, name in zip(x_slot.tolist(), short, strict=True):
        tick_text[slot] = name
    fig.update_xaxes(matches="x3", showticklabels=False, ticks="", showgrid=False, row=2, col=1)
    fig.update_xaxes(tickmode="array", tickvals=list(range(n_slots)), ticktext=tick_text,
                     tickangle=-90, range=[-0.5, n_slots - 0.5], showgrid=False,
                     row=3, col=1)
    fig.update_xaxes(tickmode="array", tickvals=list(range(c.shape[1])),
                     range=[-0.5, c.shape[1] - 0.5],
                     ticktext=[f"d{int(i)}" for i in data["dims"]],
                     title=dict(text=style.say("dimension")), row=4, col=1)
    fig.update_yaxes(tickmode="array", tickvals=list(range(c.shape[0])),
                     ticktext=[f"{int(i)}: {klab[i]}" for i in data["keys"]],
                     range=[c.shape[0] - 0.5, -0.5], row=4, col=1)
    fig.update_layout(showlegend=False, bargap=0.1, width=int(max(900, 13 * n_slots + 260)),
                      height=MARGIN["t"] + MARGIN["b"] + sum(PANEL_PX) + sum(SPACE_PX),
                      margin=MARGIN)
    # ... and labels drawn where they fall (the space above is sized for them): Plotly's
    # default hides labels past the plot, measuring each one, which doubled the draw
    fig.update_xaxes(automargin=False, ticklabeloverflow="allow")
    fig.update_yaxes(automargin=False, ticklabeloverflow="allow")
    title = title if title is not None else (
        style.say("Q·K for query {query}: {token} (head {head})", query=query,
                  token=q_tokens[query], head=head))
    apply_style(fig, style, title)
    if style.show_title:
        fig.update_layout(title_subtitle_text=describe(sel, w, style))
    return fig


def shorten(token: object, n: int = LABEL_CHARS) -> str:
    """At most n characters of a token's text (cut before escaping, so no entity is split)."""
    text = str(token)
    return text if len(text) <= n else text[: n - 1] + "…"


def describe(sel: KeySelection, w: np.ndarray, style: Style) -> str:
    """The subtitle: how many keys of how many are drawn, which, and the weight they hold."""
    lo, hi = sel.window
    return style.say(
        "a selection of {n} of {t} keys: the {k} strongest and {a}–{b}, by position · "
        "they hold {share} of the weight (a softmax over all {t} keys)",
        n=len(sel.keys), t=f"{sel.n_keys:,}", k=len(sel.strongest), a=lo, b=hi - 1,
        share=f"{float(w[sel.keys].sum()):.1%}")


__all__ = ["qk_view_query", "slots"]
