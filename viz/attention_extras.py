"""Figures the Attention and Variants pages need beyond the core views.

- a zoomed window of one long map that keeps true positions on its axes;
- a row of per-head thumbnails framed in the colour of the K/V head they share
  (Ainslie et al., 2023, "GQA": query heads of one group read the same K and V);
- a diagram of which query heads share which K/V head;
- per-head differences against a reference (e.g. GQA minus MHA) on a diverging scale;
- one decoding step of an encoder-decoder: its decoder self-attention row and its
  cross-attention row (Vaswani et al., 2017, §3.2.3), and the KV cache after each step;
- KV-cache bytes against sequence length (formula lines, measured markers), latency bars,
  next-token probabilities before/after an ablation.

Pure: numpy arrays and token lists in, `plotly.graph_objects.Figure` out. Token text goes
through `viz.style.safe_label`, so markup in a token is shown, never interpreted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.heatmap import heatmap_trace
from viz.long_input import block_average, block_size
from viz.style import (
    DEFAULT,
    Style,
    apply_style,
    colorscale,
    head_color,
    number_format,
    safe_label,
    safe_labels,
    token_axis,
    value_range,
)

THUMB_MAX = 64


def group_of_heads(n_heads: int, n_kv_heads: int) -> np.ndarray:
    """K/V head read by each query head: query head h uses K/V head h // (n_heads / n_kv).

    Shapes: -> int32 [n_heads]. Raises ValueError when n_kv_heads does not divide n_heads.
    """
    if n_kv_heads < 1 or n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads={n_kv_heads} must divide n_heads={n_heads}")
    return (np.arange(n_heads) // (n_heads // n_kv_heads)).astype(np.int32)


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
                          colorbar=dict(title=dict(text="weight")))
    trace.x = np.arange(k0, k1, dtype=np.int32)
    trace.y = np.arange(q0, q1, dtype=np.int32)
    fig = go.Figure(trace)
    xa, ya = token_axis(kt, max_ticks=64), token_axis(qt, max_ticks=64)
    xa.update(tickvals=[v + k0 for v in xa["tickvals"]], range=[k0 - 0.5, k1 - 0.5])
    ya.update(tickvals=[v + q0 for v in ya["tickvals"]], range=[q0 - 0.5, q1 - 0.5])
    fig.update_xaxes(xa, title=dict(text=f"key {k0}–{k1 - 1}"))
    fig.update_yaxes(ya, title=dict(text=f"query {q0}–{q1 - 1}"), autorange="reversed")
    n = max(z.shape)
    size = int(min(900, max(360, 12 * n + 160)))
    fig.update_layout(width=size + 80, height=size)
    return apply_style(fig, style, title)


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
        coloraxis=dict(colorscale=scale, cmin=zmin, cmax=zmax,
                       colorbar=dict(title=dict(text="Δ weight" if diverging else "weight"),
                                     len=1.0, lenmode="fraction", thickness=14)),
        width=int(cell_px * cols + 160), height=int((cell_px + 34) * rows + 90),
        margin=dict(l=20, r=20, t=90 if title else 50, b=20),
    )
    return apply_style(fig, style, title)


def add_click_targets(fig: go.Figure, labels: Sequence[str] | None = None) -> go.Figure:
    """Make every heatmap of a grid figure (e.g. viz.model_view) clickable: Plotly selects
    only marker-like traces, so each heatmap gets one near-invisible marker at its centre,
    on the same axes, whose customdata is the heatmap's index in fig.data.

    Shapes: one Scatter of 1 point per Heatmap, appended after the existing traces.
    """
    heatmaps = [(i, t) for i, t in enumerate(fig.data) if t.type == "heatmap"]
    for j, (i, t) in enumerate(heatmaps):
        z = np.asarray(t.z)
        name = safe_label(labels[j]) if labels is not None else f"#{i}"
        fig.add_trace(go.Scatter(
            x=[(z.shape[1] - 1) / 2], y=[(z.shape[0] - 1) / 2], customdata=[i],
            xaxis=t.xaxis, yaxis=t.yaxis, mode="markers", showlegend=False,
            marker=dict(size=16, color="#ffffff", opacity=0.02, symbol="square"),
            hovertemplate=f"{name}: click to open<extra></extra>",
        ))
    return fig


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


def difference_maps(maps: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """maps − reference, per head. Shapes: [H, Tq, Tk] both -> [H, Tq, Tk] float32."""
    a, b = np.asarray(maps, np.float32), np.asarray(reference, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare maps of shape {a.shape} with {b.shape}")
    return (a - b).astype(np.float32)


def step_figure(
    self_row: np.ndarray,
    cross_row: np.ndarray | None,
    decoder_tokens: Sequence[object],
    source_tokens: Sequence[object] | None,
    *,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """One decoding step: heads (down) × keys (across) for the decoder self-attention row
    and, for an encoder-decoder, the cross-attention row.

    Shapes: self_row [H, i+1] (keys = decoder_tokens[: i+1]); cross_row [H, S]
    (keys = source_tokens). Each panel has its own colour bar (rows sum to 1 in both).
    """
    self_row = np.asarray(self_row, np.float32)
    n_heads, n_self = self_row.shape
    if len(decoder_tokens) != n_self:
        raise ValueError(f"{len(decoder_tokens)} decoder tokens for {n_self} keys")
    panels = 1 if cross_row is None else 2
    widths = [max(n_self, 3), max(len(source_tokens or []), 3)][:panels]
    fig = make_subplots(rows=1, cols=panels, column_widths=widths, horizontal_spacing=0.12,
                        subplot_titles=("decoder self-attention (keys so far)",
                                        "cross-attention (source keys)")[:panels])
    heads = [f"H{h}" for h in range(n_heads)]
    zmin, zmax = value_range([self_row] + ([] if cross_row is None else [cross_row]), style)
    fig.add_trace(heatmap_trace(self_row, heads, decoder_tokens, style=style, zmin=zmin,
                                zmax=zmax, coloraxis="coloraxis"), row=1, col=1)
    fig.update_xaxes(token_axis(decoder_tokens, 64), row=1, col=1)
    fig.update_yaxes(token_axis(heads), autorange="reversed", row=1, col=1)
    if cross_row is not None:
        cross_row = np.asarray(cross_row, np.float32)
        if len(source_tokens or []) != cross_row.shape[1]:
            raise ValueError(f"{len(source_tokens or [])} source tokens for "
                             f"{cross_row.shape[1]} keys")
        fig.add_trace(heatmap_trace(cross_row, heads, source_tokens, style=style, zmin=zmin,
                                    zmax=zmax, coloraxis="coloraxis"), row=1, col=2)
        fig.update_xaxes(token_axis(source_tokens, 64), row=1, col=2)
        fig.update_yaxes(token_axis(heads), autorange="reversed", row=1, col=2)
    fig.update_layout(coloraxis=dict(colorscale=colorscale(style), cmin=zmin, cmax=zmax,
                                     colorbar=dict(title=dict(text="weight"))),
                      width=int(min(1200, 40 * (sum(widths)) + 360)),
                      height=int(28 * n_heads + 220))
    return apply_style(fig, style, title)


def kv_steps_figure(kv_bytes: Sequence[int], current: int | None = None,
                    measured: Sequence[int] | None = None, *, title: str | None = None,
                    style: Style = DEFAULT) -> go.Figure:
    """Decoder self-attention KV-cache bytes after each step (bars), the current step
    highlighted; `measured` (same length) is drawn as markers over the formula bars."""
    y = np.asarray(kv_bytes, np.int64)
    x = np.arange(len(y), dtype=np.int32)
    colors = np.where(x == (-1 if current is None else current), "#D55E00", "#56B4E9")
    fig = go.Figure(go.Bar(x=x, y=y, marker_color=colors, name="formula",
                           hovertemplate="step %{x}<br>%{y:,} bytes<extra>formula</extra>"))
    if measured is not None:
        fig.add_trace(go.Scatter(x=x[: len(measured)], y=np.asarray(measured, np.int64),
                                 mode="markers", marker=dict(color="#000000", symbol="x",
                                                             size=9),
                                 name="measured (cache.bytes_used)",
                                 hovertemplate="step %{x}<br>%{y:,} bytes<extra>measured</extra>"))
    fig.update_xaxes(title=dict(text="generation step"))
    fig.update_yaxes(title=dict(text="KV-cache bytes"), rangemode="tozero")
    fig.update_layout(width=560, height=320, legend=dict(orientation="h", y=1.1))
    return apply_style(fig, style, title)


def bytes_vs_length_figure(
    formula: Mapping[str, tuple[np.ndarray, np.ndarray]],
    measured: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    title: str | None = None,
    style: Style = DEFAULT,
    y_title: str = "KV-cache bytes",
    log: bool = False,
) -> go.Figure:
    """Bytes against sequence length per variant: formula as lines, measured as markers
    in the same colour (any numeric series works, e.g. benchmark latency against context).
    Shapes: each entry (x [N], y [N])."""
    fig = go.Figure()
    names = list(formula) + [n for n in (measured or {}) if n not in formula]
    for i, name in enumerate(names):
        color = head_color(i)
        label = safe_label(name)
        if name in formula:
            x, y = formula[name]
            fig.add_trace(go.Scatter(
                x=np.asarray(x), y=np.asarray(y), mode="lines",
                line=dict(color=color, width=2), name=f"{label} (formula)",
                hovertemplate=f"{label}<br>%{{x}}: %{{y:,}}<extra>formula</extra>"))
        if measured and name in measured:
            x, y = measured[name]
            fig.add_trace(go.Scatter(
                x=np.asarray(x), y=np.asarray(y), mode="markers",
                marker=dict(color=color, size=8, symbol="x"), name=f"{label} (measured)",
                hovertemplate=f"{label}<br>%{{x}}: %{{y:,}}<extra>measured</extra>"))
    fig.update_xaxes(title=dict(text="sequence length (tokens)"))
    fig.update_yaxes(title=dict(text=y_title), type="log" if log else "linear")
    fig.update_layout(width=720, height=420)
    return apply_style(fig, style, title)


def bars_figure(values: Mapping[str, float], *, errors: Mapping[str, float] | None = None,
                y_title: str = "", title: str | None = None,
                style: Style = DEFAULT) -> go.Figure:
    """One bar per named value (e.g. latency per variant), optional ± error bars."""
    names = list(values)
    y = np.asarray([values[n] for n in names], np.float32)
    err = None
    if errors:
        err = dict(type="data", array=np.asarray([errors.get(n, 0.0) for n in names],
                                                  np.float32))
    fig = go.Figure(go.Bar(
        x=safe_labels(names), y=y, error_y=err,
        marker_color=[head_color(i) for i in range(len(names))],
        hovertemplate=f"%{{x}}: %{{y:.{style.precision}f}}<extra></extra>"))
    fig.update_yaxes(title=dict(text=y_title), rangemode="tozero")
    fig.update_layout(width=560, height=360)
    return apply_style(fig, style, title)


def topk_compare_figure(before: Sequence[tuple[str, float]],
                        after: Sequence[tuple[str, float]], *, title: str | None = None,
                        style: Style = DEFAULT) -> go.Figure:
    """Next-token probabilities of the intact model's top tokens, before and after an
    ablation (tokens the ablated model ranks high but the intact one does not are added)."""
    b, a = dict(before), dict(after)
    tokens = list(dict.fromkeys([t for t, _ in before] + [t for t, _ in after]))
    labels = safe_labels(tokens)
    fig = go.Figure([
        go.Bar(x=labels, y=np.asarray([b.get(t, np.nan) for t in tokens], np.float32),
               name="intact", marker_color="#0072B2"),
        go.Bar(x=labels, y=np.asarray([a.get(t, np.nan) for t in tokens], np.float32),
               name="heads off", marker_color="#E69F00"),
    ])
    fig.update_layout(barmode="group", width=720, height=360,
                      legend=dict(orientation="h", y=1.1))
    fig.update_yaxes(title=dict(text="probability (missing bar: not in that top-k)"),
                     rangemode="tozero")
    return apply_style(fig, style, title)


__all__ = [
    "add_click_targets", "bars_figure", "bytes_vs_length_figure", "difference_maps",
    "group_of_heads", "heads_row", "kv_sharing_figure", "kv_steps_figure", "step_figure",
    "topk_compare_figure", "window_heatmap",
]
