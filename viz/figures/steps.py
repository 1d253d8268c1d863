"""Figures of the step-by-step self-attention lesson (seeds/001 §2; Vaswani et al., 2017, §3.2).

Pure builders: numpy arrays and labels in, `plotly.graph_objects.Figure` out. Every matrix is
drawn with its numbers written in the cells, because the lesson is about the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.style import DEFAULT, Style, apply_style, colorscale, head_color, safe_label, safe_labels


def fmt(value: float, precision: int) -> str:
    """`precision` significant digits, trailing zeros dropped: 16 → '16', 6.0337e-06 → '6.03e-06'
    (precision 3). Large and tiny numbers switch to exponent form, as torch prints them."""
    if not np.isfinite(value):
        return "−∞" if value < 0 else ("∞" if value > 0 else "NaN")
    text = f"{value:.{precision}g}"
    return "0" if text in ("-0", "0") else text


def cell_text(z: np.ndarray, precision: int) -> list[list[str]]:
    """`fmt` over a 2-D array. Shape [R, C] → R lists of C strings."""
    return [[fmt(float(v), precision) for v in row] for row in np.asarray(z, dtype=np.float64)]


def _matrix_trace(z, rows, cols, style: Style, diverging: bool, value_name: str, **kw):
    z = np.asarray(z, dtype=np.float64)
    finite = z[np.isfinite(z)]
    if diverging:
        m = float(np.abs(finite).max()) if finite.size else 1.0
        scale, zmin, zmax = colorscale(style, "puor"), -max(m, 1e-12), max(m, 1e-12)
    else:
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
        scale, zmin, zmax = colorscale(style), min(lo, 0.0), max(hi, lo + 1e-12)
    text = cell_text(z, style.precision)
    custom = np.empty(z.shape + (2,), dtype=object)
    custom[..., 0] = np.asarray(rows, dtype=object)[:, None]
    custom[..., 1] = np.asarray(cols, dtype=object)[None, :]
    return go.Heatmap(
        z=z.astype(np.float32),
        x=list(range(z.shape[1])),
        y=list(range(z.shape[0])),
        text=text,
        texttemplate="%{text}",
        customdata=custom,
        hovertemplate=f"%{{customdata[0]}} · %{{customdata[1]}}<br>{value_name} %{{text}}"
        "<extra></extra>",
        colorscale=scale,
        zmin=zmin,
        zmax=zmax,
        **kw,
    )


def matrix_figure(
    z: np.ndarray,
    row_labels: Sequence[object] | None = None,
    col_labels: Sequence[object] | None = None,
    *,
    title: str | None = None,
    value_name: str = "value",
    style: Style = DEFAULT,
    diverging: bool = False,
    showscale: bool = False,
) -> go.Figure:
    """One matrix as a heatmap with its numbers in the cells (`style.precision` digits).

    Shapes: z [R, C]; row_labels len R, col_labels len C (default: 1-based indices).
    Row 0 is at the top, as the matrix is written.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"matrix_figure takes a matrix, got shape {z.shape}")
    r, c = z.shape
    rows = safe_labels(row_labels if row_labels is not None else range(1, r + 1))
    cols = safe_labels(col_labels if col_labels is not None else range(1, c + 1))
    if len(rows) != r or len(cols) != c:
        raise ValueError(f"{len(rows)} row and {len(cols)} column labels for a {r}×{c} matrix")
    fig = go.Figure(_matrix_trace(z, rows, cols, style, diverging, value_name,
                                  showscale=showscale))
    fig.update_xaxes(tickmode="array", tickvals=list(range(c)), ticktext=cols, side="top",
                     showgrid=False, zeroline=False, ticks="")
    fig.update_yaxes(tickmode="array", tickvals=list(range(r)), ticktext=rows,
                     autorange="reversed", showgrid=False, zeroline=False, ticks="")
    fig.update_layout(height=int(70 + 42 * r + (30 if title else 0)),
                      margin=dict(l=10, r=10, t=60 if title else 30, b=10))
    return apply_style(fig, style, title)


def heads_figure(
    weights: np.ndarray,
    tokens: Sequence[object],
    *,
    head_names: Sequence[str] | None = None,
    value_name: str = "weight",
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """Per-head attention weights side by side, numbers in the cells, one colour range (0..1).

    Shapes: weights [H, Tq, Tk]; tokens len Tq (= Tk: self-attention).
    """
    weights = np.asarray(weights, dtype=np.float64)
    h, tq, tk = weights.shape
    labels = safe_labels(tokens)
    if len(labels) != tq or tq != tk:
        raise ValueError(f"{len(labels)} tokens for [{h}, {tq}, {tk}] weights")
    names = list(head_names) if head_names is not None else [f"head {i + 1}" for i in range(h)]
    fig = make_subplots(rows=1, cols=h, subplot_titles=safe_labels(names),
                        horizontal_spacing=0.08)
    for i in range(h):
        trace = _matrix_trace(weights[i], labels, labels, style, False, safe_label(value_name),
                              showscale=i == h - 1)
        trace.update(zmin=0.0, zmax=1.0)
        fig.add_trace(trace, row=1, col=i + 1)
        fig.update_xaxes(tickmode="array", tickvals=list(range(tk)), ticktext=labels,
                         showgrid=False, zeroline=False, row=1, col=i + 1)
        fig.update_yaxes(tickmode="array", tickvals=list(range(tq)), ticktext=labels,
                         autorange="reversed", showgrid=False, zeroline=False,
                         showticklabels=i == 0, row=1, col=i + 1)
    fig.update_layout(height=int(140 + 50 * tq))
    return apply_style(fig, style, title)


def weighted_sum_figure(
    weighted: np.ndarray,
    output: np.ndarray,
    key_labels: Sequence[object],
    *,
    dim_labels: Sequence[object] | None = None,
    output_name: str = "output = sum",
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """One query's output as the sum of its weighted value vectors: stacked bars per dimension
    (one colour per key), with the output marked on top.

    Shapes: weighted [Tk, d_v] (row i = weight_i · v_i); output [d_v] (= weighted.sum(0)).
    """
    weighted = np.asarray(weighted, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    tk, d = weighted.shape
    if output.shape != (d,) or len(key_labels) != tk:
        raise ValueError(f"weighted [{tk}, {d}], output {output.shape}, {len(key_labels)} keys")
    dims = safe_labels(dim_labels if dim_labels is not None else [f"d{j + 1}" for j in range(d)])
    fig = go.Figure()
    span = float(np.abs(weighted).sum(0).max()) or 1.0
    for i, label in enumerate(safe_labels(key_labels)):
        values = [fmt(v, style.precision) for v in weighted[i]]
        fig.add_trace(go.Bar(
            x=dims, y=weighted[i], name=label, marker_color=head_color(i),
            customdata=values,
            # label only segments tall enough to hold their number
            text=[t if abs(v) >= 0.08 * span else "" for t, v in zip(values, weighted[i],
                                                                      strict=True)],
            textposition="inside", insidetextanchor="middle",
            hovertemplate=f"{label}<br>%{{x}}: %{{customdata}}<extra></extra>",
        ))
    fig.add_trace(go.Scatter(
        x=dims, y=output, mode="markers+text", name=safe_label(output_name),
        marker=dict(symbol="diamond", size=12, color="#000000"),
        text=[fmt(v, style.precision) for v in output], textposition="top center",
        hovertemplate=f"{safe_label(output_name)}<br>%{{x}}: %{{text}}<extra></extra>",
    ))
    top = float(max(np.clip(weighted, 0, None).sum(0).max(), output.max(), 0.0))
    bottom = float(min(np.clip(weighted, None, 0).sum(0).min(), output.min(), 0.0))
    pad = 0.15 * ((top - bottom) or 1.0)
    fig.update_yaxes(range=[bottom - (pad if bottom < 0 else 0), top + pad])
    fig.update_layout(barmode="relative", height=360, legend=dict(orientation="h", y=-0.15))
    return apply_style(fig, style, title)


def compare_outputs_figure(
    exact: np.ndarray,
    other: np.ndarray,
    row_labels: Sequence[object],
    *,
    names: tuple[str, str] = ("exact", "seed (rounded weights)"),
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """Two versions of the same outputs, grouped bars per dimension, one panel per row.

    Shapes: exact, other [T, d].
    """
    exact = np.asarray(exact, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if exact.shape != other.shape:
        raise ValueError(f"outputs {exact.shape} and {other.shape} differ")
    t, d = exact.shape
    rows = safe_labels(row_labels)
    fig = make_subplots(rows=1, cols=t, subplot_titles=rows, shared_yaxes=True)
    dims = [f"d{j + 1}" for j in range(d)]
    for i in range(t):
        for j, (name, m) in enumerate(zip(names, (exact, other), strict=True)):
            fig.add_trace(go.Bar(
                x=dims, y=m[i], name=safe_label(name), marker_color=head_color(j),
                legendgroup=name, showlegend=i == 0,
                text=[fmt(v, style.precision) for v in m[i]], textposition="outside",
                hovertemplate=f"{safe_label(name)}<br>%{{x}}: %{{text}}<extra></extra>",
            ), row=1, col=i + 1)
    hi = float(max(exact.max(), other.max(), 0.0))
    lo = float(min(exact.min(), other.min(), 0.0))
    fig.update_yaxes(range=[lo - 0.15 * (hi - lo or 1.0) * (lo < 0), hi + 0.15 * (hi - lo or 1.0)])
    fig.update_layout(barmode="group", height=360, legend=dict(orientation="h", y=-0.15))
    return apply_style(fig, style, title)


__all__ = [
    "cell_text",
    "compare_outputs_figure",
    "fmt",
    "heads_figure",
    "matrix_figure",
    "weighted_sum_figure",
]
