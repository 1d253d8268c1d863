"""The Attention page's two per-query views: the head view (lines from each query to the keys
it weighs) and Q·K (one query's scores against every key, before and after softmax)."""

from __future__ import annotations

import streamlit as st

from app_pages.attention.text import ATTENTION_TEXT
from app_pages.attention.view import AttentionView
from app_pages.shared.download import figure_with_download
from app_pages.shared.figure_words import block_label
from app_pages.shared.i18n import translator
from app_pages.shared.models import attend
from app_pages.shared.widget_state import choose_placeholder, keep_subset, keep_valid
from viz.figures.head_view import head_view
from viz.figures.qk_view import qk_view

say = translator(ATTENTION_TEXT)


def explained(key: str) -> str:
    """The explanation `key` shown beside a figure."""
    return say(key)


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
    fig = head_view(weights, q_tok, k_tok, heads=heads or [head], query=query,
                    min_weight=min_w, style=style, title=block_label(style, key))
    # room for the lines: ~26 px per token row (the builder's default is tighter)
    fig.update_layout(height=int(min(2400, max(fig.layout.height or 0,
                                               26 * max(weights.shape[1:]) + 160))))
    figure_with_download(fig, "attn_lines", "dl_lines", record=rec, block=kind, layer=layer,
                         explanation=explained("ex_lines"), width="content")


def qk_tab(page: AttentionView) -> None:
    """One query's scores q·k against every key, before and after softmax."""
    name, settings, style, cfg, text = page.name, page.settings, page.style, page.cfg, page.text
    base, kind, layer, head, key = page.base, page.kind, page.layer, page.head, page.key
    q_tok, k_tok = page.q_tok, page.k_tok
    keep_valid("attn_qk_query", list(range(len(q_tok))), min(len(q_tok) - 1, 10))
    query = st.selectbox(say("query"), list(range(len(q_tok))), key="attn_qk_query",
                         format_func=lambda i: f"{i}: {q_tok[i]}")
    # Maps only: the pass stops at this layer (its outputs are shown by the main record).
    rec_qk = attend(name, settings.device, text, scores=True, qk=True, layers=[key],
                    outputs=False, **base)
    fig = qk_view(rec_qk.q[key], rec_qk.k[key], query, k_tok, q_tok, head=head,
                  scores=rec_qk.scores[key], weights=rec_qk[key], scale=cfg.scale,
                  style=style, title=style.say(
                      "{key} · head {head} · query {query}", key=block_label(style, key),
                      head=head, query=query))
    figure_with_download(fig, "attn_qk", "dl_qk", record=rec_qk, block=kind, layer=layer,
                         head=head, explanation=explained("ex_qk"), width="content")
