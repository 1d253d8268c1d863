"""Every head of one layer side by side, framed in the colour of the K/V head it reads
(Ainslie et al., 2023, "GQA": the query heads of one group read the same K and V), and
per-head differences against a reference (e.g. GQA minus MHA) for the same row of pictures.

Pure: numpy arrays in, `plotly.graph_objects.Figure` out; labels go through
`viz.style.safe_label`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.figures.long_input import block_average, block_size
from viz.figures.model_view import THUMB_MAX
from viz.style import (
    DEFAULT,
    Style,
    apply_style,
    colorscale,
    head_color,
    number_format,
    safe_label,
    value_range,
)


def group_of_heads(n_heads: int, n_kv_heads: int) -> np.ndarray:
    """K/V head read by each query head: query head h uses K/V head h // (n_heads / n_kv).

    Shapes: -> int32 [n_heads]. Raises ValueError when n_kv_heads does not divide n_heads.
    """
    if n_kv_heads < 1 or n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads={n_kv_heads} must divide n_heads={n_heads}")
    return (np.arange(n_heads) // (n_heads // n_kv_heads)).astype(np.int32)


def difference_maps(maps: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """maps − reference, per head. Shapes: [H, Tq, Tk] both -> [H, Tq, Tk] float32."""
    a, b = np.asarray(maps, np.float32), np.asarray(reference, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare maps of shape {a.shape} with {b.shape}")
    return (a - b).astype(np.float32)


def heads_row(
    maps: np.ndarray,
    *,
    groups: Sequence[int] | None = None,
    head_labels: Sequence[str] | None = None,
    diverging: bool = False,
    title: str | None = None,
    style: Style = DEFAULT,
    thumb_max: int = THUMB_MAX,
    cell_px: int | None = None,
    columns: int | None = None,
    max_width: int = 880,
) -> go.Figure:
    """Every head of one layer as a thumbnail on one shared colour scale, framed (and
    titled) in the colour of its K/V group when `groups` is given.

    Shapes: maps [H, Tq, Tk] (block-averaged to at most thumb_max² per thumbnail);
    groups [H] int (K/V head of each query head). `diverging` centres a diverging palette
    on 0 (for differences). Thumbnails wrap after `columns` (default: one row up to 8
    heads, else balanced rows of at most 8) and are `cell_px` square (default: what fits
    in `max_width` pixels).
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"heads_row takes [H, Tq, Tk], got shape {maps.shape}")
    n_heads, tq, tk = maps.shape
    if groups is not None and len(groups) != n_heads:
        raise ValueError(f"{len(groups)} group labels for {n_heads} heads")
    b = max(block_size(tq, thumb_max), block_size(tk, thumb_max))
    if b > 1:
        maps = block_average(maps, b)
    if columns is None:
        columns = -(-n_heads // -(-n_heads // 8))  # balanced rows of at most 8
    cols = columns
    rows = -(-n_heads // cols)
    cell_px = cell_px or int(min(120, max(48, (max_width - 160) / cols)))
    labels = list(head_labels) if head_labels is not None else [f"H{h}" for h in range(n_heads)]
    kv_labels = [f"KV{groups[h]}" for h in range(n_heads)] if groups is not None else None
    if diverging:
        finite = maps[np.isfinite(maps)]
        m = float(np.abs(finite).max()) if finite.size else 1.0
        m = m if m > 0 else 1.0
        zmin, zmax, scale = -m, m, colorscale(style, "puor")
    else:
        zmin, zmax = value_range([maps], style)
        scale = colorscale(style)
    fmt = number_format(style)
    gap_x, gap_y = 0.1 / cols, 0.3 / rows  # room above each thumbnail for its label
    fig = go.Figure()
    layout: dict = {}
    shapes = []
    for h in range(n_heads):
        r, c = divmod(h, cols)
        ax = "" if h == 0 else str(h + 1)
        x0, x1 = c / cols + gap_x / 2, (c + 1) / cols - gap_x / 2
        y1, y0 = 1 - r / rows - gap_y / 2, 1 - (r + 1) / rows + gap_y / 2
        color = head_color(int(groups[h])) if groups is not None else "#888888"
        layout[f"xaxis{ax}"] = dict(domain=[x0, x1], anchor=f"y{ax}", visible=False,
                                    range=[-0.5, maps.shape[2] - 0.5])
        layout[f"yaxis{ax}"] = dict(domain=[y0, y1], anchor=f"x{ax}", visible=False,
                                    autorange="reversed")
        fig.add_trace(go.Heatmap(
            z=maps[h], coloraxis="coloraxis", xaxis=f"x{ax}", yaxis=f"y{ax}",
            hovertemplate=f"{safe_label(labels[h])}"
            + (f" · {kv_labels[h]}" if kv_labels else "") + "<br>q %{y} → k %{x}"
            + (f" (blocks of {b})" if b > 1 else "")
            + f"<br>%{{z:{fmt}}}<extra></extra>",
        ))
        shapes.append(dict(type="rect", xref="paper", yref="paper", x0=x0, x1=x1, y0=y0,
                           y1=y1, line=dict(color=color, width=3 if groups is not None else 1)))
        text = safe_label(labels[h]) + (f"<br>{kv_labels[h]}" if kv_labels else "")
        fig.add_annotation(x=(x0 + x1) / 2, y=y1, xref="paper", yref="paper",
                           text=text, showarrow=False, yanchor="bottom",
                           font=dict(color=color if groups is not None else "#333333",
                                     size=style.font_size))
    fig.update_layout(
        **layout, shapes=shapes,
        coloraxis=dict(colorscale=scale, cmin=zmin, cmax=zmax, colorbar=dict(
                           title=dict(text=style.say("Δ weight" if diverging else "weight")),
                                     len=1.0, lenmode="fraction", thickness=14)),
        width=int(cell_px * cols + 160), height=int((cell_px + 34) * rows + 90),
        margin=dict(l=20, r=20, t=90 if title else 50, b=20),
    )
    return apply_style(fig, style, title)
