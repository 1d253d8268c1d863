"""Light views of long inputs (> ~128 tokens): a block-reduced overview and top-k per row.

A 2,048-token map has 4M cells (16 MB as float32): too heavy for a browser heatmap (the
full-resolution view is an image: viz.figures.image_map). The overview reduces b×b blocks
by their max (a single strong cell survives) or their mean (each block's mean attention);
the top-k view keeps each query's k strongest keys as points (Tq·k points).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.style import DEFAULT, Style, apply_style, colorscale, safe_label, value_range

LONG_INPUT = 128  # above this many tokens, views switch to overview/top-k by default


def block_size(n: int, max_cells: int = LONG_INPUT) -> int:
    """Smallest block b such that ceil(n / b) <= max_cells."""
    return max(1, -(-int(n) // int(max_cells)))


REDUCTIONS = ("max", "mean")  # max first: a single strong cell (a sink, a diagonal) survives


def block_reduce(a: np.ndarray, bq: int, bk: int | None = None, how: str = "max") -> np.ndarray:
    """Each bq×bk block's max or mean; a ragged last block is reduced over its real cells.

    The max keeps what people look for in a long map (a first-token sink column, a
    previous-token diagonal, an induction stripe): one strong cell lights its whole block.
    The mean keeps the block's total attention (mean weight × cells), but washes such
    structures out.

    Shapes: a [..., Tq, Tk] -> [..., ceil(Tq/bq), ceil(Tk/bk)], float32.
    """
    if how not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {how!r}")
    a = np.asarray(a, dtype=np.float32)
    bk = bq if bk is None else bk
    *lead, tq, tk = a.shape
    nq, nk = -(-tq // bq), -(-tk // bk)
    if (nq * bq, nk * bk) != (tq, tk):  # ragged last blocks: pad with what changes nothing
        pad = np.full((*lead, nq * bq, nk * bk), -np.inf if how == "max" else 0.0, np.float32)
        pad[..., :tq, :tk] = a
        a = pad
    blocks = np.ascontiguousarray(a).reshape(*lead, nq, bq, nk, bk)  # a view, when it can
    if how == "max":
        return blocks.max(axis=(-3, -1))
    sums = blocks.sum(axis=(-3, -1), dtype=np.float64)  # [..., nq, nk], no float64 copy
    rows = np.minimum(bq, tq - np.arange(nq) * bq)  # real cells per block (ragged last)
    cols = np.minimum(bk, tk - np.arange(nk) * bk)
    return (sums / np.outer(rows, cols)).astype(np.float32)


def block_average(a: np.ndarray, bq: int, bk: int | None = None) -> np.ndarray:
    """Mean over bq×bk blocks (`block_reduce(..., how="mean")`)."""
    return block_reduce(a, bq, bk, how="mean")


def grid_title(style: Style, nq: int, nk: int, b: int, how: str) -> str:
    """What an overview's grid is: "126 × 126 blocks of 13 tokens (max)"."""
    return style.say("{nq} × {nk} blocks of {b} tokens ({how})", nq=nq, nk=nk, b=b,
                     how=style.say(how))


def block_labels(tokens: Sequence[object], b: int) -> list[str]:
    """One safe label per block: 'first–last: first token…'."""
    out = []
    for start in range(0, len(tokens), b):
        stop = min(start + b, len(tokens)) - 1
        head = safe_label(tokens[start])
        out.append(f"{start}–{stop}: {head}…" if stop > start else f"{start}: {head}")
    return out


def topk_per_row(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest keys of every query row, strongest first.

    Shapes: a [Tq, Tk] -> (indices int32 [Tq, k'], values float32 [Tq, k']), k' = min(k, Tk).
    """
    a = np.asarray(a, dtype=np.float32)
    k = min(int(k), a.shape[-1])
    part = np.argpartition(-a, k - 1, axis=-1)[:, :k]
    vals = np.take_along_axis(a, part, axis=-1)
    order = np.argsort(-vals, axis=-1, kind="stable")
    return (
        np.take_along_axis(part, order, axis=-1).astype(np.int32),
        np.take_along_axis(vals, order, axis=-1),
    )


def overview_figure(
    weights: np.ndarray,
    q_tokens: Sequence[object],
    k_tokens: Sequence[object] | None = None,
    *,
    max_cells: int = LONG_INPUT,
    how: str = "max",
    log: bool = False,
    style: Style = DEFAULT,
    title: str | None = None,
) -> go.Figure:
    """A long map reduced to at most max_cells × max_cells blocks (max by default, or mean),
    on a colour range fitted to the reduced values (linear from 0, or log10).

    Shapes: weights [Tq, Tk]; z of the figure [ceil(Tq/b), ceil(Tk/b)].
    Axis values are each block's first position; tick labels name the block's range.
    """
    from viz.figures.image_map import colour_range, log_ticks  # one rule for both views

    k_tokens = q_tokens if k_tokens is None else k_tokens
    weights = np.asarray(weights, dtype=np.float32)
    tq, tk = weights.shape
    b = max(block_size(tq, max_cells), block_size(tk, max_cells))
    z = block_reduce(weights, b, how=how)
    zmin, zmax = colour_range(z, style, log)
    fmt = f".{style.precision + 1}f"
    value = style.say(f"{how} weight")
    bar = dict(title=dict(text=value + (" (log)" if log else "")))
    shown = z
    if log:
        with np.errstate(divide="ignore"):
            shown = np.where(z > 0, np.log10(np.maximum(z, zmin)), np.nan)
        zmin, zmax = float(np.log10(zmin)), float(np.log10(zmax))
        bar["tickvals"], bar["ticktext"] = log_ticks(10 ** zmin, 10 ** zmax)
    # axis values are each block's first position: hover needs no per-cell strings
    fig = go.Figure(
        go.Heatmap(
            z=shown,
            customdata=z if log else None,
            x=np.arange(z.shape[1], dtype=np.int32) * b,
            y=np.arange(z.shape[0], dtype=np.int32) * b,
            colorscale=colorscale(style),
            zmin=zmin,
            zmax=zmax,
            colorbar=bar,
            hovertemplate=(
                f"queries %{{y}}… (block of {b})<br>keys %{{x}}… (block of {b})<br>"
                f"{value} %{{{'customdata' if log else 'z'}:{fmt}}}<extra></extra>"
            ),
        )
    )
    for axis, toks, name in ((fig.layout.xaxis, k_tokens, "key"),
                             (fig.layout.yaxis, q_tokens, "query")):
        labels = block_labels(toks, b)
        step = max(1, -(-len(labels) // 16))
        axis.update(
            tickmode="array", tickvals=[i * b for i in range(0, len(labels), step)],
            ticktext=[labels[i] for i in range(0, len(labels), step)],
            title=dict(text=style.say(f"{name} positions (blocks of {{b}})", b=b)),
            showgrid=False,
            range=[-b / 2, (len(labels) - 0.5) * b], autorange=False,
        )
    fig.layout.yaxis.range = fig.layout.yaxis.range[::-1]
    # square cells: the reader compares rows with columns
    fig.update_yaxes(scaleanchor="x", scaleratio=1, constrain="domain")
    fig.update_xaxes(constrain="domain")
    fig.update_layout(width=820, height=760)
    grid = grid_title(style, z.shape[0], z.shape[1], b, how)
    title = f"{style.say(title)} · {grid}" if title else grid
    return apply_style(fig, style, title)


def topk_figure(
    weights: np.ndarray,
    q_tokens: Sequence[object],
    k_tokens: Sequence[object] | None = None,
    *,
    k: int = 8,
    style: Style = DEFAULT,
    title: str | None = None,
) -> go.Figure:
    """Each query's k strongest keys as points (query down, key across), coloured by weight.

    Shapes: weights [Tq, Tk] -> one Scatter of Tq·k points (x, y int32; colour float32).
    """
    k_tokens = q_tokens if k_tokens is None else k_tokens
    weights = np.asarray(weights, dtype=np.float32)
    idx, val = topk_per_row(weights, k)
    tq, kk = idx.shape
    ys = np.repeat(np.arange(tq, dtype=np.int32), kk)
    xs = idx.reshape(-1)
    zmin, zmax = value_range([val], style)
    qlab = np.asarray([safe_label(t) for t in q_tokens], dtype=object)
    klab = np.asarray([safe_label(t) for t in k_tokens], dtype=object)
    custom = np.stack([qlab[ys], klab[xs]], axis=1) if tq * kk <= 4096 else None
    hover = (
        "q %{y} %{customdata[0]}<br>k %{x} %{customdata[1]}"
        if custom is not None else "q %{y}<br>k %{x}"
    )
    fig = go.Figure(
        go.Scatter(
            x=xs, y=ys, mode="markers", customdata=custom,
            marker=dict(
                color=val.reshape(-1), colorscale=colorscale(style), cmin=zmin, cmax=zmax,
                size=4, symbol="square", showscale=True,
                colorbar=dict(title=dict(text=style.say("weight"))),
            ),
            hovertemplate=hover
            + f"<br>weight %{{marker.color:.{style.precision}f}}<extra></extra>",
        )
    )
    fig.update_xaxes(title=dict(text=style.say("key position")),
                     range=[-0.5, weights.shape[1] - 0.5],
                     showgrid=False, zeroline=False)
    fig.update_yaxes(title=dict(text=style.say("query position")), range=[tq - 0.5, -0.5],
                     showgrid=False, zeroline=False)
    title = title or style.say("Top {k} keys per query ({tq} queries)", k=kk, tq=tq)
    return apply_style(fig, style, title)
