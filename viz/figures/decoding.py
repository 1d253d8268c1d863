"""Generation, one step at a time: a decoding step's decoder self-attention row and
cross-attention row (Vaswani et al., 2017, §3.2.3), and next-token probabilities before
and after an ablation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.figures.heatmap import heatmap_trace
from viz.style import DEFAULT, Style, apply_style, colorscale, safe_labels, token_axis, value_range


def step_figure(
    self_row: np.ndarray,
    cross_row: np.ndarray | None,
    decoder_tokens: Sequence[object],
    source_tokens: Sequence[object] | None,
    *,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """One decoding step: heads (down) × keys (across) for the decoder self-attention row
    and, for an encoder-decoder, the cross-attention row.

    Shapes: self_row [H, i+1] (keys = decoder_tokens[: i+1]); cross_row [H, S]
    (keys = source_tokens). Each panel has its own colour bar (rows sum to 1 in both).
    """
    self_row = np.asarray(self_row, np.float32)
    n_heads, n_self = self_row.shape
    if len(decoder_tokens) != n_self:
        raise ValueError(f"{len(decoder_tokens)} decoder tokens for {n_self} keys")
    panels = 1 if cross_row is None else 2
    widths = [max(n_self, 3), max(len(source_tokens or []), 3)][:panels]
    fig = make_subplots(rows=1, cols=panels, column_widths=widths, horizontal_spacing=0.12,
                        subplot_titles=(style.say("decoder self-attention (keys so far)"),
                                        style.say("cross-attention (source keys)"))[:panels])
    heads = [f"H{h}" for h in range(n_heads)]
    zmin, zmax = value_range([self_row] + ([] if cross_row is None else [cross_row]), style)
    fig.add_trace(heatmap_trace(self_row, heads, decoder_tokens, style=style, zmin=zmin,
                                zmax=zmax, coloraxis="coloraxis"), row=1, col=1)
    fig.update_xaxes(token_axis(decoder_tokens, 64), row=1, col=1)
    fig.update_yaxes(token_axis(heads), autorange="reversed", row=1, col=1)
    if cross_row is not None:
        cross_row = np.asarray(cross_row, np.float32)
        if len(source_tokens or []) != cross_row.shape[1]:
            raise ValueError(f"{len(source_tokens or [])} source tokens for "
                             f"{cross_row.shape[1]} keys")
        fig.add_trace(heatmap_trace(cross_row, heads, source_tokens, style=style, zmin=zmin,
                                    zmax=zmax, coloraxis="coloraxis"), row=1, col=2)
        fig.update_xaxes(token_axis(source_tokens, 64), row=1, col=2)
        fig.update_yaxes(token_axis(heads), autorange="reversed", row=1, col=2)
    fig.update_layout(coloraxis=dict(colorscale=colorscale(style), cmin=zmin, cmax=zmax,
                                     colorbar=dict(title=dict(text=style.say("weight")))),
                      width=int(min(1200, 40 * (sum(widths)) + 360)),
                      height=int(28 * n_heads + 220))
    return apply_style(fig, style, title)


def topk_compare_figure(before: Sequence[tuple[str, float]],
                        after: Sequence[tuple[str, float]], *, title: str | None = None,
                        style: Style = DEFAULT) -> go.Figure:
    """Next-token probabilities of the intact model's top tokens, before and after an
    ablation (tokens the ablated model ranks high but the intact one does not are added)."""
    b, a = dict(before), dict(after)
    tokens = list(dict.fromkeys([t for t, _ in before] + [t for t, _ in after]))
    labels = safe_labels(tokens)
    fig = go.Figure([
        go.Bar(x=labels, y=np.asarray([b.get(t, np.nan) for t in tokens], np.float32),
               name=style.say("intact"), marker_color="#0072B2"),
        go.Bar(x=labels, y=np.asarray([a.get(t, np.nan) for t in tokens], np.float32),
               name=style.say("heads off"), marker_color="#E69F00"),
    ])
    fig.update_layout(barmode="group", width=720, height=360,
                      legend=dict(orientation="h", y=1.1))
    fig.update_yaxes(title=dict(text=style.say("probability (missing bar: not in that top-k)")),
                     rangemode="tozero")
    return apply_style(fig, style, title)
