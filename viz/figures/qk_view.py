"""Q·K view for one query token of one head: why does it attend where it does?

score(i, j) = scale · Σ_d q_i[d] · k_j[d] (+ any bias/mask), weight = softmax_j(score).
Three panels: pre-softmax scores over keys, post-softmax weights over keys, and the
elementwise products q_i[d]·k_j[d] of the top keys over the dimensions that contribute most.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.style import (
    DEFAULT,
    MASKED_COLOR,
    Style,
    apply_style,
    colorscale,
    number_format,
    safe_labels,
    token_axis,
)


def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).any():
        return np.zeros_like(x)
    e = np.exp(x - np.max(x[np.isfinite(x)]))
    e[~np.isfinite(x)] = 0.0
    return e / e.sum()


def qk_contributions(q_vec: np.ndarray, k_mat: np.ndarray) -> np.ndarray:
    """Elementwise q·k products. Shapes: q_vec [D], k_mat [N, D] -> [N, D] float32.

    Row n sums to q·k_n (before the 1/sqrt(D) scale).
    """
    return (np.asarray(k_mat, np.float32) * np.asarray(q_vec, np.float32)[None, :]).astype(
        np.float32
    )


def qk_data(
    q: np.ndarray,
    k: np.ndarray,
    query: int,
    *,
    head: int = 0,
    scores: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    scale: float | None = None,
    top_keys: int = 5,
    top_dims: int = 16,
) -> dict:
    """Numbers behind the Q·K view.

    Shapes: q [H, Tq, D] or [Tq, D]; k [H, Tk, D] or [Tk, D]; scores/weights [H, Tq, Tk] or
    [Tq, Tk] (optional: the engine's own values, which include masks and biases; without
    them scores = scale·q·k and weights = softmax(scores)).
    Returns dict: scores [Tk], weights [Tk], keys [K] (top keys by weight), dims [Dk]
    (top dims by max |q_d·k_d| over those keys), contrib [K, Dk], computed_scores: bool.
    """
    q, k = np.asarray(q, np.float32), np.asarray(k, np.float32)
    if q.ndim == 2:
        q, k = q[None], k[None]
    d = q.shape[-1]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    qv, km = q[head, query], k[head]  # [D], [Tk, D]

    def pick(a):
        if a is None:
            return None
        a = np.asarray(a, np.float32)
        return a[head, query] if a.ndim == 3 else a[query]

    s = pick(scores)
    computed = s is None
    if computed:
        s = (km @ qv * scale).astype(np.float32)
    w = pick(weights)
    if w is None:
        w = _softmax(s).astype(np.float32)
    keys = np.argsort(-w, kind="stable")[: min(top_keys, w.shape[0])]
    contrib = qk_contributions(qv, km[keys])  # [K, D]
    dims = np.argsort(-np.abs(contrib).max(axis=0), kind="stable")[: min(top_dims, d)]
    return dict(scores=s, weights=w, keys=keys.astype(np.int32), dims=dims.astype(np.int32),
                contrib=contrib[:, dims], scale=float(scale), computed_scores=computed)


def qk_view(
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
    top_keys: int = 5,
    top_dims: int = 16,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """Scores, weights and top q_d·k_d contributions for query position `query`.

    Shapes: see `qk_data`. k_tokens len Tk; q_tokens len Tq (default k_tokens).
    Masked keys (-inf score) are drawn as grey stubs labelled '−∞'.
    """
    data = qk_data(q, k, query, head=head, scores=scores, weights=weights, scale=scale,
                   top_keys=top_keys, top_dims=top_dims)
    q_tokens = k_tokens if q_tokens is None else q_tokens
    klab = safe_labels(k_tokens)
    fmt = number_format(style)
    s, w = data["scores"], data["weights"]
    tk = s.shape[0]
    masked = np.isneginf(s)
    fig = make_subplots(
        rows=3, cols=1, vertical_spacing=0.12, row_heights=[0.3, 0.3, 0.4],
        subplot_titles=(
            style.say("scores (pre-softmax) = q·k/√d, computed here" if data["computed_scores"]
                      else "scores (pre-softmax)"),
            style.say("weights (softmax)"),
            style.say("q_d·k_d for the top keys (row sum × scale = score before bias)"),
        ),
    )
    finite = np.where(masked, np.nan, s).astype(np.float32)
    fig.add_trace(
        go.Bar(x=np.arange(tk, dtype=np.int32), y=finite, customdata=klab,
               marker_color="#0072B2", name=style.say("score"),
               hovertemplate=f"k %{{x}} %{{customdata}}<br>score %{{y:{fmt}}}<extra></extra>"),
        row=1, col=1,
    )
    if masked.any():
        lo = float(np.nanmin(finite)) if np.isfinite(finite).any() else 0.0
        mi = np.nonzero(masked)[0].astype(np.int32)
        fig.add_trace(
            go.Scatter(x=mi, y=np.full(mi.shape, lo, np.float32), mode="markers+text",
                       marker=dict(symbol="x-thin", color="#707070", size=8,
                                   line=dict(width=2, color="#707070")),
                       text="−∞", textposition="bottom center",
                       textfont=dict(color="#707070", size=max(8, style.font_size - 3)),
                       customdata=[klab[i] for i in mi], name=style.say("masked (−∞)"),
                       hovertemplate="k %{x} %{customdata}<br>score −∞ (masked)<extra></extra>"),
            row=1, col=1,
        )
    colors = np.where(np.isin(np.arange(tk), data["keys"]), "#D55E00", "#56B4E9")
    colors[masked] = MASKED_COLOR
    fig.add_trace(
        go.Bar(x=np.arange(tk, dtype=np.int32), y=w, customdata=klab, marker_color=colors,
               name=style.say("weight"),
               hovertemplate=f"k %{{x}} %{{customdata}}<br>weight %{{y:{fmt}}}<extra></extra>"),
        row=2, col=1,
    )
    c = data["contrib"]
    m = float(np.abs(c).max()) if c.size else 1.0
    ylab = [f"{int(i)}: {klab[i]}" for i in data["keys"]]
    fig.add_trace(
        go.Heatmap(
            z=c, x=np.arange(c.shape[1], dtype=np.int32),
            y=np.arange(c.shape[0], dtype=np.int32),
            colorscale=colorscale(style, "puor"), zmid=0.0, zmin=-m, zmax=m,
            customdata=np.broadcast_to(np.asarray(data["dims"])[None, :], c.shape),
            colorbar=dict(title=dict(text=style.say("q_d·k_d")), len=0.38, y=0.18),
            hovertemplate=f"key row %{{y}}<br>dim %{{customdata}}<br>q_d·k_d %{{z:{fmt}}}"
            "<extra></extra>",
        ),
        row=3, col=1,
    )
    for row in (1, 2):
        fig.update_xaxes(token_axis(k_tokens, max_ticks=64), row=row, col=1)
    fig.update_xaxes(tickmode="array", tickvals=list(range(c.shape[1])),
                     range=[-0.5, c.shape[1] - 0.5],
                     ticktext=[f"d{int(i)}" for i in data["dims"]],
                     title=dict(text=style.say("dimension")),
                     row=3, col=1)
    fig.update_yaxes(tickmode="array", tickvals=list(range(c.shape[0])), ticktext=ylab,
                     range=[c.shape[0] - 0.5, -0.5], row=3, col=1)
    fig.update_layout(showlegend=False, bargap=0.1, width=900, height=760)
    title = title if title is not None else (
        style.say("Q·K for query {query}: {token} (head {head})", query=query,
                  token=q_tokens[query], head=head))
    return apply_style(fig, style, title)


__all__ = ["qk_contributions", "qk_data", "qk_view"]
