"""Heatmaps of one attention head, of masks/scores/weights side by side, and generic matrices.

Query tokens run down, key tokens across. Axis values are integer positions and tick text
the (escaped) tokens, so a token that repeats keeps its own row and column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from viz.figures.long_input import LONG_INPUT, overview_figure
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

HOVER_TOKENS_MAX = 128  # above this, hover shows positions only (keeps the figure light)
FULL_MAX = 512  # above this many tokens, head_heatmap falls back to the block overview


def _token_customdata(q_tokens: Sequence[object], k_tokens: Sequence[object]) -> np.ndarray:
    """[Tq, Tk, 2] object array of (query label, key label) for hover."""
    custom = np.empty((len(q_tokens), len(k_tokens), 2), dtype=object)
    custom[..., 0] = np.asarray(safe_labels(q_tokens), dtype=object)[:, None]
    custom[..., 1] = np.asarray(safe_labels(k_tokens), dtype=object)[None, :]
    return custom


def heatmap_trace(
    z: np.ndarray,
    q_tokens: Sequence[object],
    k_tokens: Sequence[object],
    *,
    style: Style = DEFAULT,
    zmin: float | None = None,
    zmax: float | None = None,
    value_name: str = "weight",
    hover_tokens_max: int = HOVER_TOKENS_MAX,
    **kwargs,
) -> go.Heatmap:
    """One Heatmap trace over positions with token hover.

    Shapes: z [Tq, Tk] float32 (NaN = gap); x = arange(Tk), y = arange(Tq).
    """
    z = np.asarray(z, dtype=np.float32)
    tq, tk = z.shape
    if len(q_tokens) != tq or len(k_tokens) != tk:
        raise ValueError(
            f"tokens do not match the map: {len(q_tokens)} query and {len(k_tokens)} key "
            f"tokens for a [{tq}, {tk}] map"
        )
    fmt = number_format(style)
    value_name = style.say(value_name)
    if max(tq, tk) <= hover_tokens_max:
        custom = _token_customdata(q_tokens, k_tokens)
        hover = "q %{y} %{customdata[0]}<br>k %{x} %{customdata[1]}"
    else:
        custom, hover = None, "q %{y}<br>k %{x}"
    if zmin is None or zmax is None:
        lo, hi = value_range([z], style)
        zmin = lo if zmin is None else zmin
        zmax = hi if zmax is None else zmax
    return go.Heatmap(
        z=z,
        x=np.arange(tk, dtype=np.int32),
        y=np.arange(tq, dtype=np.int32),
        customdata=custom,
        colorscale=kwargs.pop("colorscale", None) or colorscale(style),
        zmin=zmin,
        zmax=zmax,
        hovertemplate=f"{hover}<br>{value_name} %{{z:{fmt}}}<extra></extra>",
        **kwargs,
    )


def head_heatmap(
    weights: np.ndarray,
    q_tokens: Sequence[object],
    k_tokens: Sequence[object] | None = None,
    *,
    title: str | None = None,
    style: Style = DEFAULT,
    zmin: float | None = None,
    zmax: float | None = None,
    value_name: str = "weight",
    full_max: int = FULL_MAX,
) -> go.Figure:
    """Heatmap of one head: query tokens down, key tokens across.

    Shapes: weights [Tq, Tk]; q_tokens len Tq; k_tokens len Tk (default q_tokens).
    Above `full_max` tokens the figure is the block-averaged overview (long_input).
    """
    k_tokens = q_tokens if k_tokens is None else k_tokens
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2:
        raise ValueError(f"head_heatmap takes one head [Tq, Tk], got shape {weights.shape}")
    if max(weights.shape) > full_max:
        return overview_figure(weights, q_tokens, k_tokens, style=style, title=title)
    trace = heatmap_trace(
        weights, q_tokens, k_tokens, style=style, zmin=zmin, zmax=zmax, value_name=value_name,
        colorbar=dict(title=dict(text=style.say(value_name))),
    )
    fig = go.Figure(trace)
    tq, tk = weights.shape
    cell = min(28.0, 900.0 / max(tq, tk))  # px per square cell; the map stays <= 900 px
    ticks = max(8, int(cell * max(tq, tk) / (style.font_size + 2)))  # labels that fit
    fig.update_xaxes(token_axis(k_tokens, max_ticks=ticks), title=dict(text=style.say("key")),
                     side="bottom", constrain="domain")
    fig.update_yaxes(token_axis(q_tokens, max_ticks=ticks, reverse=True),
                     title=dict(text=style.say("query")), scaleanchor="x", constrain="domain")
    fig.update_layout(**_square_layout(tq, tk, cell, q_tokens, k_tokens, style, bool(title)))
    return apply_style(fig, style, title)


def _label_px(tokens: Sequence[object], style: Style) -> float:
    """Rough rendered width of the longest label (capped: Plotly clips nothing, we do)."""
    longest = max((len(str(t)) for t in tokens), default=1)
    return min(220.0, 0.62 * style.font_size * longest + 10)


def _square_layout(tq: int, tk: int, cell: float, q_tokens, k_tokens, style: Style,
                   has_title: bool) -> dict:
    """Width, height and margins so that cells are `cell` px squares and labels fit."""
    left = _label_px(q_tokens, style) + 2.5 * style.font_size
    bottom = _label_px(k_tokens, style) + 2.5 * style.font_size
    top = 70 if has_title and style.show_title else 30
    right = 130
    return dict(
        width=int(left + right + cell * tk), height=int(top + bottom + cell * tq),
        margin=dict(l=int(left), r=right, t=top, b=int(bottom)),
    )


def matrix_heatmap(
    z: np.ndarray,
    *,
    x_labels: Sequence[object] | None = None,
    y_labels: Sequence[object] | None = None,
    x_title: str = "",
    y_title: str = "",
    value_name: str = "value",
    title: str | None = None,
    style: Style = DEFAULT,
    diverging: bool = False,
) -> go.Figure:
    """Generic matrix heatmap (e.g. position encodings, position-position similarity).

    Shapes: z [R, C]; x_labels len C, y_labels len R (default: indices). Row 0 at the top.
    `diverging` centres a diverging palette on 0.
    """
    z = np.asarray(z, dtype=np.float32)
    r, c = z.shape
    y_labels = list(range(r)) if y_labels is None else y_labels
    x_labels = list(range(c)) if x_labels is None else x_labels
    kwargs = {}
    if diverging:
        m = float(np.nanmax(np.abs(z[np.isfinite(z)]))) if np.isfinite(z).any() else 1.0
        kwargs = dict(colorscale=colorscale(style, "puor"), zmid=0.0)
        zmin, zmax = -m, m
    else:
        zmin, zmax = value_range([z], style)
    trace = heatmap_trace(
        z, y_labels, x_labels, style=style, zmin=zmin, zmax=zmax, value_name=value_name,
        colorbar=dict(title=dict(text=style.say(value_name))), **kwargs,
    )
    fig = go.Figure(trace)
    fig.update_xaxes(token_axis(x_labels, max_ticks=32), title=dict(text=style.say(x_title)))
    fig.update_yaxes(token_axis(y_labels, max_ticks=32, reverse=True),
                     title=dict(text=style.say(y_title)))
    return apply_style(fig, style, title)


def curves_figure(
    curves: Mapping[str, np.ndarray],
    x: np.ndarray | None = None,
    *,
    x_title: str = "",
    y_title: str = "",
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """Line plot of named 1-D curves (e.g. RoPE score vs. distance, ALiBi bias per head).

    Shapes: every curve [N]; x [N] (default arange(N)).
    """
    fig = go.Figure()
    for i, (name, y) in enumerate(curves.items()):
        y = np.asarray(y, dtype=np.float32)
        xs = np.arange(y.shape[0]) if x is None else np.asarray(x)
        fig.add_trace(
            go.Scatter(
                x=xs, y=y, mode="lines", name=safe_label(name),
                line=dict(color=head_color(i), width=2),
                hovertemplate=f"{safe_label(name)}<br>%{{x}}: %{{y:{number_format(style)}}}"
                "<extra></extra>",
            )
        )
    fig.update_xaxes(title=dict(text=style.say(x_title)))
    fig.update_yaxes(title=dict(text=style.say(y_title)))
    return apply_style(fig, style, title)


__all__ = [
    "LONG_INPUT",
    "curves_figure",
    "head_heatmap",
    "heatmap_trace",
    "matrix_heatmap",
]
