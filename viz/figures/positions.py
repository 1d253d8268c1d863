"""Figures of positional encodings: sinusoidal (Vaswani et al., 2017, §3.5), learned tables,
RoPE (Su et al., 2021, "RoFormer") and ALiBi (Press et al., 2022).

Pure builders: numpy in, `plotly.graph_objects.Figure` out. The numbers come from
engine.core.positions; these functions only draw them (and compute the similarity of rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.figures.heatmap import curves_figure, matrix_heatmap
from viz.style import (
    DEFAULT,
    Style,
    apply_style,
    colorscale,
    head_color,
    number_format,
    safe_label,
)

SIMILARITIES = ("dot", "cosine")
HEIGHT = 440


def _sparse_ticks(n: int, max_ticks: int) -> dict:
    """Tick every k-th index (k a 1-2-5 step) so that at most `max_ticks` labels show."""
    step = 1
    for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        step = s
        if -(-n // s) <= max_ticks:
            break
    vals = list(range(0, n, step))
    return dict(tickmode="array", tickvals=vals, ticktext=[str(v) for v in vals])


def similarity(table: np.ndarray, kind: str = "cosine") -> np.ndarray:
    """Position-position similarity of the rows of a position table.

    Shapes: table [L, D] → [L, L]; "dot" is table @ tableᵀ, "cosine" the same on unit rows
    (a zero row gets similarity 0).
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {kind!r}")
    t = np.asarray(table, dtype=np.float64)
    if kind == "cosine":
        norm = np.linalg.norm(t, axis=1, keepdims=True)
        t = np.divide(t, norm, out=np.zeros_like(t), where=norm > 0)
    return (t @ t.T).astype(np.float32)


def _heat(z, x_title, y_title, value_name, style, diverging, title):
    """A [R, C] heatmap, row 0 on top, with sparse ticks for long axes."""
    z = np.asarray(z, dtype=np.float32)
    fig = matrix_heatmap(z, x_title=x_title, y_title=y_title, value_name=value_name,
                         title=title, style=style, diverging=diverging)
    fig.update_layout(height=HEIGHT)
    fig.update_yaxes(**_sparse_ticks(z.shape[0], 16))  # 32 row labels overlap at 440 px
    fig.update_xaxes(**_sparse_ticks(z.shape[1], 20))
    return fig


def encoding_figure(
    table: np.ndarray, *, title: str | None = None, style: Style = DEFAULT,
    x_title: str = "dimension", y_title: str = "position", value_name: str = "value",
    clip_quantile: float | None = None,
) -> go.Figure:
    """A position table as a position × dimension heatmap, diverging around 0.

    `clip_quantile` (e.g. 0.99) caps the colour range at that quantile of |value|, so a few
    outliers (learned tables have some) do not wash the rest out; hover keeps exact values.
    Shapes: table [L, D]; row = position, column = dimension.
    """
    fig = _heat(table, x_title, y_title, value_name, style, True, title)
    if clip_quantile is not None:
        a = np.abs(np.asarray(table, dtype=np.float64))
        a = a[np.isfinite(a)]
        if a.size:
            m = max(float(np.quantile(a, clip_quantile)), 1e-9)
            fig.update_traces(zmin=-m, zmax=m, selector=dict(type="heatmap"))
    return fig


def similarity_figure(
    sim: np.ndarray, *, title: str | None = None, style: Style = DEFAULT,
    value_name: str = "similarity", axis_title: str = "position",
) -> go.Figure:
    """Position-position similarity. Shapes: sim [L, L]."""
    return _heat(sim, axis_title, axis_title, value_name, style, True, title)


def dimension_curves_figure(
    table: np.ndarray, dims: Sequence[int], *, title: str | None = None,
    style: Style = DEFAULT, x_title: str = "position", y_title: str = "value",
    dim_label: str = "dim",
) -> go.Figure:
    """Chosen dimensions of a position table as curves over position.

    Shapes: table [L, D]; dims: column indices.
    """
    table = np.asarray(table, dtype=np.float32)
    pos = np.arange(table.shape[0], dtype=np.int32)
    fig = curves_figure({f"{dim_label} {int(d)}": table[:, int(d)] for d in dims}, pos,
                        x_title=x_title, y_title=y_title, title=title, style=style)
    fig.update_layout(height=360)
    return fig


def rope_circle_figure(
    cos: np.ndarray, sin: np.ndarray, pairs: Sequence[int], positions: Sequence[int],
    thetas: Sequence[float] | None = None, *, title: str | None = None,
    style: Style = DEFAULT, pair_label: str = "pair", position_label: str = "position",
    angle_label: str = "angle",
) -> go.Figure:
    """How RoPE turns one 2-D pair of q (or k) per frequency: the unit vector (1, 0) rotated to
    angle pos·θ_i, an arrow per position, one panel per pair i.

    Shapes: cos, sin [T, D] as from engine.core.positions.rope_cos_sin (row = position, column i
    and i + D/2 both hold pair i); pairs: pair indices < D/2; positions: rows to draw.
    """
    cos = np.asarray(cos, dtype=np.float64)
    sin = np.asarray(sin, dtype=np.float64)
    names = []
    for p in pairs:
        theta = "" if thetas is None else f", θ = {float(thetas[p]):.3g}"
        names.append(f"{safe_label(pair_label)} {int(p)}{theta}")
    fig = make_subplots(rows=1, cols=max(1, len(pairs)), subplot_titles=names,
                        horizontal_spacing=0.06)
    circle = np.linspace(0, 2 * np.pi, 121)
    for c, p in enumerate(pairs, start=1):
        fig.add_trace(go.Scatter(
            x=np.cos(circle), y=np.sin(circle), mode="lines", hoverinfo="skip",
            line=dict(color="#bbbbbb", width=1), showlegend=False,
        ), row=1, col=c)
        xs, ys = cos[list(positions), int(p)], sin[list(positions), int(p)]
        for j, pos in enumerate(positions):
            color = head_color(j)
            fig.add_trace(go.Scatter(
                x=[0.0, xs[j]], y=[0.0, ys[j]], mode="lines+markers+text",
                line=dict(color=color, width=2),
                marker=dict(size=[0, 9], color=color, symbol="circle"),
                text=["", str(int(pos))], textposition="top center",
                name=f"{safe_label(position_label)} {int(pos)}", legendgroup=str(int(pos)),
                showlegend=c == 1,
                hovertemplate=f"{safe_label(pair_label)} {int(p)}, "
                f"{safe_label(position_label)} {int(pos)}<br>{safe_label(angle_label)} = "
                f"{np.degrees(np.arctan2(ys[j], xs[j])):.1f}°<extra></extra>",
            ), row=1, col=c)
        fig.update_xaxes(range=[-1.25, 1.25], scaleanchor=f"y{'' if c == 1 else c}",
                         showgrid=False, zeroline=True, row=1, col=c)
        fig.update_yaxes(range=[-1.25, 1.25], showgrid=False, zeroline=True, row=1, col=c)
    fig.update_layout(height=380)
    return apply_style(fig, style, title)


def rope_distance_figure(
    scores: np.ndarray, query_positions: Sequence[int], *, title: str | None = None,
    style: Style = DEFAULT, x_title: str = "relative distance n − m",
    y_title: str = "q·k after RoPE",
) -> go.Figure:
    """q_m·k_n against the distance n − m, one curve per query position m: the curves lie on
    top of each other when the score depends only on the distance.

    Shapes: scores [T, T] with scores[m, n] = rope(q, m) · rope(k, n).
    """
    scores = np.asarray(scores, dtype=np.float64)
    t = scores.shape[1]
    fig = go.Figure()
    for i, m in enumerate(query_positions):
        m = int(m)
        fig.add_trace(go.Scatter(
            x=np.arange(t) - m, y=scores[m], mode="lines+markers", name=f"m = {m}",
            line=dict(color=head_color(i), width=2 + 2 * (len(query_positions) - 1 - i)),
            marker=dict(size=4), opacity=0.85,
            hovertemplate=f"m = {m}<br>n − m = %{{x}}<br>%{{y:{number_format(style)}}}"
            "<extra></extra>",
        ))
    fig.update_xaxes(title=dict(text=safe_label(style.say(x_title))))
    fig.update_yaxes(title=dict(text=safe_label(style.say(y_title))))
    fig.update_layout(height=380)
    return apply_style(fig, style, title)


def score_matrix_figure(
    scores: np.ndarray, *, title: str | None = None, style: Style = DEFAULT,
    value_name: str = "q·k", x_title: str = "key position n",
    y_title: str = "query position m",
) -> go.Figure:
    """q_m·k_n as a query × key heatmap (constant along diagonals under RoPE).

    Shapes: scores [T, T]."""
    return _heat(scores, x_title, y_title, value_name, style, True, title)


def alibi_figure(
    bias: np.ndarray, slopes: Sequence[float], *, title: str | None = None,
    style: Style = DEFAULT, cols: int = 4, head_label: str = "head",
    slope_label: str = "slope", value_name: str = "bias",
) -> go.Figure:
    """ALiBi's additive bias, one heatmap per head on one shared colour scale.

    Shapes: bias [H, Tq, Tk] (−slope_h·|i − j|); slopes [H].
    """
    bias = np.asarray(bias, dtype=np.float32)
    h = bias.shape[0]
    cols = max(1, min(cols, h))
    rows = -(-h // cols)
    names = []
    for i, s in enumerate(slopes):
        inv = 1.0 / float(s) if s else float("inf")
        frac = f"1/{inv:.0f}" if abs(inv - round(inv)) < 1e-6 else f"{float(s):.4g}"
        names.append(f"{safe_label(style.say(head_label))} {i + 1}: "
                     f"{safe_label(style.say(slope_label))} {frac}")
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names,
                        horizontal_spacing=0.04,
                        vertical_spacing=min(0.3, 0.5 / rows) if rows > 1 else 0.0)
    finite = bias[np.isfinite(bias)]  # NaN = masked (causal form)
    lo = min(float(finite.min()) if finite.size else -1.0, -1e-9)
    for i in range(h):
        r, c = divmod(i, cols)
        fig.add_trace(go.Heatmap(
            z=bias[i], colorscale=colorscale(style), zmin=lo, zmax=0.0,
            showscale=i == 0, colorbar=dict(title=dict(text=safe_label(style.say(value_name)))),
            hovertemplate=f"{names[i]}<br>q %{{y}}, k %{{x}}<br>{safe_label(value_name)} "
            f"%{{z:{number_format(style)}}}<extra></extra>",
        ), row=r + 1, col=c + 1)
        fig.update_yaxes(autorange="reversed", showgrid=False, row=r + 1, col=c + 1)
        fig.update_xaxes(showgrid=False, row=r + 1, col=c + 1)
    fig.update_layout(height=int(80 + 290 * rows))
    return apply_style(fig, style, title)


__all__ = [
    "SIMILARITIES",
    "alibi_figure",
    "dimension_curves_figure",
    "encoding_figure",
    "rope_circle_figure",
    "rope_distance_figure",
    "score_matrix_figure",
    "similarity",
    "similarity_figure",
]
