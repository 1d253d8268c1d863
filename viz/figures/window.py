"""A zoomed window of one long map at full resolution, keeping the true positions on its
axes (so hover and ticks name the real tokens)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.figures.heatmap import heatmap_trace
from viz.style import DEFAULT, Style, apply_style, token_axis, value_range


def window_heatmap(
    weights: np.ndarray,
    q_tokens: Sequence[object],
    k_tokens: Sequence[object] | None = None,
    *,
    q_range: tuple[int, int] | None = None,
    k_range: tuple[int, int] | None = None,
    title: str | None = None,
    style: Style = DEFAULT,
    zmin: float | None = None,
    zmax: float | None = None,
) -> go.Figure:
    """Full-resolution heatmap of the window q_range × k_range (half-open) of one map.

    Shapes: weights [Tq, Tk]; the figure's z is weights[q0:q1, k0:k1]; axis values are the
    true positions q0..q1-1 and k0..k1-1, so hover and ticks name the real tokens.
    """
    k_tokens = q_tokens if k_tokens is None else k_tokens
    weights = np.asarray(weights, dtype=np.float32)
    tq, tk = weights.shape
    q0, q1 = q_range or (0, tq)
    k0, k1 = k_range or (0, tk)
    if not (0 <= q0 < q1 <= tq and 0 <= k0 < k1 <= tk):
        raise ValueError(f"window {q_range}×{k_range} outside a [{tq}, {tk}] map")
    z = weights[q0:q1, k0:k1]
    qt, kt = list(q_tokens)[q0:q1], list(k_tokens)[k0:k1]
    if zmin is None or zmax is None:
        lo, hi = value_range([z], style)
        zmin, zmax = (lo if zmin is None else zmin), (hi if zmax is None else zmax)
    trace = heatmap_trace(z, qt, kt, style=style, zmin=zmin, zmax=zmax,
                          colorbar=dict(title=dict(text=style.say("weight"))))
    trace.x = np.arange(k0, k1, dtype=np.int32)
    trace.y = np.arange(q0, q1, dtype=np.int32)
    fig = go.Figure(trace)
    xa, ya = token_axis(kt, max_ticks=64), token_axis(qt, max_ticks=64)
    xa.update(tickvals=[v + k0 for v in xa["tickvals"]], range=[k0 - 0.5, k1 - 0.5])
    ya.update(tickvals=[v + q0 for v in ya["tickvals"]], range=[q0 - 0.5, q1 - 0.5])
    fig.update_xaxes(xa, title=dict(text=style.say("key {a}–{b}", a=k0, b=k1 - 1)))
    fig.update_yaxes(ya, title=dict(text=style.say("query {a}–{b}", a=q0, b=q1 - 1)),
                     autorange="reversed")
    n = max(z.shape)
    size = int(min(900, max(360, 12 * n + 160)))
    fig.update_layout(width=size + 80, height=size)
    return apply_style(fig, style, title)
