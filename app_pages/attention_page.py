"""Attention page: type a sentence, see where every head looks.

Wiring only: widgets → `engine` (through the cached `common.attend`) → `viz` builders →
`st.plotly_chart`, each figure with a download control. Views live in lazily rendered tabs
(only the open tab runs), so typing a sentence redraws one figure, not nine.

Long inputs (> viz.LONG_INPUT tokens) record one layer at a time; the all-layer views
(model view, metrics, rollout) come from one cached pass reduced to small arrays, so a
2,048-token Gemma map never reaches the browser at full size.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import streamlit as st
import torch

import engine
from app_pages.attention_text import KIND_NAMES, T
from app_pages.common import (
    attend,
    current_settings,
    current_style,
    get_model,
    model_picker,
    show_notices,
)
from app_pages.download import download_menu
from app_pages.i18n import COMMON, lang, tabs_keeping_choice, tr
from app_pages.widget_state import keep_in_range, keep_subset, keep_valid, persist
from engine.transformer import Request
from viz.aggregate import mean_heads, rollout_layers
from viz.attention_extras import (
    add_click_targets,
    heads_row,
    kv_steps_figure,
    step_figure,
    topk_compare_figure,
    window_heatmap,
)
from viz.head_view import head_view
from viz.heatmap import head_heatmap, matrix_heatmap
from viz.long_input import LONG_INPUT, block_average, block_size, overview_figure, topk_figure
from viz.metrics import METRIC_TITLES, METRICS, head_metrics, metrics_figure
from viz.model_view import model_view
from viz.qk_view import qk_view

DEFAULT_TEXT = "The animal didn't cross the street because it was too tired."
DEFAULT_DATE = "March 3rd, 2021"
FULL_HEATMAP_MAX = 512  # up to here the full map is drawn (zoom/pan in the browser)
WINDOW_MAX = 256  # the zoom window of a longer map
ROLLOUT_MAX = 512  # rollout is a T×T product per layer: skipped above this
MAX_GENERATE = 64
MEASURE_STEPS = 32  # greedy steps run to read the real KV cache (the formula covers the rest)

TABS = ("tab_head", "tab_model", "tab_lines", "tab_qk", "tab_metrics", "tab_agg",
        "tab_ablation", "tab_cross", "tab_steps")


# ----------------------------------------------------------------------------- helpers

def frame(*args, **kwargs):
    """A pandas DataFrame; pandas is imported on first use (it is not needed to draw the
    first heatmap, and importing it costs cold-start time)."""
    import pandas as pd

    return pd.DataFrame(*args, **kwargs)


def matrix_table(z: np.ndarray, q_tokens: list, k_tokens: list, value: str):
    """Tidy rows (query_index, query_token, key_index, key_token, value) of a [Tq, Tk] map,
    built only when a download asks for it."""
    def build():
        tq, tk = z.shape
        qi, ki = np.repeat(np.arange(tq), tk), np.tile(np.arange(tk), tq)
        return frame({"query_index": qi, "query_token": np.asarray(q_tokens, object)[qi],
                      "key_index": ki, "key_token": np.asarray(k_tokens, object)[ki],
                      value: np.asarray(z, np.float32).reshape(-1)})

    return build


def kind_name(kind: str) -> str:
    en, zh = KIND_NAMES.get(kind, (kind, kind))
    return zh if lang() == "zh" else en


def explain(key: str) -> None:
    st.caption(tr(T, key))


def figure_with_text(fig, explanation: str | None, chart_key: str, **chart_kw):
    """The figure, and its short explanation beside it."""
    left, right = st.columns([4, 1])
    with left:
        event = st.plotly_chart(fig, key=chart_key, width="content", **chart_kw)
    if explanation:
        with right:
            explain(explanation)
    return event


class LayerReducer(dict):
    """A record dict for the engine's forward pass that keeps, of each layer of one block
    kind, only what the all-layer views need: a block-averaged thumbnail, the head metrics
    and (up to ROLLOUT_MAX tokens) the head-mean map for rollout. The full [H, T, T] map of
    a layer is dropped as soon as the next one arrives, so a 2,048-token pass over 18
    layers holds one layer's map at a time instead of all of them (about 1.2 GB)."""

    def __init__(self, kind: str, thumb: int):
        super().__init__()
        self.kind, self.thumb = kind, thumb
        self.thumbs: list[np.ndarray] = []
        self.rows: list[dict] = []
        self.means: list[np.ndarray] = []
        self.block = 1

    def __setitem__(self, key, out) -> None:
        if key.rsplit(".", 1)[0] != self.kind or out.weights is None:
            return
        w = out.weights[0].float().cpu().numpy()  # [H, Tq, Tk]
        tq, tk = w.shape[1:]
        self.block = max(block_size(tq, self.thumb), block_size(tk, self.thumb))
        self.thumbs.append(block_average(w, self.block))
        self.rows += head_metrics({key: w})
        if self.kind != "decoder.cross" and tq <= ROLLOUT_MAX:
            self.means.append(mean_heads(w))


@st.cache_data(show_spinner=False, max_entries=8)
def long_summary(name: str, device: str, text: str, kind: str, target: str | None,
                 generate: int, thumb: int = 64) -> dict:
    """For a long input: one pass over every layer of `kind`, kept only as thumbnails
    (block-averaged to ≤ thumb²), head metrics and, up to ROLLOUT_MAX tokens, the rollout."""
    model = engine.load(name, device)
    keys = [k for k in model.block_keys() if k.rsplit(".", 1)[0] == kind]
    reducer = LayerReducer(kind, thumb)
    if model.kind in ("encoder", "decoder"):
        ids = list(model.codec.encode(text).ids)
        if generate:  # the same greedy tokens the page's record holds
            ids += attend(name, device, text, target=target, generate=generate,
                          layers=[keys[0]]).outputs.get("generated_ids", [])
        x = torch.tensor([ids], device=model.device)
        with torch.inference_mode():
            req = Request(record=keys)
            if model.kind == "encoder":
                model.model.encode(x, req=req, record=reducer)
            else:
                model.model.decode(x, req=req, record=reducer)
    else:  # encoder-decoders read at most a few hundred tokens: the plain path is fine
        rec = model.attend(text, target=target, generate=generate, layers=keys)
        for k in keys:
            reducer[k] = SimpleNamespace(weights=torch.from_numpy(rec[k][None]))
    roll = rollout_layers(reducer.means) if reducer.means else None
    return dict(thumbs=np.stack(reducer.thumbs), block=reducer.block, rows=reducer.rows,
                rollout=roll)


@st.cache_data(show_spinner=False, max_entries=32)
def greedy_text(name: str, device: str, text: str, heads_off: tuple, n: int) -> str:
    """Greedy decode of an encoder-decoder, at most n tokens, with heads switched off."""
    model = engine.load(name, device)
    cfg = model.config
    ids = torch.tensor([model.codec.encode(text).ids], device=model.device)
    off: dict[str, list[int]] = {}
    for key, h in heads_off:
        off.setdefault(key, []).append(h)
    new = model.model.generate(ids, n, eos_id=cfg.eos_id, req=Request(record=(), heads_off=off))
    out = new[0].tolist()
    if out and out[-1] == cfg.eos_id:
        out = out[:-1]
    return (model.target_codec or model.codec).decode(out)


@st.cache_data(show_spinner=False, max_entries=32)
def measured_kv_bytes(name: str, device: str, text: str, n: int) -> list[int]:
    """KV-cache bytes (cache.bytes_used) after each of n greedy decoding steps."""
    model = engine.load(name, device)
    ids = torch.tensor([model.codec.encode(text).ids], device=model.device)
    sizes: list[int] = []
    model.model.generate(ids, n, eos_id=None,
                         on_step=lambda step, cache: sizes.append(int(cache.bytes_used)))
    return sizes


# ----------------------------------------------------------------------------- page

persist(("attn_model", "attn_text", "attn_target", "attn_generate", "attn_kind", "attn_layer",
         "attn_head", "attn_tab", "attn_lines_heads", "attn_qk_query", "attn_metric",
         "attn_ablate", "attn_long_view"), {"attn_text": DEFAULT_TEXT})
settings = current_settings()
style = current_style()
st.title(tr(T, "title"))
st.caption(tr(T, "intro"))

name = model_picker("attn_model", default="minilm")
if name is None:
    st.stop()
model = get_model(name, settings.device)
if model is None:
    st.stop()
cfg = model.config
arch = model.kind

# A date model gets a date to read, unless the user already typed something else.
if st.session_state.get("attn_last_model") != name:
    current = st.session_state.get("attn_text")
    if name.startswith("seq2seq") and current in (None, DEFAULT_TEXT):
        st.session_state["attn_text"] = DEFAULT_DATE
    elif not name.startswith("seq2seq") and current in (None, DEFAULT_DATE):
        st.session_state["attn_text"] = DEFAULT_TEXT
    st.session_state["attn_last_model"] = name

cols = st.columns([3, 2]) if arch != "encoder" else [st.container()]
with cols[0]:
    text = st.text_input(tr(COMMON, "text"), key="attn_text")
target: str | None = None
generate = 0
if arch == "encoder-decoder":
    with cols[1]:
        target = st.text_input(tr(COMMON, "target"), key="attn_target",
                               placeholder=tr(T, "target_placeholder"), help=tr(T, "target_help"))
    target = (target or "").strip() or None
    if target is None and model.weights_hash.startswith("init:"):  # random weights
        limit = min(getattr(model, "max_target_tokens", cfg.max_len - 1), cfg.max_len - 1)
        st.info(tr(T, "no_greedy", name=name, n=limit))
        target = text
elif arch == "decoder":
    with cols[1]:
        keep_in_range("attn_generate", 0, MAX_GENERATE, 0)
        generate = int(st.number_input(tr(T, "generate"), 0, MAX_GENERATE, key="attn_generate",
                                       help=tr(T, "generate_help")))

try:
    n_tokens = len(model.codec.encode(text).ids) + generate
except (engine.InputError, ValueError) as exc:
    st.warning(tr(T, "bad_input", msg=str(exc)))
    st.stop()
long = n_tokens > LONG_INPUT

kinds = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in model.block_keys()))
keep_valid("attn_kind", kinds)
c1, c2, c3 = st.columns([5, 2, 2])
with c1:
    kind = st.segmented_control(tr(T, "block"), kinds, key="attn_kind", format_func=kind_name,
                                required=True) or kinds[0]
n_layers = cfg.n_encoder_layers if kind == "encoder.self" else cfg.n_decoder_layers
keep_valid("attn_layer", list(range(n_layers)))
keep_valid("attn_head", list(range(cfg.n_heads)))
with c2:
    layer = st.selectbox(tr(T, "layer"), list(range(n_layers)), key="attn_layer")
with c3:
    head = st.selectbox(tr(T, "head"), list(range(cfg.n_heads)), key="attn_head")
key = f"{kind}.{layer}"
base = dict(target=target, generate=generate)

try:
    with st.spinner(tr(COMMON, "loading", name=name)):
        rec = attend(name, settings.device, text, layers=[key] if long else None, **base)
except (engine.InputError, ValueError) as exc:
    st.warning(tr(T, "bad_input", msg=str(exc)))
    st.stop()

show_notices(rec)
if long:
    st.info(tr(T, "long", n=len(rec.tokens)))
q_tok, k_tok = rec.axis_tokens(key)
out_cols = st.columns(2)
with out_cols[0].expander(tr(T, "tokens", n=len(rec.tokens))):
    st.code("  ".join(f"{i}:{t}" for i, t in enumerate(rec.tokens)), language=None,
            wrap_lines=True)
    if rec.target_tokens is not None:
        st.code("  ".join(f"{i}:{t}" for i, t in enumerate(rec.target_tokens)), language=None,
                wrap_lines=True)
with out_cols[1]:
    if "generated" in rec.outputs:
        st.caption(tr(T, "generated"))
        st.code(rec.outputs["generated"], language=None)
    if "top_k" in rec.outputs:
        st.caption(tr(T, "next_tokens"))
        st.dataframe(frame(rec.outputs["top_k"], columns=["token", "probability"]),
                     width="stretch", height=160)

layer_maps = None if long else [rec[k] for k in rec.blocks(kind)]


def summary() -> dict:
    """The all-layer summary of a long input (computed on first use by a tab that needs it)."""
    with st.spinner(tr(T, "summarising")):
        return long_summary(name, settings.device, text, kind, target, generate)


weights = rec[key]  # [H, Tq, Tk]

names = list(TABS if arch == "encoder-decoder" else TABS[:-2])
tabs = dict(zip(names, tabs_keeping_choice(T, "attn_tab", names), strict=True))


def open_head(layer_: int, head_: int) -> None:
    st.session_state["attn_layer"] = layer_
    st.session_state["attn_head"] = head_
    st.session_state["attn_tab"] = tr(T, "tab_head")


# -- one head --------------------------------------------------------------------------
with tabs["tab_head"]:
    if tabs["tab_head"].open:
        w = weights[head]
        zmax = float(weights.max()) if settings.shared_range else None
        title = f"{key} · head {head}"
        if max(w.shape) > LONG_INPUT:
            views = (["v_full"] if max(w.shape) <= FULL_HEATMAP_MAX else []) + [
                "v_overview", "v_topk", "v_window"]
            keep_valid("attn_long_view", views)
            view = st.segmented_control(tr(T, "long_view"), views, key="attn_long_view",
                                        format_func=lambda v: tr(T, v), required=True)
            if view == "v_overview":
                fig = overview_figure(w, q_tok, k_tok, style=style, title=title)
            elif view == "v_topk":
                keep_in_range("attn_topk", 1, 32, 8)
                k = st.slider(tr(T, "k"), 1, 32, key="attn_topk")
                fig = topk_figure(w, q_tok, k_tok, k=k, style=style, title=title)
            elif view == "v_window":
                size_q, size_k = min(WINDOW_MAX, w.shape[0]), min(WINDOW_MAX, w.shape[1])
                keep_in_range("attn_wq", 0, w.shape[0] - size_q, 0)
                keep_in_range("attn_wk", 0, w.shape[1] - size_k, 0)
                qa = st.slider(tr(T, "q_window"), 0, max(1, w.shape[0] - size_q),
                               key="attn_wq", disabled=w.shape[0] == size_q)
                ka = st.slider(tr(T, "k_window"), 0, max(1, w.shape[1] - size_k),
                               key="attn_wk", disabled=w.shape[1] == size_k)
                fig = window_heatmap(w, q_tok, k_tok, q_range=(qa, qa + size_q),
                                     k_range=(ka, ka + size_k), style=style, title=title,
                                     zmax=zmax)
            else:
                fig = head_heatmap(w, q_tok, k_tok, style=style, title=title, zmax=zmax,
                                   full_max=FULL_HEATMAP_MAX)
        else:
            fig = head_heatmap(w, q_tok, k_tok, style=style, title=title, zmax=zmax)
        figure_with_text(fig, "ex_head", "attn_heatmap")
        download_menu(fig, rec, key="dl_head", block=kind, layer=layer, head=head)

# -- model view ------------------------------------------------------------------------
with tabs["tab_model"]:
    if tabs["tab_model"].open:
        if long:
            summ = summary()
            stack = summ["thumbs"]
            labels = [f"L{i} (blocks of {summ['block']})" for i in range(len(stack))]
        else:
            stack = np.stack(layer_maps)
            labels = [f"L{i}" for i in range(len(stack))]
        fig = model_view(stack, layer_labels=labels, style=style,
                         title=f"{name} · {kind_name(kind)}")
        n_h = stack.shape[1]
        add_click_targets(fig, [f"L{l_} H{h_}" for l_ in range(stack.shape[0])
                                for h_ in range(n_h)])

        def on_pick() -> None:
            """A clicked thumbnail opens that head (its marker's customdata is the index of
            its heatmap, l · H + h)."""
            points = st.session_state["attn_model_view"].selection.get("points", [])
            if points:
                index = points[0].get("customdata", points[0].get("curve_number"))
                if isinstance(index, list):
                    index = index[0]
                l_, h_ = divmod(int(index), n_h)
                open_head(l_, h_)

        figure_with_text(fig, "ex_model", "attn_model_view", on_select=on_pick,
                         selection_mode="points")
        pick_cols = st.columns([2, 1, 3])
        options = [(l_, h_) for l_ in range(stack.shape[0]) for h_ in range(n_h)]
        with pick_cols[0]:
            choice = st.selectbox(tr(T, "open"), options, key="attn_open_choice",
                                  format_func=lambda o: f"L{o[0]} · H{o[1]}")
        with pick_cols[1]:
            st.button(tr(T, "open_btn"), key="attn_open_btn", on_click=open_head,
                      args=choice)
        download_menu(fig, None if long else rec, key="dl_model", block=kind)

# -- head view (lines) -----------------------------------------------------------------
with tabs["tab_lines"]:
    if tabs["tab_lines"].open:
        lc = st.columns([2, 2, 1])
        keep_subset("attn_lines_heads", list(range(weights.shape[0])), [head])
        with lc[0]:
            heads = st.multiselect(tr(T, "heads"), list(range(weights.shape[0])),
                                   key="attn_lines_heads", format_func=lambda h: f"H{h}")
        queries = [None] + list(range(weights.shape[1]))
        if weights.shape[1] > 64:
            queries = queries[1:]
        keep_valid("attn_lines_query", queries)
        with lc[1]:
            query = st.selectbox(tr(T, "query"), queries, key="attn_lines_query",
                                 format_func=lambda i: tr(T, "all_queries") if i is None
                                 else f"{i}: {q_tok[i]}")
        with lc[2]:
            st.session_state.setdefault("attn_lines_min", 0.05)
            min_w = st.slider(tr(T, "min_weight"), 0.0, 0.5, step=0.01, key="attn_lines_min")
        fig = head_view(weights, q_tok, k_tok, heads=heads or [head], query=query,
                        min_weight=min_w, style=style, title=f"{key}")
        # room for the lines: ~26 px per token row (the builder's default is tighter)
        fig.update_layout(height=int(min(2400, max(fig.layout.height or 0,
                                                   26 * max(weights.shape[1:]) + 160))))
        figure_with_text(fig, "ex_lines", "attn_lines")
        download_menu(fig, rec, key="dl_lines", block=kind, layer=layer)

# -- Q·K -------------------------------------------------------------------------------
with tabs["tab_qk"]:
    if tabs["tab_qk"].open:
        keep_valid("attn_qk_query", list(range(len(q_tok))), min(len(q_tok) - 1, 10))
        query = st.selectbox(tr(T, "query"), list(range(len(q_tok))), key="attn_qk_query",
                             format_func=lambda i: f"{i}: {q_tok[i]}")
        # Maps only: the pass stops at this layer (its outputs are shown by the main record).
        rec_qk = attend(name, settings.device, text, scores=True, qk=True, layers=[key],
                        outputs=False, **base)
        fig = qk_view(rec_qk.q[key], rec_qk.k[key], query, k_tok, q_tok, head=head,
                      scores=rec_qk.scores[key], weights=rec_qk[key], scale=cfg.scale,
                      style=style, title=f"{key} · head {head} · query {query}")
        figure_with_text(fig, "ex_qk", "attn_qk")
        download_menu(fig, rec_qk, key="dl_qk", block=kind, layer=layer, head=head)

# -- head metrics ----------------------------------------------------------------------
with tabs["tab_metrics"]:
    if tabs["tab_metrics"].open:
        rows = summary()["rows"] if long else head_metrics(
            {k: rec[k] for k in rec.blocks(kind)})
        table = frame(rows)
        defined = [m for m in METRICS if table[m].notna().any()]
        keep_valid("attn_metric", defined)
        metric = st.selectbox(tr(T, "metric"), defined, key="attn_metric",
                              format_func=lambda m: METRIC_TITLES[m])
        mc = st.columns([3, 2])
        with mc[0]:
            fig = metrics_figure(rows, metric, block=kind, style=style)
            st.plotly_chart(fig, key="attn_metrics_fig", width="content")
            download_menu(fig, key="dl_metrics", table=table, name=f"{name}_{kind}_metrics")
        with mc[1]:
            explain("ex_metrics")
            st.dataframe(table.drop(columns=["block"]).round(settings.precision + 1),
                         width="stretch", hide_index=True, height=420)

# -- aggregations ----------------------------------------------------------------------
with tabs["tab_agg"]:
    if tabs["tab_agg"].open:
        mean = mean_heads(weights)
        fig = (head_heatmap(mean, q_tok, k_tok, style=style, title=f"{key} · mean over heads",
                            value_name="mean weight", full_max=FULL_HEATMAP_MAX)
               if max(mean.shape) <= FULL_HEATMAP_MAX else
               overview_figure(mean, q_tok, k_tok, style=style))
        st.subheader(tr(T, "mean_heads"))
        figure_with_text(fig, "ex_agg", "attn_mean")
        download_menu(fig, key="dl_mean", name=f"{name}_{key}_mean",
                      table=matrix_table(mean, q_tok, k_tok, "weight"))
        st.subheader(tr(T, "rollout", l=layer))
        if kind == "decoder.cross":
            st.info(tr(T, "no_rollout_cross"))
        else:
            roll = summary()["rollout"] if long else rollout_layers(layer_maps[: layer + 1])
            if roll is None:
                st.info(tr(T, "no_rollout_long", n=ROLLOUT_MAX))
            else:
                r = roll[layer] if long else roll[-1]
                fig = head_heatmap(r, q_tok, k_tok, style=style, value_name="rollout",
                                   title=f"rollout {kind} 0..{layer}", full_max=FULL_HEATMAP_MAX)
                st.plotly_chart(fig, key="attn_rollout", width="content")
                download_menu(fig, key="dl_rollout", name=f"{name}_{key}_rollout",
                              table=matrix_table(r, q_tok, k_tok, "rollout"))

# -- ablation --------------------------------------------------------------------------
with tabs["tab_ablation"]:
    if tabs["tab_ablation"].open:
        explain("ex_ablation")
        options = [f"{k}:{h}" for k in model.block_keys() for h in range(cfg.n_heads)]
        keep_subset("attn_ablate", options, [f"{key}:{head}"])
        chosen = st.multiselect(tr(T, "heads_off"), options, key="attn_ablate",
                                format_func=lambda o: o.replace(":", " · H"))
        if not chosen:
            st.info(tr(T, "pick_heads"))
        else:
            pairs = tuple(sorted((o.rsplit(":", 1)[0], int(o.rsplit(":", 1)[1]))
                                 for o in chosen))
            heads_off: dict[str, list[int]] = {}
            for k_, h_ in pairs:
                heads_off.setdefault(k_, []).append(h_)
            layers = [key] if long else None
            off = attend(name, settings.device, text, layers=layers, heads_off=heads_off, **base)
            if arch == "encoder" and "embedding" in rec.outputs:
                e0, e1 = rec.outputs["embedding"], off.outputs["embedding"]
                cos = float(np.dot(e0, e1) / (np.linalg.norm(e0) * np.linalg.norm(e1) + 1e-12))
                st.metric(tr(T, "cosine"), f"{cos:.{settings.precision + 1}f}")
            elif arch == "decoder" and "top_k" in rec.outputs:
                fig = topk_compare_figure(rec.outputs["top_k"], off.outputs["top_k"],
                                          style=style, title="next token")
                st.plotly_chart(fig, key="attn_ablate_topk", width="content")
                tc = st.columns(2)
                tc[0].caption(tr(T, "before"))
                tc[0].dataframe(frame(rec.outputs["top_k"],
                                             columns=["token", "probability"]), hide_index=True)
                tc[1].caption(tr(T, "after"))
                tc[1].dataframe(frame(off.outputs["top_k"],
                                             columns=["token", "probability"]), hide_index=True)
                download_menu(fig, key="dl_ablate_topk", name=f"{name}_ablation_topk",
                              table=frame(
                                  [("intact", t, p) for t, p in rec.outputs["top_k"]]
                                  + [("heads off", t, p) for t, p in off.outputs["top_k"]],
                                  columns=["model", "token", "probability"]))
            elif arch == "encoder-decoder":
                # a random-weight model never says [EOS]: keep its decode short
                n = 8 if model.weights_hash.startswith("init:") else min(cfg.max_len - 1, 32)
                with st.spinner(tr(T, "decoding")):
                    before = greedy_text(name, settings.device, text, (), n)
                    after = greedy_text(name, settings.device, text, pairs, n)
                st.caption(tr(T, "decoded", n=n))
                tc = st.columns(2)
                tc[0].caption(tr(T, "before"))
                tc[0].code(before, language=None)
                tc[1].caption(tr(T, "after"))
                tc[1].code(after, language=None)
            # how every recorded map of this block kind moved
            kinds_keys = [k for k in off.keys() if k.rsplit(".", 1)[0] == kind and k in rec]
            delta = np.stack([np.abs(off[k] - rec[k]).mean(axis=(1, 2)) for k in kinds_keys])
            fig = matrix_heatmap(delta, x_labels=[f"H{h}" for h in range(delta.shape[1])],
                                 y_labels=[k.rsplit(".", 1)[1] for k in kinds_keys],
                                 x_title="head", y_title="layer", value_name="mean |Δ|",
                                 style=style, title=tr(T, "changed", kind=kind_name(kind)))
            st.plotly_chart(fig, key="attn_ablate_delta", width="content")
            download_menu(fig, key="dl_ablate_delta", name=f"{name}_ablation_delta",
                          table=frame(
                              [(k, h, float(delta[i, h])) for i, k in enumerate(kinds_keys)
                               for h in range(delta.shape[1])],
                              columns=["block", "head", "mean_abs_delta"]))

# -- encoder-decoder: cross-attention and generation steps ----------------------------
if arch == "encoder-decoder":
    cross_key = f"decoder.cross.{min(layer, cfg.n_decoder_layers - 1)}"
    with tabs["tab_cross"]:
        if tabs["tab_cross"].open:
            rec_c = rec if cross_key in rec else attend(name, settings.device, text,
                                                        layers=[cross_key], **base)
            cw = rec_c[cross_key]
            ct_q, ct_k = rec_c.axis_tokens(cross_key)
            fig = head_heatmap(cw[head], ct_q, ct_k, style=style,
                               title=f"{cross_key} · head {head}", full_max=FULL_HEATMAP_MAX,
                               zmax=float(cw.max()) if settings.shared_range else None)
            figure_with_text(fig, "ex_cross", "attn_cross")
            download_menu(fig, rec_c, key="dl_cross", block="decoder.cross",
                          layer=int(cross_key.rsplit(".", 1)[1]), head=head)
            st.subheader(tr(T, "all_heads_cross"))
            fig = heads_row(cw, style=style, title=cross_key)
            st.plotly_chart(fig, key="attn_cross_all", width="content")
            download_menu(fig, rec_c, key="dl_cross_all", block="decoder.cross",
                          layer=int(cross_key.rsplit(".", 1)[1]))
    with tabs["tab_steps"]:
        if tabs["tab_steps"].open:
            d_layer = min(layer, cfg.n_decoder_layers - 1)
            sk, ck = f"decoder.self.{d_layer}", f"decoder.cross.{d_layer}"
            rec_s = rec if (sk in rec and ck in rec) else attend(
                name, settings.device, text, layers=[sk, ck], **base)
            dec = rec_s.target_tokens or []
            n_steps = len(dec)
            i = 0
            if n_steps > 1:
                keep_in_range("attn_step", 0, n_steps - 1, 0)
                i = st.slider(tr(T, "step"), 0, n_steps - 1, key="attn_step")
            nxt = dec[i + 1] if i + 1 < n_steps else "[EOS]"
            st.caption(tr(T, "step_info", i=i))
            st.code(f"{dec[i]}  →  {nxt}", language=None)
            fig = step_figure(rec_s[sk][:, i, : i + 1], rec_s[ck][:, i, :], dec[: i + 1],
                              rec_s.tokens, style=style, title=f"layer {d_layer} · step {i}")
            figure_with_text(fig, "ex_steps", "attn_step_fig")
            download_menu(fig, rec_s, key="dl_step", block="decoder.cross", layer=d_layer)
            per = cfg.kv_cache_bytes_per_token(4)
            formula = [per * (j + 1) for j in range(n_steps)]
            st.write(tr(T, "kv_bytes", b=formula[i], per=per, n=i + 1))
            st.caption(tr(T, "kv_formula", layers=cfg.n_decoder_layers, kv=cfg.kv_heads,
                          d=cfg.head_dim))
            n_measured = min(n_steps, MEASURE_STEPS)
            with st.spinner(tr(T, "measuring_kv", n=n_measured)):
                measured = measured_kv_bytes(name, settings.device, text, n_measured)
            fig = kv_steps_figure(formula, i, measured, style=style, title="KV cache")
            st.plotly_chart(fig, key="attn_kv_steps", width="content")
            if n_measured < n_steps:
                st.caption(tr(T, "measured_first", n=n_measured))
            download_menu(fig, key="dl_kv_steps", name=f"{name}_kv_steps", table=frame(
                {"step": np.arange(n_steps), "formula_bytes": formula,
                 "measured_bytes": measured + [None] * (n_steps - len(measured))}))
