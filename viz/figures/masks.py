"""Masks: the boolean mask a query may read, the pre-softmax scores with their −∞ cells, and
the softmax weights, side by side (a masked key's weight is exactly 0)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.figures.heatmap import heatmap_trace
from viz.style import DEFAULT, MASKED_COLOR, Style, apply_style, token_axis, value_range


def masks_figure(
    mask: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray,
    q_tokens: Sequence[object],
    k_tokens: Sequence[object] | None = None,
    *,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """Mask, pre-softmax scores and softmax weights side by side.

    Shapes: mask [Tq, Tk] bool (True = may attend); scores [Tq, Tk] with -inf at masked cells;
    weights [Tq, Tk]. Masked score cells are drawn in a flat grey with a '×' (≤ 64 tokens)
    and named '−∞' in hover, so they never read as a low score.
    """
    k_tokens = q_tokens if k_tokens is None else k_tokens
    mask = np.asarray(mask, dtype=bool)
    scores = np.asarray(scores, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    if not (mask.shape == scores.shape == weights.shape):
        raise ValueError(
            f"mask {mask.shape}, scores {scores.shape} and weights {weights.shape} differ"
        )
    tq, tk = scores.shape
    fig = make_subplots(
        rows=1, cols=3, horizontal_spacing=0.11,
        subplot_titles=tuple(style.say(t) for t in (
            "mask (may attend)", "scores (pre-softmax)", "weights (softmax)")),
    )
    grey = [[0.0, "#ffffff"], [1.0, "#404040"]]
    fig.add_trace(
        heatmap_trace(mask.astype(np.float32), q_tokens, k_tokens, style=style, zmin=0, zmax=1,
                      value_name="may attend", colorscale=grey, showscale=False),
        row=1, col=1,
    )
    neg_inf = np.isneginf(scores)
    finite = np.where(np.isfinite(scores), scores, np.nan)
    lo = float(np.nanmin(finite)) if np.isfinite(finite).any() else 0.0
    hi = float(np.nanmax(finite)) if np.isfinite(finite).any() else 1.0
    fig.add_trace(
        heatmap_trace(finite, q_tokens, k_tokens, style=style, zmin=lo, zmax=max(hi, lo + 1e-6),
                      value_name="score", showscale=True,
                      colorbar=dict(title=dict(text=style.say("score")), len=0.9,
                                    x=fig.layout.xaxis2.domain[1] + 0.005, xanchor="left")),
        row=1, col=2,
    )
    if neg_inf.any():
        masked = np.where(neg_inf, 1.0, np.nan).astype(np.float32)
        fig.add_trace(
            heatmap_trace(masked, q_tokens, k_tokens, style=style, zmin=0, zmax=1,
                          value_name="score −∞", showscale=False,
                          colorscale=[[0, MASKED_COLOR], [1, MASKED_COLOR]],
                          name=style.say("−∞ (masked)")),
            row=1, col=2,
        )
        fig.data[-1].hovertemplate = "q %{y}<br>k %{x}<br>score −∞ (masked)<extra></extra>"
        if max(tq, tk) <= 64:
            qi, ki = np.nonzero(neg_inf)
            fig.add_trace(
                go.Scatter(x=ki.astype(np.int32), y=qi.astype(np.int32), mode="text",
                           text="×", textfont=dict(color="#707070"), hoverinfo="skip",
                           showlegend=False),
                row=1, col=2,
            )
    zmin, zmax = value_range([weights], style)
    fig.add_trace(
        heatmap_trace(weights, q_tokens, k_tokens, style=style, zmin=zmin, zmax=zmax,
                      showscale=True,
                      colorbar=dict(title=dict(text=style.say("weight")), len=0.9,
                                    x=fig.layout.xaxis3.domain[1] + 0.005, xanchor="left")),
        row=1, col=3,
    )
    blocked = ~np.asarray(mask, dtype=bool)
    if blocked.any() and max(tq, tk) <= 64:
        # a masked cell's weight is exactly 0, which the colour scale shows as a small weight:
        # mark it as the scores panel does
        qi, ki = np.nonzero(blocked)
        fig.add_trace(
            go.Scatter(x=ki.astype(np.int32), y=qi.astype(np.int32), mode="text", text="×",
                       textfont=dict(color="#909090"), showlegend=False,
                       name=style.say("masked (weight 0)"),
                       hovertemplate="q %{y}<br>k %{x}<br>"
                       + style.say("masked (weight 0)") + "<extra></extra>"),
            row=1, col=3,
        )
    for col in (1, 2, 3):
        fig.update_xaxes(token_axis(k_tokens, max_ticks=64), row=1, col=col)
        fig.update_yaxes(token_axis(q_tokens, max_ticks=64, reverse=True),
                         showticklabels=(col == 1), row=1, col=col)
    fig.update_layout(width=1200, height=max(360, min(700, 12 * tq + 160)))
    return apply_style(fig, style, title)
