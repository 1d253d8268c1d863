"""Model view: a layers × heads grid of attention thumbnails on one shared colour scale.

Layout trick (fast for 72 heads at 64 tokens, or Gemma's 18×4): instead of make_subplots'
L·H axis pairs, the grid uses H x-axes (one per head column) and L y-axes (one per layer
row); thumbnail (l, h) is a Heatmap on (x{h}, y{l}). Axis values stay true key/query
positions, so hover says which query and key, and all traces share one `coloraxis`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.figures.long_input import block_average, block_size
from viz.style import (
    DEFAULT,
    Style,
    apply_style,
    colorscale,
    number_format,
    safe_label,
    value_range,
)

THUMB_MAX = 64  # thumbnails above this many tokens are block-averaged down to it


def _axis_name(kind: str, i: int) -> str:
    return kind if i == 0 else f"{kind}{i + 1}"


def model_view(
    layers: Sequence[np.ndarray] | np.ndarray,
    *,
    layer_labels: Sequence[str] | None = None,
    title: str | None = None,
    style: Style = DEFAULT,
    thumb_max: int = THUMB_MAX,
    cell_px: int = 90,
) -> go.Figure:
    """Grid of every head of every layer.

    Shapes: layers: L arrays [H, Tq, Tk] (or one array [L, H, Tq, Tk]).
    Thumbnails larger than `thumb_max` are block-averaged (b×b) to at most thumb_max².
    With style.shared_range (default) all thumbnails share one colour scale; otherwise each
    thumbnail is scaled to its own maximum (and the colour bar reads 0..1 of that maximum).
    """
    maps = [np.asarray(a, dtype=np.float32) for a in layers]
    if not maps:
        raise ValueError("model_view needs at least one layer")
    n_layers, n_heads = len(maps), maps[0].shape[0]
    for i, a in enumerate(maps):
        if a.ndim != 3 or a.shape[0] != n_heads:
            raise ValueError(f"layer {i} has shape {a.shape}; expected [{n_heads}, Tq, Tk]")
    tq, tk = maps[0].shape[1:]
    b = max(block_size(tq, thumb_max), block_size(tk, thumb_max))
    if b > 1:
        maps = [block_average(a, b) for a in maps]
    labels = list(layer_labels) if layer_labels is not None else [f"L{i}" for i in range(n_layers)]
    if style.shared_range:
        zmin, zmax = value_range(maps, style)
    else:
        peaks = [np.maximum(a.max(axis=(1, 2), keepdims=True), 1e-12) for a in maps]
        maps = [a / p for a, p in zip(maps, peaks, strict=True)]
        zmin, zmax = 0.0, 1.0
    fmt = number_format(style)
    unit = style.say(" (blocks of {b})", b=b) if b > 1 else ""
    pad_x, pad_y = 0.12 / n_heads, 0.12 / n_layers
    fig = go.Figure()
    layout: dict = {}
    for h in range(n_heads):
        x0, x1 = h / n_heads, (h + 1) / n_heads
        layout[f"{_axis_name('xaxis', h)}"] = dict(
            domain=[x0 + pad_x / 2, x1 - pad_x / 2], anchor="y", side="top",
            showticklabels=False, ticks="", showgrid=False, zeroline=False, showline=True,
            mirror=True, linecolor="#bbbbbb", range=[-0.5, maps[0].shape[2] - 0.5],
            title=dict(text=f"H{h}", standoff=2),
        )
    for l in range(n_layers):
        y1, y0 = 1 - l / n_layers, 1 - (l + 1) / n_layers
        layout[f"{_axis_name('yaxis', l)}"] = dict(
            domain=[y0 + pad_y / 2, y1 - pad_y / 2], anchor="x",
            range=[maps[0].shape[1] - 0.5, -0.5],
            showticklabels=False, ticks="", showgrid=False, zeroline=False, showline=True,
            mirror=True, linecolor="#bbbbbb", title=dict(text=labels[l], standoff=2),
        )
    for l, a in enumerate(maps):
        for h in range(n_heads):
            fig.add_trace(
                go.Heatmap(
                    z=a[h],
                    coloraxis="coloraxis",
                    xaxis=_axis_name("x", h),
                    yaxis=_axis_name("y", l),
                    hovertemplate=(
                        f"{labels[l]} H{h}<br>q %{{y}} → k %{{x}}{unit}<br>"
                        f"weight %{{z:{fmt}}}<extra></extra>"
                    ),
                )
            )
    cbar = style.say("weight" if style.shared_range else "weight / head max")
    fig.update_layout(
        **layout,
        coloraxis=dict(
            colorscale=colorscale(style), cmin=zmin, cmax=zmax,
            colorbar=dict(title=dict(text=cbar), len=min(1.0, 400 / (cell_px * n_layers))),
        ),
        width=int(cell_px * n_heads + 180),
        height=int(cell_px * n_layers + 120),
        margin=dict(l=60, r=20, t=80 if title else 50, b=20),
    )
    return apply_style(fig, style, title)


__all__ = ["THUMB_MAX", "model_view"]


def _thumbnail_px(fig: go.Figure, trace) -> int:
    """The smaller side, in pixels, of the plot area a trace's axes span (at least 16)."""
    lay = fig.layout
    m = lay.margin
    width = (lay.width or 700) - (m.l if m.l is not None else 80) - (m.r if m.r is not None else 80)
    height = (lay.height or 450) - (m.t if m.t is not None else 100) - (m.b if m.b is not None
                                                                        else 80)
    xa = lay[(trace.xaxis or "x").replace("x", "xaxis", 1)]
    ya = lay[(trace.yaxis or "y").replace("y", "yaxis", 1)]
    xd = xa.domain if xa.domain else (0, 1)
    yd = ya.domain if ya.domain else (0, 1)
    return max(16, int(0.95 * min(width * (xd[1] - xd[0]), height * (yd[1] - yd[0]))))


def add_click_targets(fig: go.Figure, labels: Sequence[str] | None = None) -> go.Figure:
    """Make every heatmap of a grid figure (e.g. viz.figures.model_view) clickable: Plotly selects
    only marker-like traces, so each heatmap gets one near-invisible marker at its centre,
    on the same axes, whose customdata is the heatmap's index in fig.data.

    Shapes: one Scatter of 1 point per Heatmap, appended after the existing traces.
    """
    heatmaps = [(i, t) for i, t in enumerate(fig.data) if t.type == "heatmap"]
    for j, (i, t) in enumerate(heatmaps):
        z = np.asarray(t.z)
        name = safe_label(labels[j]) if labels is not None else f"#{i}"
        # Plotly's closest-point hover prefers the heatmap's cell wherever the two overlap, and
        # a click follows the hover: the thumbnail leaves the hover to its target
        t.hoverinfo, t.hovertemplate = "skip", None
        fig.add_trace(go.Scatter(
            x=[(z.shape[1] - 1) / 2], y=[(z.shape[0] - 1) / 2], customdata=[i],
            xaxis=t.xaxis, yaxis=t.yaxis, mode="markers", showlegend=False,
            # as large as the thumbnail, so a click anywhere on it opens the head
            marker=dict(size=_thumbnail_px(fig, t), color="#ffffff", opacity=0.02,
                        symbol="square"),
            hovertemplate=f"{name}: click to open<extra></extra>",
        ))
    return fig
