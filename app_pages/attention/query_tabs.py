"""The Attention page's two per-query views: the head view (lines from each query to the keys
it weighs) and Q·K (one query's scores against every key, before and after softmax).

A long input (> viz.LONG_INPUT tokens) gets one query at a time, drawn over a selection of
keys (a window around the query and its strongest keys, the rest marked as gaps): 2,048
labels or bars per figure are a grey smear and seconds of browser time."""

from __future__ import annotations

import streamlit as st

from app_pages.attention.long_layers import qk_record
from app_pages.attention.text import ATTENTION_TEXT
from app_pages.attention.view import AttentionView
from app_pages.shared.download import figure_with_download
from app_pages.shared.figure_words import block_label
from app_pages.shared.i18n import translator
from app_pages.shared.models import attend
from app_pages.shared.timing import timed
from app_pages.shared.widget_state import (
    choose_placeholder,
    keep_in_range,
    keep_subset,
    keep_valid,
    persist,
)
from viz.figures.head_view import head_view
from viz.figures.head_view_query import head_view_query
from viz.figures.qk_view import qk_view
from viz.figures.qk_view_query import qk_view_query

say = translator(ATTENTION_TEXT)

# A long input's controls: (key, lowest, highest, default). At their highest, window and k
# stay within MAX_SHOWN labels per side (2·30 + 1 + 16 = 77; 2·12 + 1 + 48 = 73), so the
# figures never refuse a choice (tests/app/test_app_long_query_views.py checks the sums).
LINES_HALF, LINES_K = ("attn_lines_half", 4, 30, 24), ("attn_lines_k", 0, 16, 8)
QK_HALF, QK_K = ("attn_qk_half", 0, 12, 8), ("attn_qk_k", 1, 48, 32)
LONG_KEYS = ("attn_lines_long_query", "attn_qk_long_query", LINES_HALF[0], LINES_K[0],
             QK_HALF[0], QK_K[0])


def explained(key: str) -> str:
    """The explanation `key` shown beside a figure."""
    return say(key)


def default_query(kind: str, n: int) -> int:
    """The query a long input's per-query views open on. A decoder block's last token: it
    is the one predicting the next token, and a causal query there reads every key. An
    encoder's middle token: a window around it is full on both sides, away from [CLS] and
    [SEP], which draw much of a BERT head's weight."""
    return n - 1 if kind.startswith("decoder") else n // 2


def slider(spec: tuple[str, int, int, int], label: str) -> int:
    """An integer slider over spec's range, its value kept in range across reruns."""
    key, lo, hi, default = spec
    keep_in_range(key, lo, hi, default)
    return int(st.slider(say(label), lo, hi, key=key))


def query_picker(key: str, page: AttentionView) -> int:
    """A long input's query (a selectbox of every position, opening on `default_query`)."""
    n = len(page.q_tok)
    keep_valid(key, list(range(n)), default_query(page.kind, n))
    return st.selectbox(say("query"), list(range(n)), key=key,
                        format_func=lambda i: f"{i}: {page.q_tok[i]}")


def lines_tab(page: AttentionView) -> None:
    """The head view: lines from each query to the keys it weighs, for chosen heads."""
    style, kind, layer, head, key = page.style, page.kind, page.layer, page.head, page.key
    rec, weights, q_tok, k_tok = page.rec, page.weights, page.q_tok, page.k_tok
    lc = st.columns([2, 2, 1])
    keep_subset("attn_lines_heads", list(range(weights.shape[0])), [head])
    with lc[0]:
        heads = st.multiselect(say("heads"), list(range(weights.shape[0])),
                               placeholder=choose_placeholder(),
                               key="attn_lines_heads", format_func=lambda h: f"H{h}")
    if page.long:
        persist(LONG_KEYS)  # this tab's own keys: the page's persist list predates them
        with lc[1]:
            query = query_picker("attn_lines_long_query", page)
    else:
        queries = [None] + list(range(weights.shape[1]))
        if weights.shape[1] > 64:
            queries = queries[1:]
        keep_valid("attn_lines_query", queries)
        with lc[1]:
            query = st.selectbox(say("query"), queries, key="attn_lines_query",
                                 format_func=lambda i: say("all_queries") if i is None
                                 else f"{i}: {q_tok[i]}")
    with lc[2]:
        st.session_state.setdefault("attn_lines_min", 0.05)
        min_w = st.slider(say("min_weight"), 0.0, 0.5, step=0.01,
                          key="attn_lines_min")
    if page.long:
        wc = st.columns(2)
        with wc[0]:
            half = slider(LINES_HALF, "lines_half")
        with wc[1]:
            k = slider(LINES_K, "lines_k")
        # the figure sizes itself to the rows it shows (at most ~100 with the gap rows)
        fig = head_view_query(weights, q_tok, k_tok, query=query, heads=heads or [head],
                              half_width=half, k=k, min_weight=min_w, style=style,
                              title=block_label(style, key))
        explanation = explained("ex_lines_long")
    else:
        fig = head_view(weights, q_tok, k_tok, heads=heads or [head], query=query,
                        min_weight=min_w, style=style, title=block_label(style, key))
        # room for the lines: ~26 px per token row (the builder's default is tighter)
        fig.update_layout(height=int(min(2400, max(fig.layout.height or 0,
                                                   26 * max(weights.shape[1:]) + 160))))
        explanation = explained("ex_lines")
    figure_with_download(fig, "attn_lines", "dl_lines", record=rec, block=kind, layer=layer,
                         explanation=explanation, width="content")


def qk_tab(page: AttentionView) -> None:
    """One query's scores q·k against every key, before and after softmax."""
    name, settings, style, cfg, text = page.name, page.settings, page.style, page.cfg, page.text
    base, kind, layer, head, key = page.base, page.kind, page.layer, page.head, page.key
    q_tok, k_tok = page.q_tok, page.k_tok
    if page.long:
        persist(LONG_KEYS)
        qc = st.columns([2, 1, 1])
        with qc[0]:
            query = query_picker("attn_qk_long_query", page)
        with qc[1]:
            top_k = slider(QK_K, "qk_k")
        with qc[2]:
            half = slider(QK_HALF, "qk_half")
    else:
        keep_valid("attn_qk_query", list(range(len(q_tok))), min(len(q_tok) - 1, 10))
        query = st.selectbox(say("query"), list(range(len(q_tok))), key="attn_qk_query",
                             format_func=lambda i: f"{i}: {q_tok[i]}")
    # Maps only: the background pass's q and k for a long input, else a pass that stops at
    # this layer (its outputs are shown by the main record).
    with timed("engine pass", what="qk"):
        rec_qk = (qk_record(name, settings.device, text, page.kind, key, **base) if page.long
                  else attend(name, settings.device, text, scores=True, qk=True, layers=[key],
                              outputs=False, **base))
    title = style.say("{key} · head {head} · query {query}", key=block_label(style, key),
                      head=head, query=query)
    if page.long:
        fig = qk_view_query(rec_qk.q[key], rec_qk.k[key], query, k_tok, q_tok, head=head,
                            scores=rec_qk.scores[key], weights=rec_qk[key], scale=cfg.scale,
                            top_k=top_k, half_width=half, style=style, title=title)
        explanation = explained("ex_qk_long")
    else:
        fig = qk_view(rec_qk.q[key], rec_qk.k[key], query, k_tok, q_tok, head=head,
                      scores=rec_qk.scores[key], weights=rec_qk[key], scale=cfg.scale,
                      style=style, title=title)
        explanation = explained("ex_qk")
    figure_with_download(fig, "attn_qk", "dl_qk", record=rec_qk, block=kind, layer=layer,
                         head=head, explanation=explanation, width="content")
