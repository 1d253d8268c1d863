"""The Contributions tab (issue 15): beside where a head looks, what it moves.

The chosen head's weights, its norm map and the layer's flow map side by side on linked axes
(the residual's share as its own column), flow across layers into one output token, and for
decoders the logit lens. The numbers come from the engine (`attend(..., contributions=True)`,
engine/contributions.py) in a cached pass that records the chosen layer only; the figures
from viz/figures/contributions.py. Long inputs get the Head tab's overview / top-k / window,
and read the background pass's streams (long_layers): the chosen layer runs alone, and the
logit lens needs no pass of its own.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import streamlit as st

from app_pages.attention.long_layers import pass_lens, replayable, resumed_at
from app_pages.attention.passes import ROLLOUT_MAX, flow_through_layers
from app_pages.attention.text import ATTENTION_TEXT, CONTRIBUTIONS_TEXT
from app_pages.shared import result_cache
from app_pages.shared.download import figure_with_download
from app_pages.shared.i18n import translator
from app_pages.shared.models import attend
from app_pages.shared.numbers import frame
from app_pages.shared.result_cache import byte_cached
from app_pages.shared.timing import timed
from app_pages.shared.widget_state import keep_in_range, keep_valid
from viz.figures.contributions import (
    contributions_figure,
    contributions_overview,
    contributions_topk,
    flow_across_figure,
    logit_lens_figure,
    panel_names,
)
from viz.figures.long_input import LONG_INPUT

say = translator(CONTRIBUTIONS_TEXT)
say_page = translator(ATTENTION_TEXT)  # the long views' names, shared with the Head tab

CONTRIB_WINDOW = LONG_INPUT  # the zoom window's side: every cell's hover holds three numbers
LONG_VIEWS = ("v_overview", "v_topk", "v_window")  # ATTENTION_TEXT's names for them


def from_pass(page) -> bool:
    """Whether this long input's layers come from the shared background pass."""
    return page.long and replayable(page.model, page.kind, page.base.get("generate", 0))


def contributions_record(name: str, device: str, text: str, kind: str, key: str,
                         replay: bool, **base):
    """The chosen layer's weights, norm and flow maps: one cached maps-only pass that records
    `key` alone and stops after that layer; with `replay` (a long input the background pass
    covers), that layer alone, started from the stream the pass kept."""
    with st.spinner(say("computing", block=key)), timed("engine pass", what="contributions"):
        options = dict(layers=[key], contributions=True, outputs=False)
        if replay:
            rec = resumed_at(name, device, text, kind, key, **options)
            if rec is not None:
                return rec
        return attend(name, device, text, **options, **base)


@dataclasses.dataclass(frozen=True)
class HeadContributions:
    """What the tab draws of one head: its weights and norm maps [Tq, Tk], the layer's flow
    map [Tq, Tk + 1] (the last column the residual's share), axis labels and raw tokens."""

    weights: np.ndarray
    norm: np.ndarray
    flow: np.ndarray
    q_lab: list
    k_lab: list
    q_tok: list
    k_tok: list


def of_head(crec, key: str, head: int, copy: bool = False) -> HeadContributions:
    pick = np.array if copy else np.asarray  # a copy lets the whole record's buffers go
    return HeadContributions(pick(crec[key][head]), pick(crec[f"norm.{key}"][head]),
                             pick(crec[f"flow.{key}"]), *crec.axis_labels(key),
                             *crec.axis_tokens(key))


@byte_cached("head contributions")
def head_contributions(name: str, device: str, text: str, kind: str, key: str, head: int,
                       replay: bool, **base) -> HeadContributions:
    """One head's share of a layer record too big for the result cache, copied out of it."""
    return of_head(contributions_record(name, device, text, kind, key, replay, **base), key,
                   head, copy=True)


def chosen_head(page) -> HeadContributions:
    """The chosen head's maps. A layer's record (every head's weights and norm maps, the flow
    map) is cached whole, so another head costs nothing, unless it would not fit the result
    cache at all (Gemma's layer at 8,000 tokens: 2.3 GB): then the chosen head's maps are kept
    (768 MB), and a rerun for the same head (another view, position or tab) is not a pass."""
    args = (page.name, page.settings.device, page.text, page.kind, page.key)
    replay = from_pass(page)
    layer_bytes = 2 * page.weights.nbytes + page.weights[0].nbytes
    if result_cache.keeps(layer_bytes):
        return of_head(contributions_record(*args, replay, **page.base), page.key, page.head)
    return head_contributions(*args, page.head, replay, **page.base)


def contributions_table(weights: np.ndarray, norm: np.ndarray, flow: np.ndarray,
                        q_tokens: list, k_tokens: list):
    """Tidy rows behind the three maps (built only when a download asks for it): query and
    key index and raw token, weight, norm, flow share, and the query's residual share."""
    def build():
        tq, tk = weights.shape
        qi, ki = np.repeat(np.arange(tq), tk), np.tile(np.arange(tk), tq)
        return frame({"query_index": qi, "query_token": np.asarray(q_tokens, object)[qi],
                      "key_index": ki, "key_token": np.asarray(k_tokens, object)[ki],
                      "weight": weights.reshape(-1), "norm": norm.reshape(-1),
                      "flow": flow[:, :tk].reshape(-1), "residual_share": flow[qi, tk]})

    return build


def maps_figure(page, w: np.ndarray, norm: np.ndarray, flow: np.ndarray, q_lab: list,
                k_lab: list, q_tok: list, k_tok: list):
    """The side-by-side figure; a long map offers the overview, top-k and a window."""
    names = panel_names(say("p_weight"), say("p_norm"), say("p_flow"), say("p_residual"))
    title = f"{page.key} · head {page.head}"
    style = page.style
    if max(w.shape) <= LONG_INPUT:
        return contributions_figure(w, norm, flow, q_lab, k_lab, q_tokens=q_tok,
                                    k_tokens=k_tok, names=names, title=title, style=style)
    keep_valid("attn_contrib_view", list(LONG_VIEWS))
    view = st.segmented_control(say_page("long_view"), list(LONG_VIEWS),
                                key="attn_contrib_view", required=True, format_func=say_page)
    if view == "v_topk":
        keep_in_range("attn_contrib_topk", 1, 32, 8)
        k = st.slider(say_page("k"), 1, 32, key="attn_contrib_topk")
        return contributions_topk(w, norm, flow, q_lab, k_lab, k=k, names=names, title=title,
                                  style=style)
    if view == "v_window":
        size_q, size_k = min(CONTRIB_WINDOW, w.shape[0]), min(CONTRIB_WINDOW, w.shape[1])
        keep_in_range("attn_contrib_wq", 0, w.shape[0] - size_q, 0)
        keep_in_range("attn_contrib_wk", 0, w.shape[1] - size_k, 0)
        qa = st.slider(say_page("q_window"), 0, max(1, w.shape[0] - size_q), key="attn_contrib_wq",
                       disabled=w.shape[0] == size_q)
        ka = st.slider(say_page("k_window"), 0, max(1, w.shape[1] - size_k), key="attn_contrib_wk",
                       disabled=w.shape[1] == size_k)
        return contributions_figure(w, norm, flow, q_lab, k_lab, q_tokens=q_tok,
                                    k_tokens=k_tok, q_range=(qa, qa + size_q),
                                    k_range=(ka, ka + size_k), names=names, title=title,
                                    style=style)
    return contributions_overview(w, norm, flow, q_lab, k_lab, names=names, title=title,
                                  style=style)


def across_section(page, position: int, labels: list, tokens: list) -> None:
    """Flow across layers 0..layer into the chosen position, as bars over the input tokens."""
    st.subheader(say("across", l=page.layer, i=position))
    if page.kind == "decoder.cross" or (page.arch == "encoder-decoder"
                                        and page.kind == "decoder.self"):
        st.info(say("no_across_cross"))
        return
    if len(labels) > ROLLOUT_MAX:
        st.info(say("no_across_long", n=ROLLOUT_MAX))
        return
    with st.spinner(say("across_computing", l=page.layer)):
        across = flow_through_layers(page.name, page.settings.device, page.text, page.kind,
                                     page.layer, page.base.get("target"),
                                     page.base.get("generate", 0))
    row = across[position]
    fig = flow_across_figure(row, labels, k_tokens=tokens, position=position,
                             style=page.style, title=f"{page.kind} 0..{page.layer} → "
                             f"{position}: {labels[position]}")
    st.caption(say("ex_across", l=page.layer))
    figure_with_download(
        fig, "attn_contrib_across", "dl_contrib_across", width="content",
        name=f"{page.name}_{page.kind}_0-{page.layer}_flow_into_{position}",
        table=lambda: frame({"key_index": np.arange(len(row)),
                             "key_token": np.asarray(tokens, object),
                             "flow_share": row}))


def lens_section(page, position: int) -> None:
    """The logit lens at `position` (decoders): layers × top tokens with probabilities."""
    st.subheader(say("lens", i=position))
    if page.arch != "decoder":
        st.info(say("no_lens", name=page.name, kind=say(f"kind_{page.arch}")))
        return
    with st.spinner(say("lens_computing")):
        rows = pass_lens(page.name, page.settings.device, page.text, page.kind,
                         position) if from_pass(page) else None
        if rows is None:
            rows = attend(page.name, page.settings.device, page.text, layers=[],
                          logit_lens=True, lens_position=position,
                          **page.base).outputs["logit_lens"]
    codec = page.model.codec
    labels = [codec.labels([t for t, _ in r]) if hasattr(codec, "labels")
              else [t for t, _ in r] for r in rows]
    st.caption(say("ex_lens"))
    fig = logit_lens_figure(rows, labels, style=page.style,
                            title=f"{page.name} · logit lens · position {position}")
    figure_with_download(
        fig, "attn_contrib_lens", "dl_contrib_lens", width="content",
        name=f"{page.name}_logit_lens_{position}",
        table=lambda: frame([(layer, rank + 1, tok, lab, p)
                             for layer, (r, ls) in enumerate(zip(rows, labels, strict=True))
                             for rank, ((tok, p), lab) in enumerate(zip(r, ls, strict=True))],
                            columns=["layer", "rank", "token", "label", "probability"]))
    digits = page.settings.precision
    st.dataframe(frame([[f"{lab} ({p:.{digits}f})" for (_, p), lab in zip(r, ls, strict=True)]
                        for r, ls in zip(rows, labels, strict=True)],
                       columns=[f"#{i + 1}" for i in range(len(rows[0]))]),
                 width="stretch", height=min(600, 36 * len(rows) + 40))


def contributions_tab(page) -> None:
    """Weights, norm and flow side by side; flow across layers; the logit lens."""
    key, head = page.key, page.head
    c = chosen_head(page)
    w, norm, flow, q_lab, k_lab, q_tok, k_tok = (c.weights, c.norm, c.flow, c.q_lab, c.k_lab,
                                                 c.q_tok, c.k_tok)
    cap = st.columns(3)
    for col, text_key in zip(cap, ("ex_weights", "ex_norm", "ex_flow"), strict=True):
        col.caption(say(text_key))
    fig = maps_figure(page, w, norm, flow, q_lab, k_lab, q_tok, k_tok)
    figure_with_download(fig, "attn_contrib", "dl_contrib", width="content",
                         name=f"{page.name}_{key}_H{head}_contributions",
                         table=contributions_table(w, norm, flow, q_tok, k_tok))
    positions = list(range(len(q_lab)))
    keep_valid("attn_contrib_pos", positions, positions[-1])
    position = st.selectbox(say("position"), positions, key="attn_contrib_pos",
                            format_func=lambda i: f"{i}: {q_lab[i]}")
    across_section(page, position, q_lab, q_tok)
    lens_section(page, position)
