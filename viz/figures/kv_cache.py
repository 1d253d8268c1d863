"""KV-cache size pictures: bytes after each generation step (formula bars, measured
markers), and bytes (or any measured series, such as latency) against sequence length."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from viz.style import DEFAULT, Style, apply_style, head_color, safe_label


def kv_steps_figure(kv_bytes: Sequence[int], current: int | None = None,
                    measured: Sequence[int] | None = None, *, title: str | None = None,
                    style: Style = DEFAULT) -> go.Figure:
    """Decoder self-attention KV-cache bytes after each step (bars), the current step
    highlighted; `measured` (same length) is drawn as markers over the formula bars."""
    y = np.asarray(kv_bytes, np.int64)
    x = np.arange(len(y), dtype=np.int32)
    colors = np.where(x == (-1 if current is None else current), "#D55E00", "#56B4E9")
    fig = go.Figure(go.Bar(x=x, y=y, marker_color=colors, name=style.say("formula"),
                           hovertemplate="step %{x}<br>%{y:,} bytes<extra>formula</extra>"))
    if measured is not None:
        fig.add_trace(go.Scatter(x=x[: len(measured)], y=np.asarray(measured, np.int64),
                                 mode="markers", marker=dict(color="#000000", symbol="x",
                                                             size=9),
                                 name=style.say("measured (cache.bytes_used)"),
                                 hovertemplate="step %{x}<br>%{y:,} bytes<extra>measured</extra>"))
    fig.update_xaxes(title=dict(text=style.say("generation step")))
    fig.update_yaxes(title=dict(text=style.say("KV-cache bytes")), rangemode="tozero")
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
                line=dict(color=color, width=2),
                name=style.say("{label} (formula)", label=label),
                hovertemplate=f"{label}<br>%{{x}}: %{{y:,}}<extra>formula</extra>"))
        if measured and name in measured:
            x, y = measured[name]
            fig.add_trace(go.Scatter(
                x=np.asarray(x), y=np.asarray(y), mode="markers",
                marker=dict(color=color, size=8, symbol="x"),
                name=style.say("{label} (measured)", label=label),
                hovertemplate=f"{label}<br>%{{x}}: %{{y:,}}<extra>measured</extra>"))
    fig.update_xaxes(title=dict(text=style.say("sequence length (tokens)")))
    fig.update_yaxes(title=dict(text=style.say(y_title)), type="log" if log else "linear")
    fig.update_layout(width=720, height=420)
    return apply_style(fig, style, title)
