"""One bar per named value (latency per variant, say), with optional error bars."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from viz.style import DEFAULT, Style, apply_style, head_color, safe_labels


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
    fig.update_yaxes(title=dict(text=style.say(y_title)), rangemode="tozero")
    fig.update_layout(width=560, height=360)
    return apply_style(fig, style, title)
