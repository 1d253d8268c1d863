"""The head view of one query of a long input (> ~128 tokens): BertViz-style lines (see
head_view.py) from the query to the keys in a window around it and to its strongest keys
outside the window, each shown key a labelled row, the keys left out between them drawn as
gap rows ("… 1,203 tokens …") so the reader sees where the far keys sit.

Drawing every token of a 2,048-token text is 2,048 labels per side, a grey smear; this view
keeps at most key_selection.MAX_SHOWN labels per side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.figures.head_view import X_LEFT, X_RIGHT, add_line_traces, checked_maps
from viz.figures.key_selection import KeySelection, select_keys
from viz.style import DEFAULT, Style, apply_style, head_color, number_format, safe_labels

ROW_PX = 22  # height of one row: the labels stay one line apart at the default font
GAP_COLOR = "#707070"


def head_view_query(
    weights: np.ndarray,
    q_tokens: Sequence[object],
    k_tokens: Sequence[object] | None = None,
    *,
    query: int,
    heads: Sequence[int] | None = None,
    half_width: int = 24,
    k: int = 8,
    min_weight: float = 0.02,
    title: str | None = None,
    style: Style = DEFAULT,
) -> go.Figure:
    """Lines from one query (left) to the keys shown for it (right): the window
    center ± half_width and the query's k strongest keys outside it (a key's strength: its
    largest weight among `heads`). The window is around the query in self-attention
    (Tq == Tk), otherwise around the query's strongest key; it looks back from a causal
    query (see `key_selection.select_keys`). Lines below min_weight are dropped, as in
    `head_view`; the left column shows the queries of the window's positions.

    Shapes: weights [H, Tq, Tk] (or one head [Tq, Tk]); heads: indices into H (default
    [0]). Every line's weight is weights[h, query, key] itself.
    """
    weights, k_tokens = checked_maps(weights, q_tokens, k_tokens)
    n_heads, tq, tk = weights.shape
    if not 0 <= query < tq:
        raise ValueError(f"query {query} outside 0..{tq - 1}")
    heads = [0] if not heads else list(heads)
    if not all(0 <= h < n_heads for h in heads):
        raise ValueError(f"heads {heads} outside 0..{n_heads - 1}")
    rows_w = weights[heads, query]  # [n_sel, Tk]
    center = query if tq == tk else int(np.argmax(rows_w.max(axis=0)))
    sel = select_keys(rows_w, query, half_width=half_width, k=k, center=center)
    rows = sel.rows()
    row_of = sel.row_of()
    y_key = -np.array([row_of[p] for p in sel.keys.tolist()], dtype=np.int32)  # [N]
    # the left column: the queries of the key window's range, moved by query - center (none
    # in self-attention), so each query sits level with its own key and the query with its
    # centre key
    lo, hi = sel.window
    q_pos = np.arange(max(0, lo + query - center), min(tq, hi + query - center),
                      dtype=np.int32)
    y_query = -(row_of[center] + (q_pos - query)).astype(np.int32)
    y_q = int(-row_of[center])

    fig = go.Figure()
    n_sel = len(heads)
    for j, h in enumerate(heads):
        w = rows_w[j, sel.keys]
        keep = w >= min_weight
        order = np.argsort(-w[keep], kind="stable")  # heaviest first, as select_lines
        dx = (j - (n_sel - 1) / 2) * 0.012
        add_line_traces(fig, np.full(int(keep.sum()), y_q), y_key[keep][order], w[keep][order],
                        color=head_color(h), dx=dx, min_weight=min_weight,
                        name=style.say("head {h}", h=h), group=f"head {h}")

    qlab, klab = safe_labels(q_tokens), safe_labels(k_tokens)
    fig.add_trace(
        go.Scatter(
            x=np.full(q_pos.shape, X_LEFT, dtype=np.float32), y=y_query, mode="text",
            text=[f"<b>{p}: {qlab[p]}</b>" if p == query else qlab[p] for p in q_pos.tolist()],
            textposition="middle left", customdata=[f"{p}: {qlab[p]}" for p in q_pos.tolist()],
            hovertemplate="query %{customdata}<extra></extra>", showlegend=False,
        )
    )
    fmt = number_format(style)
    custom = np.concatenate(
        [np.asarray([f"{p}: {klab[p]}" for p in sel.keys.tolist()], dtype=object)[:, None],
         rows_w[:, sel.keys].T.astype(object)], axis=1)  # [N, 1 + n_sel]
    strong = set(sel.strongest.tolist())
    fig.add_trace(
        go.Scatter(
            x=np.full(sel.keys.shape, X_RIGHT, dtype=np.float32), y=y_key, mode="text",
            # a far key names its position: the gap rows say how far, this says where
            text=[f"<b>{p}: {klab[p]}</b>" if p in strong else klab[p]
                  for p in sel.keys.tolist()],
            textposition="middle right", customdata=custom, showlegend=False,
            hovertemplate="key %{customdata[0]}" + "".join(
                f"<br>head {h}: %{{customdata[{j + 1}]:{fmt}}}" for j, h in enumerate(heads))
            + "<extra></extra>",
        )
    )
    gaps = [(i, a, b) for i, (kind, a, b) in enumerate(rows) if kind == "gap"]
    if gaps:
        fig.add_trace(
            go.Scatter(
                x=np.full(len(gaps), X_RIGHT, dtype=np.float32),
                y=-np.array([i for i, _, _ in gaps], dtype=np.int32), mode="text",
                text=[style.say("… {n} tokens …", n=f"{b - a:,}") for _, a, b in gaps],
                textposition="middle right",
                textfont=dict(color=GAP_COLOR, size=max(8, style.font_size - 2)),
                customdata=[f"{a}–{b - 1}" for _, a, b in gaps], showlegend=False,
                hovertemplate="keys %{customdata} not shown<extra></extra>",
            )
        )
    top = max(0, int(y_query.max()))  # row 0 is y = 0; rows go down
    bottom = min(-(len(rows) - 1), int(y_query.min()))
    n_rows = top - bottom + 1
    fig.update_xaxes(visible=False, range=[-0.9, 1.9])
    fig.update_yaxes(visible=False, range=[bottom - 0.5, top + 0.8])
    fig.update_layout(
        width=640, height=int(max(300, ROW_PX * n_rows + 190)),
        legend=dict(orientation="h", y=1.0, x=0.5, xanchor="center", yanchor="bottom"),
        hovermode="closest",
    )
    apply_style(fig, style, title)
    if style.show_title:
        fig.update_layout(title_subtitle_text=describe(sel, rows_w, heads, q_tokens, style),
                          margin=dict(t=150))
    return fig


def describe(sel: KeySelection, rows_w: np.ndarray, heads: Sequence[int],
             q_tokens: Sequence[object], style: Style) -> str:
    """The subtitle: which query, which keys of how many, and the weight the shown keys
    hold in each head (what the lines cannot show is the rest)."""
    lo, hi = sel.window
    shares = ", ".join(f"H{h} {float(rows_w[j, sel.keys].sum()):.0%}"
                       for j, h in enumerate(heads))
    label = safe_labels([q_tokens[sel.query]])[0]
    return (style.say("query {q}: {token} · keys {a}–{b} and its {k} strongest keys of {n}",
                      q=sel.query, token=label, a=lo, b=hi - 1, k=len(sel.strongest),
                      n=f"{sel.n_keys:,}")
            + "<br>" + style.say("weight on the shown keys: {shares}", shares=shares))


__all__ = ["head_view_query"]
