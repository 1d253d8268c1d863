"""Head view in the style of BertViz (Vig, 2019, "A Multiscale Visualization of Attention in
the Transformer Model"): query tokens in a left column, key tokens in a right column, a line
from a query to each key it attends, thicker and more opaque for larger weights; several
heads at once in distinct colour-blind-safe colours.

Lines are grouped into a few weight bins per head, each bin one Scatter trace of
None-separated segments, so a figure has O(heads × bins) traces rather than one per line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.style import DEFAULT, Style, apply_style, head_color, number_format, safe_labels

N_BINS = 6
X_LEFT, X_RIGHT = 0.0, 1.0


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:.3f})"


def select_lines(
    weights: np.ndarray,
    query: int | None,
    *,
    min_weight: float = 0.02,
    max_lines: int = 2000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (query, key, weight) triples a head view draws, heaviest first.

    Shapes: weights [Tq, Tk] -> (q int32 [N], k int32 [N], w float32 [N]), N <= max_lines.
    query=None draws lines from every query.
    """
    weights = np.asarray(weights, dtype=np.float32)
    rows = np.arange(weights.shape[0]) if query is None else np.array([query])
    sub = weights[rows]  # [R, Tk]
    r, k = np.nonzero(sub >= min_weight)
    w = sub[r, k]
    order = np.argsort(-w, kind="stable")[:max_lines]
    return rows[r[order]].astype(np.int32), k[order].astype(np.int32), w[order]


def add_line_traces(
    fig: go.Figure,
    y_from: np.ndarray,
    y_to: np.ndarray,
    w: np.ndarray,
    *,
    color: str,
    dx: float,
    min_weight: float,
    name: str,
    group: str,
) -> None:
    """One head's lines from (left, y_from) to (right, y_to), binned by weight into at most
    N_BINS traces (thicker, more opaque for larger weights), and its legend entry.

    Shapes: y_from, y_to, w [N] (the rows' y values and the lines' weights).
    """
    edges = np.linspace(min_weight, max(min_weight, float(w.max()) if w.size else 1.0),
                        N_BINS + 1)
    bins = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, N_BINS - 1)
    for bi in range(N_BINS):
        sel = bins == bi
        if not sel.any():
            continue
        level = (bi + 1) / N_BINS
        n = int(sel.sum())
        xs = np.tile(np.array([X_LEFT + 0.02 + dx, X_RIGHT - 0.02 + dx, np.nan]), n)
        ys = np.stack([y_from[sel], y_to[sel], np.full(n, np.nan)], axis=1).reshape(-1)
        fig.add_trace(
            go.Scatter(
                x=xs.astype(np.float32), y=ys.astype(np.float32), mode="lines",
                line=dict(color=_rgba(color, 0.15 + 0.85 * level), width=0.5 + 4.5 * level),
                name=name, legendgroup=group, showlegend=False, hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=color, width=3),
                   name=name, legendgroup=group, showlegend=True)
    )



def checked_maps(weights: np.ndarray, q_tokens: Sequence[object],
                 k_tokens: Sequence[object] | None) -> tuple[np.ndarray, Sequence[object]]:
    """(weights as float32 [H, Tq, Tk], the key tokens): one head [Tq, Tk] gains its head
    axis, k_tokens defaults to q_tokens, and both lists must fit the map."""
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim == 2:
        weights = weights[None]
    _, tq, tk = weights.shape
    k_tokens = q_tokens if k_tokens is None else k_tokens
    if len(q_tokens) != tq or len(k_tokens) != tk:
        raise ValueError(f"{len(q_tokens)}/{len(k_tokens)} tokens for a [{tq}, {tk}] map")
    return weights, k_tokens

def head_view(
    weights: np.ndarray,
    q_tokens: Sequence[object],
    k_tokens: Sequence[object] | None = None,
    *,
    heads: Sequence[int] | None = None,
    query: int | None = None,
    min_weight: float = 0.02,
    max_lines: int = 2000,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """BertViz-style lines from query tokens (left) to key tokens (right).

    Shapes: weights [H, Tq, Tk] (or one head [Tq, Tk]); heads: indices into H (default all
    for <= 4 heads, else [0]); query: one query position, or None for every query.
    Lines with weight < min_weight are dropped; at most max_lines per head are kept.
    """
    weights, k_tokens = checked_maps(weights, q_tokens, k_tokens)
    n_heads, tq, tk = weights.shape
    if query is not None and not 0 <= query < tq:
        raise ValueError(f"query {query} outside 0..{tq - 1}")
    if heads is None:
        heads = list(range(n_heads)) if n_heads <= 4 else [0]
    fmt = number_format(style)
    fig = go.Figure()
    n_sel = max(1, len(heads))
    for j, h in enumerate(heads):
        color = head_color(h)
        q, k, w = select_lines(weights[h], query, min_weight=min_weight, max_lines=max_lines)
        # several heads: spread the line ends a little so overlapping heads stay visible
        dx = (j - (n_sel - 1) / 2) * 0.012
        add_line_traces(fig, -q, -k, w, color=color, dx=dx, min_weight=min_weight,
                        name=style.say("head {h}", h=h), group=f"head {h}")
        # weights as hover on the key tokens (for the selected query)
    qlab, klab = safe_labels(q_tokens), safe_labels(k_tokens)
    key_hover = None
    if query is not None:
        key_hover = np.stack([weights[h, query] for h in heads], axis=1)  # [Tk, n_sel]
    bold = ["<b>" + s + "</b>" if query == i else s for i, s in enumerate(qlab)]
    fig.add_trace(
        go.Scatter(
            x=np.full(tq, X_LEFT, dtype=np.float32), y=-np.arange(tq, dtype=np.int32),
            mode="text", text=bold, textposition="middle left", customdata=qlab,
            hovertemplate="query %{customdata}<extra></extra>", showlegend=False,
        )
    )
    hover = "key %{customdata[0]}"
    custom = np.asarray(klab, dtype=object)[:, None]
    if key_hover is not None:
        custom = np.concatenate([custom, key_hover.astype(object)], axis=1)
        hover += "".join(
            f"<br>head {h}: %{{customdata[{j + 1}]:{fmt}}}" for j, h in enumerate(heads)
        )
    fig.add_trace(
        go.Scatter(
            x=np.full(tk, X_RIGHT, dtype=np.float32), y=-np.arange(tk, dtype=np.int32),
            mode="text", text=klab, textposition="middle right", customdata=custom,
            hovertemplate=hover + "<extra></extra>", showlegend=False,
        )
    )
    n = max(tq, tk)
    fig.update_xaxes(visible=False, range=[-0.9, 1.9])
    fig.update_yaxes(visible=False, range=[-n + 0.5, 0.8])
    fig.update_layout(
        width=520, height=int(min(2400, max(300, 18 * n + 100))),
        legend=dict(orientation="h", y=1.02, x=0.5, xanchor="center", yanchor="bottom"),
        hovermode="closest",
    )
    return apply_style(fig, style, title)


__all__ = ["add_line_traces", "head_view", "select_lines"]
