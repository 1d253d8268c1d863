"""What a head moves, beside where it looks: one head's weights, its norm map and the layer's
flow map side by side on linked axes; flow across layers for one output token; the logit lens.

- Norm map (Kobayashi et al., 2020): α[h, i, j] · ‖W_O^h v^h_j‖, how much head h moves from
  key j into query i.
- Flow map (Ferrando & Voita, 2024): each key's share of the layer's update at query i, and
  the residual stream's share as its own column (rows sum to 1).

Pure: numpy arrays and labels in, Plotly figures out (the engine computes the numbers,
engine/contributions.py); every word drawn goes through `Style.say`, panel names through
`panel_names`. Axis values are true positions and tick text the readable labels,
so a repeated token keeps its own row and column; hover names the raw tokens (when the map
is small enough) and shows all three numbers of the cell in every panel.

Long maps get the Head view's treatment (viz/figures/long_input.py): a block-averaged
overview, each query's top-k keys as points, or a full-resolution window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.figures.long_input import LONG_INPUT, block_average, block_labels, block_size, topk_per_row
from viz.style import (
    DEFAULT,
    Style,
    apply_style,
    colorscale,
    number_format,
    safe_labels,
    token_axis,
    value_range,
)

PANELS = ("weight", "norm", "flow")  # the three maps, left to right
RESIDUAL = "residual"  # the flow map's last column: the residual stream's share
HOVER_TEXT_CELLS = 64 * 64  # above this many cells, hover names positions, not tokens
PANEL_PX = 380  # the side of one square panel at most, in pixels


def _check(weights: np.ndarray, norm: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, ...]:
    """The three maps as float32, or a ValueError naming the shapes that disagree."""
    weights, norm, flow = (np.asarray(a, dtype=np.float32) for a in (weights, norm, flow))
    if weights.ndim != 2 or norm.shape != weights.shape:
        raise ValueError(f"weights and norm must both be one head's [Tq, Tk] map, got "
                         f"{weights.shape} and {norm.shape}")
    tq, tk = weights.shape
    if flow.shape != (tq, tk + 1):
        raise ValueError(f"flow must be [Tq, Tk + 1] = [{tq}, {tk + 1}] (last column the "
                         f"residual), got {flow.shape}")
    return weights, norm, flow


def _check_labels(q_labels: Sequence[object], k_labels: Sequence[object], tq: int, tk: int):
    if len(q_labels) != tq or len(k_labels) != tk:
        raise ValueError(f"labels do not match the maps: {len(q_labels)} query and "
                         f"{len(k_labels)} key labels for [{tq}, {tk}] maps")


def _cell_text(q_tokens: Sequence[object], k_tokens: Sequence[object]) -> np.ndarray:
    """[Tq, Tk] hover strings 'query token → key token' (escaped)."""
    q = np.asarray(safe_labels(q_tokens), dtype=object)
    k = np.asarray(safe_labels(k_tokens), dtype=object)
    return q[:, None] + " → " + k[None, :]


def _colorbar(x: float, width: float) -> dict:
    """A horizontal colour bar under the panel that starts at paper x (its width `width`);
    untitled, the panel's title above names it."""
    return dict(title=dict(text=""), orientation="h", x=x + width / 2,
                xanchor="center", len=width, y=0.01, yref="container", yanchor="bottom",
                thickness=12)


def _panels(z: dict[str, np.ndarray], residual: np.ndarray, *, x: np.ndarray, y: np.ndarray,
            x_axis: dict, y_axis: dict, text: np.ndarray | None, row_text: np.ndarray | None,
            hover_head: str, style: Style, title: str | None,
            names: dict[str, str]) -> go.Figure:
    """Weights | norm | flow heatmaps on linked axes, then the residual's column.

    Shapes: every z [R, C] (R rows at axis values y, C columns at x); residual [R]; text
    [R, C] and row_text [R] hover strings (or None: positions only).
    Each panel's customdata is the [R, C, 3] stack of the three maps (hover shows all
    three). Every panel has its own colour scale: the residual's share is often most of a
    row, and on one scale with it the keys' shares would all look alike.
    """
    r, c = z["weight"].shape
    res_w = max(0.04, min(0.12, 1.5 / max(c, 1)))  # the residual column: about one cell
    fig = make_subplots(rows=1, cols=4, shared_yaxes=True, horizontal_spacing=0.025,
                        column_widths=[1.0, 1.0, 1.0, res_w * 3],
                        subplot_titles=[names[p] for p in PANELS] + [names[RESIDUAL]])
    fmt = number_format(style)
    custom = np.stack([z[p] for p in PANELS], axis=-1).astype(np.float32)  # [R, C, 3]
    where = f"{hover_head}<br>%{{text}}" if text is not None else hover_head
    numbers = "<br>".join(f"{names[p]} %{{customdata[{i}]:{fmt}}}" for i, p in enumerate(PANELS))
    ranges = {"weight": value_range([z["weight"]], style), "norm": value_range([z["norm"]], style),
              "flow": value_range([z["flow"]], style)}
    domains = []
    for col, p in enumerate(PANELS, start=1):
        fig.add_trace(go.Heatmap(
            z=z[p], x=x, y=y, customdata=custom, text=text, coloraxis=f"coloraxis{col}",
            name=names[p], hovertemplate=f"{where}<br>{numbers}<extra>{names[p]}</extra>",
        ), row=1, col=col)
        domains.append(fig.get_subplot(1, col).xaxis.domain)
    fig.add_trace(go.Heatmap(
        z=residual[:, None], x=[0], y=y, coloraxis="coloraxis4", name=names[RESIDUAL],
        text=None if row_text is None else row_text[:, None],
        hovertemplate=(("q %{y} %{text}" if row_text is not None else "q %{y}")
                       + f"<br>{names[RESIDUAL]} %{{z:{fmt}}}<extra></extra>"),
    ), row=1, col=4)
    for col, p in enumerate(PANELS, start=1):
        lo, hi = ranges[p]
        d0, d1 = domains[col - 1]
        fig.update_layout({f"coloraxis{col}": dict(
            colorscale=colorscale(style), cmin=lo, cmax=hi,
            colorbar=_colorbar(d0, d1 - d0))})
    fig.update_layout(coloraxis4=dict(colorscale=colorscale(style), cmin=0.0, cmax=1.0,
                                      colorbar=dict(thickness=10, len=0.6, x=1.0,
                                                    xanchor="left", title=dict(text=""))))
    # Linked axes: zooming or panning one map moves the others (the residual column follows
    # the query axis only).
    for col in (1, 2, 3):
        fig.update_xaxes(x_axis, row=1, col=col, matches=None if col == 1 else "x",
                         constrain="domain")
    fig.update_xaxes(tickmode="array", tickvals=[0], ticktext=[names[RESIDUAL]],
                     range=[-0.5, 0.5], showgrid=False, zeroline=False, row=1, col=4)
    fig.update_yaxes(y_axis, row=1, col=1)
    fig.update_yaxes(matches="y", row=1, col=2)
    fig.update_yaxes(matches="y", row=1, col=3)
    fig.update_yaxes(matches="y", row=1, col=4)
    cell = min(24.0, PANEL_PX / max(r, c))
    side_w, side_h = cell * c, cell * r
    left = min(220, 7 * max((len(str(t)) for t in (y_axis.get("ticktext") or [""])),
                            default=1) + 40)
    width = int(left + 3 * side_w / 0.92 + 160)
    fig.update_layout(width=max(width, 720), height=int(max(side_h, 160) + 260),
                      margin=dict(l=left, r=60, t=90 if title and style.show_title else 60,
                                  b=150))
    return apply_style(fig, style, title)


def panel_names(weight: str = "weight", norm: str = "norm ‖αWv‖", flow: str = "flow share",
                residual: str = RESIDUAL) -> dict[str, str]:
    """The panels' titles (the app passes translated ones)."""
    return {"weight": weight, "norm": norm, "flow": flow, RESIDUAL: residual}


def contributions_figure(
    weights: np.ndarray,
    norm: np.ndarray,
    flow: np.ndarray,
    q_labels: Sequence[object],
    k_labels: Sequence[object] | None = None,
    *,
    q_tokens: Sequence[object] | None = None,
    k_tokens: Sequence[object] | None = None,
    q_range: tuple[int, int] | None = None,
    k_range: tuple[int, int] | None = None,
    names: dict[str, str] | None = None,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """One head's weights, its norm map and the layer's flow map side by side, and the
    residual's share as its own column; optionally a window q_range × k_range (half-open)
    at full resolution, its axes keeping the true positions.

    Shapes: weights [Tq, Tk], norm [Tq, Tk], flow [Tq, Tk + 1]; labels (ticks) and tokens
    (hover, default the labels) len Tq / Tk. Each heatmap's z is its map's window
    [q1 - q0, k1 - k0]; the residual column's z is flow[q0:q1, -1:].
    """
    weights, norm, flow = _check(weights, norm, flow)
    k_labels = q_labels if k_labels is None else k_labels
    tq, tk = weights.shape
    _check_labels(q_labels, k_labels, tq, tk)
    q_tokens = q_labels if q_tokens is None else q_tokens
    k_tokens = k_labels if k_tokens is None else k_tokens
    q0, q1 = q_range or (0, tq)
    k0, k1 = k_range or (0, tk)
    if not (0 <= q0 < q1 <= tq and 0 <= k0 < k1 <= tk):
        raise ValueError(f"window {q_range}×{k_range} outside a [{tq}, {tk}] map")
    qs, ks = slice(q0, q1), slice(k0, k1)
    z = {"weight": weights[qs, ks], "norm": norm[qs, ks], "flow": flow[qs, k0:k1]}
    n_q, n_k = q1 - q0, k1 - k0
    small = n_q * n_k <= HOVER_TEXT_CELLS
    text = _cell_text(list(q_tokens)[qs], list(k_tokens)[ks]) if small else None
    row_text = np.asarray(safe_labels(list(q_tokens)[qs]), dtype=object) if small else None
    x_axis = token_axis(list(k_labels)[ks], max_ticks=64)
    y_axis = token_axis(list(q_labels)[qs], max_ticks=64, reverse=True)
    x_axis.update(tickvals=[v + k0 for v in x_axis["tickvals"]], range=[k0 - 0.5, k1 - 0.5])
    y_axis.update(tickvals=[v + q0 for v in y_axis["tickvals"]], range=[q1 - 0.5, q0 - 0.5])
    x_axis["title"] = dict(text=style.say("key") if k_range is None
                           else style.say("key {a}–{b}", a=k0, b=k1 - 1))
    y_axis["title"] = dict(text=style.say("query") if q_range is None
                           else style.say("query {a}–{b}", a=q0, b=q1 - 1))
    return _panels(z, flow[qs, -1], x=np.arange(k0, k1, dtype=np.int32),
                   y=np.arange(q0, q1, dtype=np.int32), x_axis=x_axis, y_axis=y_axis,
                   text=text, row_text=row_text, hover_head="q %{y} · k %{x}", style=style,
                   title=title, names=names or panel_names())


def contributions_overview(
    weights: np.ndarray,
    norm: np.ndarray,
    flow: np.ndarray,
    q_labels: Sequence[object],
    k_labels: Sequence[object] | None = None,
    *,
    max_cells: int = LONG_INPUT,
    names: dict[str, str] | None = None,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """The three maps of a long input averaged over b×b blocks (at most max_cells per side),
    the residual's share averaged over the same query blocks.

    Shapes: weights, norm [Tq, Tk]; flow [Tq, Tk + 1] → each z [ceil(Tq/b), ceil(Tk/b)],
    the residual column [ceil(Tq/b), 1]. Axis values are each block's first position; tick
    text names the block's range.
    """
    weights, norm, flow = _check(weights, norm, flow)
    k_labels = q_labels if k_labels is None else k_labels
    tq, tk = weights.shape
    _check_labels(q_labels, k_labels, tq, tk)
    b = max(block_size(tq, max_cells), block_size(tk, max_cells))
    z = {"weight": block_average(weights, b), "norm": block_average(norm, b),
         "flow": block_average(flow[:, :tk], b)}
    residual = block_average(flow[:, tk:], b, 1)[:, 0]  # [ceil(Tq/b)]
    axes = []
    for labels, name, reverse in ((k_labels, "key", False), (q_labels, "query", True)):
        ticks = block_labels(labels, b)
        step = max(1, len(ticks) // 16)
        n = len(ticks)
        axes.append(dict(
            tickmode="array", tickvals=[i * b for i in range(0, n, step)],
            ticktext=[ticks[i] for i in range(0, n, step)], showgrid=False, zeroline=False,
            title=dict(text=style.say(f"{name} positions (blocks of {{b}})", b=b)),
            autorange=False,
            range=[(n - 0.5) * b, -b / 2] if reverse else [-b / 2, (n - 0.5) * b]))
    head = f"queries %{{y}}… · keys %{{x}}… (blocks of {b}, means)"
    return _panels(z, residual, x=np.arange(z["weight"].shape[1], dtype=np.int32) * b,
                   y=np.arange(z["weight"].shape[0], dtype=np.int32) * b, x_axis=axes[0],
                   y_axis=axes[1], text=None, row_text=None, hover_head=head, style=style,
                   title=title or style.say("Overview: {tq}×{tk} averaged in {b}×{b} blocks",
                                            tq=tq, tk=tk, b=b),
                   names=names or panel_names())


def contributions_topk(
    weights: np.ndarray,
    norm: np.ndarray,
    flow: np.ndarray,
    q_labels: Sequence[object],
    k_labels: Sequence[object] | None = None,
    *,
    k: int = 8,
    names: dict[str, str] | None = None,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """Each map's k strongest keys per query as points (query down, key across), the
    residual's share as a column beside them.

    Shapes: weights, norm [Tq, Tk]; flow [Tq, Tk + 1] → three Scatter traces of Tq·k' points
    (k' = min(k, Tk)), each point's customdata the three numbers of its cell; a [Tq, 1]
    Heatmap of the residual's share.
    """
    weights, norm, flow = _check(weights, norm, flow)
    k_labels = q_labels if k_labels is None else k_labels
    tq, tk = weights.shape
    _check_labels(q_labels, k_labels, tq, tk)
    names = names or panel_names()
    maps = {"weight": weights, "norm": norm, "flow": flow[:, :tk]}
    fig = make_subplots(rows=1, cols=4, shared_yaxes=True, horizontal_spacing=0.025,
                        column_widths=[1.0, 1.0, 1.0, 0.12],
                        subplot_titles=[names[p] for p in PANELS] + [names[RESIDUAL]])
    fmt = number_format(style)
    numbers = "<br>".join(f"{names[p]} %{{customdata[{i}]:{fmt}}}" for i, p in enumerate(PANELS))
    for col, p in enumerate(PANELS, start=1):
        idx, val = topk_per_row(maps[p], k)
        ys = np.repeat(np.arange(tq, dtype=np.int32), idx.shape[1])
        xs = idx.reshape(-1)
        custom = np.stack([maps[q][ys, xs] for q in PANELS], axis=1).astype(np.float32)
        lo, hi = value_range([val], style)
        d0, d1 = fig.get_subplot(1, col).xaxis.domain
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", customdata=custom, name=names[p],
            marker=dict(color=val.reshape(-1), colorscale=colorscale(style), cmin=lo, cmax=hi,
                        size=4, symbol="square", showscale=True,
                        colorbar=_colorbar(d0, d1 - d0)),
            hovertemplate=f"q %{{y}} · k %{{x}}<br>{numbers}<extra>{names[p]}</extra>",
        ), row=1, col=col)
        fig.update_xaxes(range=[-0.5, tk - 0.5], showgrid=False, zeroline=False,
                         matches=None if col == 1 else "x", row=1, col=col,
                         title=dict(text=style.say("key position")))
    fig.add_trace(go.Heatmap(
        z=flow[:, tk:], x=[0], y=np.arange(tq, dtype=np.int32), colorscale=colorscale(style),
        zmin=0.0, zmax=1.0, showscale=False, name=names[RESIDUAL],
        hovertemplate=f"q %{{y}}<br>{names[RESIDUAL]} %{{z:{fmt}}}<extra></extra>",
    ), row=1, col=4)
    fig.update_xaxes(tickmode="array", tickvals=[0], ticktext=[names[RESIDUAL]],
                     range=[-0.5, 0.5], row=1, col=4)
    y_axis = token_axis(q_labels, max_ticks=32, reverse=True)
    y_axis["title"] = dict(text=style.say("query position"))
    fig.update_yaxes(y_axis, row=1, col=1)
    for col in (2, 3, 4):
        fig.update_yaxes(matches="y", row=1, col=col)
    fig.update_layout(width=1200, height=int(min(900, max(420, 2 * tq + 260))),
                      margin=dict(l=160, r=30, t=90, b=150), showlegend=False)
    return apply_style(fig, style, title or style.say("Top {k} keys per query ({tq} queries)",
                                                      k=min(k, tk), tq=tq))


def flow_across_figure(
    shares: np.ndarray,
    k_labels: Sequence[object],
    *,
    k_tokens: Sequence[object] | None = None,
    position: int | None = None,
    value_name: str = "share",
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """One output position's row of flow across layers: the share with which each input
    token reaches it, one bar per input position (the position itself outlined).

    Shapes: shares [T] (sums to 1); k_labels (ticks) and k_tokens (hover) len T.
    """
    shares = np.asarray(shares, dtype=np.float32)
    if shares.ndim != 1 or len(k_labels) != shares.shape[0]:
        raise ValueError(f"shares must be one row [T] with a label per position, got "
                         f"{shares.shape} and {len(k_labels)} labels")
    t = shares.shape[0]
    k_tokens = k_labels if k_tokens is None else k_tokens
    custom = np.asarray(safe_labels(k_tokens), dtype=object) if t <= 1024 else None
    line = np.zeros(t, dtype=np.float32)
    if position is not None and 0 <= position < t:
        line[position] = 2.0
    fmt = number_format(style)
    fig = go.Figure(go.Bar(
        x=np.arange(t, dtype=np.int32), y=shares, customdata=custom,
        marker=dict(color=shares, colorscale=colorscale(style), cmin=0.0,
                    cmax=float(max(shares.max(initial=0.0), 1e-6)),
                    line=dict(width=line, color="#D55E00")),
        hovertemplate=("k %{x} %{customdata}" if custom is not None else "k %{x}")
        + f"<br>{value_name} %{{y:{fmt}}}<extra></extra>",
    ))
    x_axis = token_axis(k_labels, max_ticks=64)
    x_axis.update(title=dict(text=style.say("input token")), showline=True)
    fig.update_xaxes(x_axis)
    fig.update_yaxes(title=dict(text=style.say(value_name)), rangemode="tozero")
    fig.update_layout(width=int(min(1400, max(560, 18 * t + 160))), height=420,
                      bargap=0.1)
    return apply_style(fig, style, title)


def logit_lens_figure(
    rows: Sequence[Sequence[tuple[str, float]]],
    labels: Sequence[Sequence[object]] | None = None,
    *,
    layer_names: Sequence[object] | None = None,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """The logit lens as a table: one row per layer (layer 0 at the top), its top-k next
    tokens left to right, each cell coloured by its probability and labelled with its token.

    Shapes: rows, len L, each k (token, probability) pairs; labels (the tokens as shown,
    default the tokens) L × k; z of the figure [L, k].
    """
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("the logit lens needs the same number of tokens for every layer")
    n_layers, k = len(rows), len(rows[0])
    probs = np.asarray([[p for _, p in r] for r in rows], dtype=np.float32)  # [L, k]
    shown = labels if labels is not None else [[t for t, _ in r] for r in rows]
    text = np.asarray([safe_labels(r) for r in shown], dtype=object)
    raw = np.asarray([safe_labels(t for t, _ in r) for r in rows], dtype=object)
    layer_names = list(range(n_layers)) if layer_names is None else list(layer_names)
    fmt = number_format(style)
    fig = go.Figure(go.Heatmap(
        z=probs, x=np.arange(1, k + 1, dtype=np.int32), y=np.arange(n_layers, dtype=np.int32),
        text=text, customdata=raw, texttemplate="%{text}", textfont=dict(size=10),
        colorscale=colorscale(style), zmin=0.0, zmax=1.0,
        colorbar=dict(title=dict(text=style.say("probability"))),
        hovertemplate=(f"layer %{{y}} · rank %{{x}}<br>%{{customdata}}"
                       f"<br>probability %{{z:{fmt}}}<extra></extra>"),
    ))
    fig.update_xaxes(title=dict(text=style.say("rank")), tickmode="array",
                     tickvals=list(range(1, k + 1)), side="top")
    y_axis = token_axis(layer_names, max_ticks=64, reverse=True)
    y_axis["title"] = dict(text=style.say("after layer"))
    fig.update_yaxes(y_axis)
    fig.update_layout(width=int(min(1400, 90 * k + 160)),
                      height=int(min(1400, 22 * n_layers + 210)), margin=dict(t=115))
    apply_style(fig, style, title)
    if fig.layout.title.text:  # above the rank axis's title, which sits on top
        fig.update_layout(title=dict(y=1.0, yref="container", yanchor="top", pad=dict(t=20)))
    return fig


__all__ = [
    "PANELS",
    "RESIDUAL",
    "contributions_figure",
    "contributions_overview",
    "contributions_topk",
    "flow_across_figure",
    "logit_lens_figure",
    "panel_names",
]
