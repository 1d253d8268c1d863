"""Head metrics (viz.metrics) as a layers × heads heatmap, values printed in small grids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.metrics import METRIC_TITLES, metrics_grid
from viz.style import DEFAULT, Style, apply_style, colorscale


def metrics_figure(
    rows: Sequence[dict],
    metric: str = "entropy",
    *,
    block: str | None = None,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """Layers (down) × heads (across) heatmap of one metric, values printed in small grids."""
    grid = metrics_grid(rows, metric, block)
    n_l, n_h = grid.shape
    finite = grid[np.isfinite(grid)]
    zmin = float(finite.min()) if finite.size else 0.0
    zmax = float(finite.max()) if finite.size else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=grid, x=np.arange(n_h, dtype=np.int32), y=np.arange(n_l, dtype=np.int32),
            colorscale=colorscale(style), zmin=min(0.0, zmin), zmax=max(zmax, 1e-6),
            texttemplate=f"%{{z:.{max(1, style.precision - 1)}f}}" if n_l * n_h <= 400 else None,
            colorbar=dict(title=dict(text=style.say(METRIC_TITLES[metric]))),
            hovertemplate=f"layer %{{y}} head %{{x}}<br>{metric} %{{z:.{style.precision}f}}"
            "<extra></extra>",
        )
    )
    fig.update_xaxes(title=dict(text=style.say("head")), tickmode="array",
                     tickvals=list(range(n_h)), range=[-0.5, n_h - 0.5], showgrid=False)
    fig.update_yaxes(title=dict(text=style.say("layer")), tickmode="array",
                     tickvals=list(range(n_l)), range=[n_l - 0.5, -0.5], showgrid=False)
    fig.update_layout(width=int(min(1100, 60 * n_h + 260)), height=int(min(1100, 40 * n_l + 160)))
    return apply_style(fig, style, title or style.say(METRIC_TITLES[metric]))
