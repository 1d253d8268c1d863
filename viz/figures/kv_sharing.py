"""Which query heads share which K/V head: MHA as H parallel lines, GQA fanning in by
groups, MQA all meeting in one (Shazeer, 2019; Ainslie et al., 2023)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from viz.figures.heads_row import group_of_heads
from viz.style import DEFAULT, Style, apply_style, head_color


def kv_sharing_figure(n_heads: int, n_kv_heads: int, *, title: str | None = None,
                      style: Style = DEFAULT) -> go.Figure:
    """Query heads (top row) joined to the K/V head each one reads (bottom row), one colour
    per K/V head: MHA is H parallel lines, GQA fans in by groups, MQA all meet in one."""
    groups = group_of_heads(n_heads, n_kv_heads)
    qx = np.arange(n_heads, dtype=np.float32)
    per = n_heads // n_kv_heads
    kx = (np.arange(n_kv_heads) * per + (per - 1) / 2).astype(np.float32)  # under each group
    fig = go.Figure()
    for g in range(n_kv_heads):
        heads = np.nonzero(groups == g)[0]
        xs = np.stack([qx[heads], np.full(len(heads), kx[g]), np.full(len(heads), np.nan)],
                      axis=1).reshape(-1)
        ys = np.tile(np.array([1.0, 0.0, np.nan], np.float32), len(heads))
        color = head_color(g)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=2),
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(
            x=qx[heads], y=np.ones(len(heads)), mode="markers+text",
            marker=dict(size=22, color=color, symbol="circle"),
            text=[f"Q{h}" for h in heads], textposition="top center", showlegend=False,
            hovertemplate=f"query head %{{text}} reads K/V head {g}<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=[kx[g]], y=[0.0], mode="markers+text",
            marker=dict(size=26, color=color, symbol="square"),
            text=[f"KV{g}"], textposition="bottom center", showlegend=False,
            hovertemplate=f"K/V head {g}: shared by {len(heads)} query heads<extra></extra>"))
    fig.update_xaxes(visible=False, range=[-1, n_heads])
    fig.update_yaxes(visible=False, range=[-0.6, 1.6])
    fig.update_layout(width=max(420, 48 * n_heads + 80), height=260,
                      margin=dict(l=10, r=10, t=50 if title else 10, b=10))
    return apply_style(fig, style, title)
