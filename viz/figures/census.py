"""The head census as pictures: a layers × heads heatmap of one metric's mean over a corpus,
the same grid coloured by each head's label (one categorical colour per type, with a legend),
and one head's distribution over the corpus's texts (a box of every text above a histogram).

Inputs are numpy arrays and lists (the page turns heads.parquet and texts.parquet into them);
nothing here reads files or knows the engine. Missing cells (a metric a block does not
define, a head a census did not record) are gaps (`None`), never NaN, in the figure's data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.style import DEFAULT, Style, apply_style, colorscale, safe_label

# The label order of engine/census/labels.py (the first rule that holds), and a
# colour-blind-safe colour per type (Okabe & Ito, 2008; grey for "none of these").
TYPES = ("induction", "previous-token", "sink", "self", "local", "broad", "mixed")
TYPE_COLORS = {
    "induction": "#D55E00", "previous-token": "#0072B2", "sink": "#CC79A7",
    "self": "#009E73", "local": "#56B4E9", "broad": "#E69F00", "mixed": "#BBBBBB",
}
MAX_CELL_TEXT = 400  # cells: above this the values are left to the hover


def _gaps(grid: np.ndarray) -> list[list[float | None]]:
    """A float grid as nested lists with every non-finite cell a gap (None)."""
    return [[float(v) if np.isfinite(v) else None for v in row] for row in grid]


def _grid_axes(fig: go.Figure, n_layers: int, n_heads: int, head_title: str,
               layer_title: str) -> None:
    """Heads across, layers down (layer 0 on top), one tick per head and per layer."""
    fig.update_xaxes(title=dict(text=head_title), tickmode="array",
                     tickvals=list(range(n_heads)), range=[-0.5, n_heads - 0.5],
                     showgrid=False, zeroline=False)
    fig.update_yaxes(title=dict(text=layer_title), tickmode="array",
                     tickvals=list(range(n_layers)), range=[n_layers - 0.5, -0.5],
                     showgrid=False, zeroline=False)


def census_heatmap(grid: np.ndarray, metric_title: str, *, spread: np.ndarray | None = None,
                   title: str | None = None, style: Style = DEFAULT,
                   head_title: str | None = None, layer_title: str | None = None) -> go.Figure:
    """Layers (down) × heads (across) heatmap of one metric's corpus mean.

    Shapes: grid [L, H] float (NaN = no value: a gap); spread [L, H] float, the std over
    texts, shown in the hover as "± std" when given.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or 0 in grid.shape:
        raise ValueError(f"expected a [layers, heads] grid, got shape {grid.shape}")
    n_l, n_h = grid.shape
    finite = grid[np.isfinite(grid)]
    zmin = min(0.0, float(finite.min())) if finite.size else 0.0
    zmax = float(finite.max()) if finite.size else 1.0
    digits = style.precision
    where = f"{style.say('layer')} %{{y}} {style.say('head')} %{{x}}"
    hover = f"{where}<br>{safe_label(metric_title)} %{{z:.{digits}f}}"
    customdata = None
    if spread is not None:
        spread = np.asarray(spread, dtype=np.float64)
        if spread.shape != grid.shape:
            raise ValueError(f"spread has shape {spread.shape}, the grid {grid.shape}")
        customdata = _gaps(spread)
        hover += f" ± %{{customdata:.{digits}f}}"
    fig = go.Figure(go.Heatmap(
        z=_gaps(grid), x=list(range(n_h)), y=list(range(n_l)), customdata=customdata,
        colorscale=colorscale(style), zmin=zmin, zmax=max(zmax, zmin + 1e-6),
        texttemplate=(f"%{{z:.{max(1, digits - 1)}f}}" if n_l * n_h <= MAX_CELL_TEXT
                      else None),
        colorbar=dict(title=dict(text=safe_label(metric_title))),
        hovertemplate=hover + "<extra></extra>", hoverongaps=False,
    ))
    _grid_axes(fig, n_l, n_h, head_title or style.say("head"),
               layer_title or style.say("layer"))
    fig.update_layout(width=int(min(1100, 60 * n_h + 260)),
                      height=int(min(1100, 34 * n_l + 170)))
    return apply_style(fig, style, title or metric_title)


def type_heatmap(types: Sequence[Sequence[str | None]], *,
                 names: Mapping[str, str] | None = None, title: str | None = None,
                 style: Style = DEFAULT, head_title: str | None = None,
                 layer_title: str | None = None, legend_title: str | None = None) -> go.Figure:
    """Layers × heads grid coloured by each head's type, one colour per type and a legend.

    Shapes: types [L][H] of type names from TYPES (None or "" = no head there: a gap).
    names: the type names as shown (e.g. in 中文); the legend lists every type in TYPES
    order, the ones present first-class and the others too, so colours read the same in every
    census.
    """
    grid = [list(row) for row in types]
    if not grid or not grid[0] or any(len(row) != len(grid[0]) for row in grid):
        raise ValueError("expected a non-empty [layers][heads] grid of type names")
    unknown = {t for row in grid for t in row if t and t not in TYPE_COLORS}
    if unknown:
        raise ValueError(f"unknown head types {sorted(unknown)}; known: {', '.join(TYPES)}")
    names = dict(names or {})
    shown = {t: safe_label(names.get(t, t)) for t in TYPES}
    n_l, n_h, n_t = len(grid), len(grid[0]), len(TYPES)
    code = [[TYPES.index(t) if t else None for t in row] for row in grid]
    # Each type owns one equal band of the colour scale: codes 0..n-1 sit in their band's
    # middle with zmin/zmax half a code outside, so no type bleeds into its neighbour.
    scale = []
    for i, t in enumerate(TYPES):
        scale += [[i / n_t, TYPE_COLORS[t]], [(i + 1) / n_t, TYPE_COLORS[t]]]
    labels = [[shown[t] if t else "" for t in row] for row in grid]
    fig = go.Figure(go.Heatmap(
        z=code, x=list(range(n_h)), y=list(range(n_l)), text=labels,
        colorscale=scale, zmin=-0.5, zmax=n_t - 0.5, showscale=False, xgap=1, ygap=1,
        # no text in the cells: a type's name is wider than a cell; colour, legend and hover
        hovertemplate=f"{style.say('layer')} %{{y}} {style.say('head')} %{{x}}<br>%{{text}}"
        "<extra></extra>", hoverongaps=False,
    ))
    present = {t for row in grid for t in row if t}
    for t in TYPES:  # the legend: one square marker per type, drawn nowhere on the grid
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name=shown[t], showlegend=True,
            marker=dict(symbol="square", size=12, color=TYPE_COLORS[t]),
            legendrank=TYPES.index(t) if t in present else n_t + TYPES.index(t),
            hoverinfo="skip"))
    _grid_axes(fig, n_l, n_h, head_title or style.say("head"),
               layer_title or style.say("layer"))
    fig.update_layout(width=int(min(1200, 60 * n_h + 380)),
                      height=int(min(1100, 34 * n_l + 170)),
                      legend=dict(title=dict(text=safe_label(legend_title or style.say("type"))),
                                  itemclick=False,
                                  itemdoubleclick=False))
    return apply_style(fig, style, title or style.say("head types"))


def distribution_figure(values: Sequence[float], metric_title: str, *,
                        text_ids: Sequence[int] | None = None, marked: int | None = None,
                        title: str | None = None, style: Style = DEFAULT,
                        count_title: str | None = None) -> go.Figure:
    """One head's values over the corpus's texts: every text as a point of a box plot above a
    histogram of the same values; `marked` (a text id) is drawn as a line on both.

    Shapes: values [N] float (one per text; NaN values are left out); text_ids [N] int.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)  # [N]
    ids = (np.arange(v.size) if text_ids is None
           else np.asarray(text_ids, dtype=np.int64).reshape(-1))  # [N]
    if ids.shape != v.shape:
        raise ValueError(f"{ids.size} text ids for {v.size} values")
    keep = np.isfinite(v)
    v, ids = v[keep], ids[keep]
    digits = style.precision
    count_title = count_title or style.say("texts")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.28, 0.72],
                        vertical_spacing=0.04)
    fig.add_trace(go.Box(
        x=v.tolist(), name="", orientation="h", boxpoints="all", jitter=0.5, pointpos=0,
        marker=dict(size=5, color="#0072B2", opacity=0.6), line=dict(color="#444444"),
        fillcolor="rgba(0,114,178,0.12)", customdata=ids.tolist(), showlegend=False,
        hovertemplate=f"{style.say('text')} %{{customdata}}<br>%{{x:.{digits}f}}"
        "<extra></extra>"),
        row=1, col=1)
    fig.add_trace(go.Histogram(
        x=v.tolist(), nbinsx=int(min(40, max(5, np.sqrt(max(v.size, 1)) * 2))),
        marker=dict(color="#0072B2", line=dict(color="white", width=1)), showlegend=False,
        hovertemplate=f"%{{x}}<br>%{{y}} {safe_label(count_title)}<extra></extra>"),
        row=2, col=1)
    if marked is not None and marked in set(ids.tolist()):
        x = float(v[ids.tolist().index(marked)])
        fig.add_vline(x=x, line=dict(color="#D55E00", width=2, dash="dash"))
    fig.update_yaxes(showticklabels=False, row=1, col=1)
    fig.update_yaxes(title=dict(text=safe_label(count_title)), row=2, col=1)
    fig.update_xaxes(title=dict(text=safe_label(metric_title)), row=2, col=1)
    fig.update_layout(height=380, bargap=0.02)
    return apply_style(fig, style, title or metric_title)
