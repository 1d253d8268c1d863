"""A long map at full resolution: one pixel per (query, key) cell, colour-mapped on the server.

The figure holds the map as one indexed PNG (`viz.raster`), drawn by a Plotly Image trace, so
the browser gets about one byte a cell and never a JSON array of numbers. Zoom and pan work as
on any Plotly figure, and the pixels stay square and sharp. The axes are true token positions;
ticks are thinned to what fits, and each one is labelled with its token.

Plotly's own hover on the image gives the exact query and key positions at any zoom. The app
adds the tokens and the exact weight under the pointer (app_pages/shared/hover_readout.py),
using the `meta` id this figure carries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.raster import colour_indices, indexed_png, log_floor, palette_lut, png_data_uri
from viz.style import (
    DEFAULT,
    Style,
    apply_style,
    colorscale,
    safe_label,
    value_range,
    visible_token,
)

MAX_TICKS = 24  # labelled ticks per axis: more overlap at the figure's width
LABEL_CHARS = 10


def tick_positions(n: int, max_ticks: int = MAX_TICKS) -> list[int]:
    """At most `max_ticks` positions in 0..n-1, evenly spread, with the first and last."""
    if n <= max_ticks:
        return list(range(n))
    step = -(-(n - 1) // (max_ticks - 1))
    ticks = list(range(0, n - 1, step))
    if n - 1 - ticks[-1] < step / 2:  # keep the last tick clear of its neighbour
        ticks.pop()
    return ticks + [n - 1]


def tick_text(i: int, token: object) -> str:
    """"517 ▁the": position and token, the token cut to LABEL_CHARS before it is escaped
    (cutting "&lt;bos&gt;" would leave a broken entity on the axis)."""
    text = str(token)
    label = safe_label(text)
    if len(text) > LABEL_CHARS and label != visible_token(text):  # not invisible-only
        label = safe_label(text[: LABEL_CHARS - 1]) + "…"
    return f"{i} {label}"


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks of a log scale between lo and hi (> 0): every power of ten inside."""
    first, last = int(np.ceil(np.log10(lo) - 1e-9)), int(np.floor(np.log10(hi) + 1e-9))
    vals = [float(p) for p in range(first, last + 1)] or [float(np.log10(hi))]
    return vals, [f"{10.0 ** v:g}" for v in vals]


def colour_range(values: np.ndarray, style: Style, log: bool,
                 zmax: float | None = None) -> tuple[float, float]:
    """The colour range of a map: [0, its max] (or the given `zmax`, e.g. shared by heads). A
    log scale starts at `log_floor`, because log 0 is undefined."""
    zmin, hi = value_range([values], style)
    hi = float(zmax) if zmax is not None else hi
    if log:
        zmin = log_floor(values, hi)
    return zmin, hi


def image_map(
    values: np.ndarray,
    q_tokens: Sequence[object],
    k_tokens: Sequence[object] | None = None,
    *,
    style: Style = DEFAULT,
    title: str | None = None,
    value_name: str = "weight",
    log: bool = False,
    zmax: float | None = None,
    meta: str | None = None,
    plotly_hover: bool = True,
    size_px: int = 760,
) -> go.Figure:
    """One map at one pixel per cell, square, with thinned token ticks and a colour bar.

    Shapes: values [Tq, Tk]; q_tokens Tq labels; k_tokens Tk labels (default q_tokens).
    `log`: colour by log10 of the value (cells at exactly 0 take the no-value grey).
    `meta`: an id the app's hover readout uses to find this figure in the page.
    `plotly_hover=False`: Plotly draws no hover label (the app's readout replaces it), but
    it still sends hover events.
    """
    k_tokens = q_tokens if k_tokens is None else k_tokens
    z = np.asarray(values, dtype=np.float32)
    if z.ndim != 2:
        raise ValueError(f"image_map needs a [Tq, Tk] map, got shape {z.shape}")
    tq, tk = z.shape
    if len(q_tokens) != tq or len(k_tokens) != tk:
        raise ValueError(f"{len(q_tokens)} query and {len(k_tokens)} key labels for a "
                         f"{tq}×{tk} map")
    zmin, zmax = colour_range(z, style, log, zmax)
    png = indexed_png(colour_indices(z, zmin, zmax, log=log), palette_lut(style))
    fmt = f".{style.precision}f"
    fig = go.Figure(go.Image(
        source=png_data_uri(png), x0=0, dx=1, y0=0, dy=1, meta=meta,
        hoverinfo=None if plotly_hover else "none",
        hovertemplate=(style.say("query %{y} · key %{x}") + "<extra></extra>"
                       if plotly_hover else None),
    ))
    # The colour bar: one invisible marker carries the scale (an Image trace has none).
    lo, hi = (np.log10(zmin), np.log10(zmax)) if log else (zmin, zmax)
    bar = dict(title=dict(text=style.say(value_name) + (" (log)" if log else "")))
    if log:
        bar["tickvals"], bar["ticktext"] = log_ticks(zmin, zmax)
    else:
        bar["tickformat"] = fmt
    fig.add_trace(go.Scatter(
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker=dict(colorscale=colorscale(style), cmin=lo, cmax=hi, color=[lo],
                    showscale=True, colorbar=bar),
    ))
    for axis, toks, name in ((fig.layout.xaxis, k_tokens, "key"),
                             (fig.layout.yaxis, q_tokens, "query")):
        ticks = tick_positions(len(toks))
        axis.update(tickmode="array", tickvals=ticks,
                    ticktext=[tick_text(i, toks[i]) for i in ticks],
                    title=dict(text=style.say(f"{name} position")), showgrid=False,
                    zeroline=False)
    fig.update_xaxes(range=[-0.5, tk - 0.5], side="bottom", tickangle=-60,
                     constrain="domain")
    fig.update_yaxes(range=[tq - 0.5, -0.5], scaleanchor="x", scaleratio=1,
                     constrain="domain")
    fig.update_layout(width=size_px + 160, height=size_px + 140,
                      margin=dict(l=110, r=40, t=70, b=110))
    title = title or style.say("{tq} × {tk}, one pixel per cell", tq=tq, tk=tk)
    return apply_style(fig, style, title)
