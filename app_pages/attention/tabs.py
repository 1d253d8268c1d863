"""The Attention page's views, one function per tab. Each reads the page's state (the model,
the text, the chosen block/layer/head and the record made for them) from an `AttentionView`
and draws its figures, each with a download control. Only the open tab's function runs."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages.attention.contributions import contributions_tab
from app_pages.attention.long_layers import ablation_summary
from app_pages.attention.long_map import long_map, view_controls
from app_pages.attention.passes import (
    FULL_HEATMAP_MAX,
    MEASURE_STEPS,
    greedy_text,
    measured_kv_bytes,
)
from app_pages.attention.query_tabs import lines_tab, qk_tab
from app_pages.attention.text import ATTENTION_TEXT, KIND_NAMES
from app_pages.attention.view import AttentionView
from app_pages.shared.download import figure_with_download
from app_pages.shared.figure_words import METRIC_COLUMNS, block_label
from app_pages.shared.i18n import lang, translator
from app_pages.shared.models import attend
from app_pages.shared.numbers import cosine, frame, matrix_table
from app_pages.shared.progress import computing
from app_pages.shared.timing import timed
from app_pages.shared.widget_state import (
    choose_placeholder,
    keep_in_range,
    keep_subset,
    keep_valid,
    show_stored,
)
from engine.core.block_key import BlockKey, kind_of, layer_of
from viz.aggregate import mean_heads, rollout_layers
from viz.figures.decoding import step_figure, topk_compare_figure
from viz.figures.heads_row import heads_row
from viz.figures.heatmap import head_heatmap, matrix_heatmap
from viz.figures.image_map import image_map
from viz.figures.kv_cache import kv_steps_figure
from viz.figures.long_input import LONG_INPUT, block_labels, grid_title
from viz.figures.metrics import metrics_figure
from viz.figures.model_view import add_click_targets, model_view
from viz.metrics import METRIC_TITLES, METRICS, head_metrics

say = translator(ATTENTION_TEXT)


def kind_name(kind: str) -> str:
    """A block kind's name in the interface language ("encoder self", "交叉…")."""
    en, zh = KIND_NAMES.get(kind, (kind, kind))
    return zh if lang() == "zh" else en


def explain(key: str) -> None:
    st.caption(say(key))


def explained(key: str) -> str:
    """The explanation `key` shown beside a figure."""
    return say(key)


def head_tab(page: AttentionView) -> None:
    """One head's map: the full heatmap, or for a long input an overview, top-k or a window."""
    settings, style, kind, layer, head = page.settings, page.style, page.kind, page.layer, page.head
    key, rec, weights, q_tok, k_tok = page.key, page.rec, page.weights, page.q_tok, page.k_tok
    w = weights[head]
    zmax = float(weights.max()) if settings.shared_range else None
    title = style.say("{key} · head {head}", key=block_label(style, key), head=head)
    if max(w.shape) > LONG_INPUT:
        view, how, log = view_controls()
        long_map(w, q_tok, k_tok, style=style, title=title, chart_key="attn_heatmap",
                 download_label="dl_head", view=view, how=how, log=log, zmax=zmax, record=rec,
                 block=kind, layer=layer, head=head, explanation=explained("ex_head"))
        return
    fig = head_heatmap(w, q_tok, k_tok, style=style, title=title, zmax=zmax)
    figure_with_download(fig, "attn_heatmap", "dl_head", record=rec, block=kind, layer=layer,
                         head=head, explanation=explained("ex_head"), width="content")


def model_tab(page: AttentionView) -> None:
    """Every layer × head as thumbnails; a click opens that head."""
    name, style, long, kind = page.name, page.style, page.long, page.kind
    rec, layer_maps, summary, open_head = page.rec, page.layer_maps, page.summary, page.open_head
    title = f"{name} · {kind_name(kind)}"
    if long:
        summ = summary()
        stack = summ["thumbs"]
        tq = len(page.q_tok)
        title += " · " + grid_title(style, stack.shape[2], stack.shape[3], summ["block"], "max")
        st.caption(say("model_long", b=summ["block"], n=f"{tq:,}"))
    else:
        stack = np.stack(layer_maps)
    labels = [f"L{i}" for i in range(len(stack))]  # short: the block size is in the caption
    fig = model_view(stack, layer_labels=labels, style=style, title=title)
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

    figure_with_download(fig, "attn_model_view", "dl_model", record=None if long else rec,
                         block=kind, explanation=explained("ex_model"), width="content",
                         on_select=on_pick, selection_mode="points")
    pick_cols = st.columns([2, 1, 3])
    options = [(l_, h_) for l_ in range(stack.shape[0]) for h_ in range(n_h)]
    with pick_cols[0]:
        choice = st.selectbox(say("open"), options, key="attn_open_choice",
                              format_func=lambda o: f"L{o[0]} · H{o[1]}")
    with pick_cols[1]:
        st.button(say("open_btn"), key="attn_open_btn", on_click=open_head,
                  args=choice)


def metrics_tab(page: AttentionView) -> None:
    """Per-head metrics over every layer of the block kind."""
    name, settings, style, long, kind = page.name, page.settings, page.style, page.long, page.kind
    rec, summary = page.rec, page.summary
    rows = summary()["rows"] if long else head_metrics(
        {k: rec[k] for k in rec.blocks(kind)})
    table = frame(rows)
    defined = [m for m in METRICS if table[m].notna().any()]
    keep_valid("attn_metric", defined)
    metric = st.selectbox(say("metric"), defined, key="attn_metric",
                          format_func=lambda m: style.say(METRIC_TITLES[m]))
    mc = st.columns([3, 2])
    with mc[0]:
        fig = metrics_figure(rows, metric, block=kind, style=style)
        figure_with_download(fig, "attn_metrics_fig", "dl_metrics", table=table,
                             name=f"{name}_{kind}_metrics", width="content")
    with mc[1]:
        explain("ex_metrics")
    # the table below the figure, the page's width: seven columns with units need it
    shown = table.drop(columns=["block"]).round(settings.precision + 1)
    if style.words:  # 中文: the columns themselves carry the reader's words
        shown = shown.rename(columns=lambda c: style.say(METRIC_COLUMNS.get(c, c)))
    # readable headers with units (the data keep their names for the download)
    st.dataframe(shown, width="stretch", hide_index=True, height=420, column_config={
        c: st.column_config.Column(label) for c, label in METRIC_COLUMNS.items()})


def agg_tab(page: AttentionView) -> None:
    """The mean over heads, and attention rollout up to the chosen layer."""
    name, style, long, kind, layer = page.name, page.style, page.long, page.kind, page.layer
    key, weights, q_tok, k_tok = page.key, page.weights, page.q_tok, page.k_tok
    layer_maps, summary = page.layer_maps, page.summary
    mean = mean_heads(weights)
    st.subheader(say("mean_heads"))
    mean_title = style.say("{key} · mean over heads", key=block_label(style, key))
    if max(mean.shape) > LONG_INPUT:
        view, how, log = view_controls()
        long_map(mean, q_tok, k_tok, style=style, title=mean_title, chart_key="attn_mean",
                 download_label="dl_mean", view=view, how=how, log=log,
                 value_name="mean weight", name=f"{name}_{key}_mean",
                 explanation=explained("ex_agg"))
    else:
        fig = head_heatmap(mean, q_tok, k_tok, style=style, title=mean_title,
                           value_name="mean weight")
        figure_with_download(fig, "attn_mean", "dl_mean", name=f"{name}_{key}_mean",
                             table=matrix_table(mean, q_tok, k_tok, "weight"),
                             explanation=explained("ex_agg"), width="content")
    st.subheader(say("rollout", l=layer))
    if kind == "decoder.cross":
        st.info(say("no_rollout_cross"))
        return
    if long:
        summ = summary()
        r, rb = summ["rollout"][layer], summ["rollout_block"]  # in blocks past 1,024 tokens
    else:
        r, rb = rollout_layers(layer_maps[: layer + 1])[-1], 1
    r_title = style.say("rollout {kind} 0..{layer}", layer=layer, kind=style.say(kind))
    if rb > 1:  # in blocks: say that it is an approximation, and of what
        st.caption(say("rollout_blocks", b=rb, n=r.shape[0]))
        qb, kb = block_labels(q_tok, rb), block_labels(k_tok, rb)
        grid = grid_title(style, r.shape[0], r.shape[1], rb, "mean")
        fig = image_map(r, qb, kb, style=style, value_name="rollout", meta="attn_rollout",
                        title=f"{r_title} · {grid}")
        figure_with_download(fig, "attn_rollout", "dl_rollout", name=f"{name}_{key}_rollout",
                             table=matrix_table(r, qb, kb, "rollout"), width="content")
    elif max(r.shape) > LONG_INPUT:
        long_map(r, q_tok, k_tok, style=style, title=r_title, chart_key="attn_rollout",
                 download_label="dl_rollout", view="v_full", how="max", log=False,
                 value_name="rollout", name=f"{name}_{key}_rollout")
    else:
        fig = head_heatmap(r, q_tok, k_tok, style=style, value_name="rollout", title=r_title)
        figure_with_download(fig, "attn_rollout", "dl_rollout", name=f"{name}_{key}_rollout",
                             table=matrix_table(r, q_tok, k_tok, "rollout"), width="content")


def ablation_result(page: AttentionView,
                    heads_off: dict[str, list[int]]) -> tuple[dict, dict[str, np.ndarray]]:
    """The outputs with `heads_off`, and for each recorded block of the page's kind, every
    head's mean |Δ weight| against the page's intact maps (a long input: the chosen block's,
    run from the layer of the first head off where the background pass has it)."""
    if page.long:
        return ablation_summary(page.name, page.settings.device, page.text, page.kind,
                                page.key, heads_off, **page.base)
    off = attend(page.name, page.settings.device, page.text, heads_off=heads_off, **page.base)
    return off.outputs, {k: np.abs(off[k] - page.rec[k]).mean(axis=(1, 2)) for k in off.keys()
                         if kind_of(k) == page.kind and k in page.rec}


def ablation_tab(page: AttentionView) -> None:
    """Heads switched off: what changes in the outputs and in every map."""
    name, settings, style, model, cfg = page.name, page.settings, page.style, page.model, page.cfg
    arch, text, kind, head, key = page.arch, page.text, page.kind, page.head, page.key
    explain("ex_ablation")
    options = [f"{k}:{h}" for k in model.block_keys() for h in range(cfg.n_heads)]
    keep_subset("attn_ablate", options, [f"{key}:{head}"])
    show_stored("attn_ablate")  # the picker shows the heads the result below is computed with
    chosen = st.multiselect(say("heads_off"), options, key="attn_ablate",
                            placeholder=choose_placeholder(),
                            format_func=lambda o: o.replace(":", " · H"))
    if not chosen:
        st.info(say("pick_heads"))
    else:
        pairs = tuple(sorted((o.rsplit(":", 1)[0], int(o.rsplit(":", 1)[1]))  # "key:head"
                             for o in chosen))
        heads_off: dict[str, list[int]] = {}
        for k_, h_ in pairs:
            heads_off.setdefault(k_, []).append(h_)
        shown = ", ".join(o.replace(":", " · H") for o in chosen[:3]) + (
            ", …" if len(chosen) > 3 else "")
        # every layer from the first head off on runs again: seconds for a long input
        with computing(say("ablating" if len(chosen) == 1 else "ablating_many",
                           n=len(chosen), heads=shown)), \
                timed("engine pass", what="ablation"):
            off_outputs, deltas = ablation_result(page, heads_off)
            intact = page.outputs()
        if arch == "encoder" and "embedding" in intact:
            cos = cosine(intact["embedding"], off_outputs["embedding"])
            st.metric(say("cosine"), f"{cos:.{settings.precision + 1}f}")
        elif arch == "decoder" and "top_k" in intact:
            fig = topk_compare_figure(intact["top_k"], off_outputs["top_k"],
                                      style=style, title="next token")
            figure_with_download(fig, "attn_ablate_topk", "dl_ablate_topk",
                                 name=f"{name}_ablation_topk", width="content", table=frame(
                                     [("intact", t, p) for t, p in intact["top_k"]]
                                     + [("heads off", t, p) for t, p in off_outputs["top_k"]],
                                     columns=[style.say(c) for c in ("model", "token",
                                                                     "probability")]))
            tc = st.columns(2)
            tc[0].caption(say("before"))
            tc[0].dataframe(frame(intact["top_k"],
                                         columns=[style.say("token"), style.say("probability")]),
                            hide_index=True)
            tc[1].caption(say("after"))
            tc[1].dataframe(frame(off_outputs["top_k"],
                                         columns=[style.say("token"), style.say("probability")]),
                            hide_index=True)
        elif arch == "encoder-decoder":
            # a random-weight model never says [EOS]: keep its decode short
            n = 8 if model.weights_hash.startswith("init:") else min(cfg.max_len - 1, 32)
            with st.spinner(say("decoding")):
                before = greedy_text(name, settings.device, text, (), n)
                after = greedy_text(name, settings.device, text, pairs, n)
            st.caption(say("decoded", n=n))
            tc = st.columns(2)
            tc[0].caption(say("before"))
            tc[0].code(before, language=None)
            tc[1].caption(say("after"))
            tc[1].code(after, language=None)
        # how every recorded map of this block kind moved
        kinds_keys = list(deltas)
        if not kinds_keys:  # a long input's chosen layer is at or below every head off
            st.info(say("ablate_below", block=key))
            return
        delta = np.stack([deltas[k] for k in kinds_keys])
        fig = matrix_heatmap(delta, x_labels=[f"H{h}" for h in range(delta.shape[1])],
                             y_labels=[str(layer_of(k)) for k in kinds_keys],
                             x_title="head", y_title="layer", value_name="mean |Δ|",
                             style=style, title=say("changed", kind=kind_name(kind)))
        figure_with_download(fig, "attn_ablate_delta", "dl_ablate_delta", width="content",
                             name=f"{name}_ablation_delta", table=frame(
                          [(k, h, float(delta[i, h])) for i, k in enumerate(kinds_keys)
                           for h in range(delta.shape[1])],
                          columns=[style.say(c) for c in ("block", "head", "mean |Δ|")]))


def cross_tab(page: AttentionView) -> None:
    """Cross-attention of an encoder-decoder: one head, then every head."""
    name, settings, style, cfg, text = page.name, page.settings, page.style, page.cfg, page.text
    base, layer, head, rec = page.base, page.layer, page.head, page.rec
    cross_layer = min(layer, cfg.n_decoder_layers - 1)
    cross_key = str(BlockKey("decoder.cross", cross_layer))
    rec_c = rec if cross_key in rec else attend(name, settings.device, text,
                                                layers=[cross_key], **base)
    cw = rec_c[cross_key]
    ct_q, ct_k = rec_c.axis_tokens(cross_key)
    fig = head_heatmap(cw[head], ct_q, ct_k, style=style,
                       title=style.say("{key} · head {head}", key=block_label(style, cross_key),
                                       head=head), full_max=FULL_HEATMAP_MAX,
                       zmax=float(cw.max()) if settings.shared_range else None)
    figure_with_download(fig, "attn_cross", "dl_cross", record=rec_c, block="decoder.cross",
                         layer=cross_layer, head=head, explanation=explained("ex_cross"),
                         width="content")
    st.subheader(say("all_heads_cross"))
    fig = heads_row(cw, style=style, title=block_label(style, cross_key))
    figure_with_download(fig, "attn_cross_all", "dl_cross_all", record=rec_c,
                         block="decoder.cross", layer=cross_layer, width="content")


def steps_tab(page: AttentionView) -> None:
    """Generation step by step: decoder self- and cross-attention at step i, and the KV cache."""
    name, settings, style, cfg, text = page.name, page.settings, page.style, page.cfg, page.text
    base, layer, rec = page.base, page.layer, page.rec
    d_layer = min(layer, cfg.n_decoder_layers - 1)
    sk, ck = str(BlockKey("decoder.self", d_layer)), str(BlockKey("decoder.cross", d_layer))
    rec_s = rec if (sk in rec and ck in rec) else attend(
        name, settings.device, text, layers=[sk, ck], **base)
    dec = rec_s.target_tokens or []
    n_steps = len(dec)
    i = 0
    if n_steps > 1:
        keep_in_range("attn_step", 0, n_steps - 1, 0)
        i = st.slider(say("step"), 0, n_steps - 1, key="attn_step")
    nxt = dec[i + 1] if i + 1 < n_steps else "[EOS]"
    st.caption(say("step_info", i=i))
    st.code(f"{dec[i]}  →  {nxt}", language=None)
    fig = step_figure(rec_s[sk][:, i, : i + 1], rec_s[ck][:, i, :], dec[: i + 1],
                      rec_s.tokens, style=style,
                      title=style.say("layer {layer} · step {step}", layer=d_layer, step=i))
    figure_with_download(fig, "attn_step_fig", "dl_step", record=rec_s, block="decoder.cross",
                         layer=d_layer, explanation=explained("ex_steps"), width="content")
    per = cfg.kv_cache_bytes_per_token(4)
    formula = [per * (j + 1) for j in range(n_steps)]
    st.write(say("kv_bytes", b=formula[i], per=per, n=i + 1))
    st.caption(say("kv_formula", layers=cfg.n_decoder_layers, kv=cfg.kv_heads,
                  d=cfg.head_dim))
    n_measured = min(n_steps, MEASURE_STEPS)
    with st.spinner(say("measuring_kv", n=n_measured)):
        measured = measured_kv_bytes(name, settings.device, text, n_measured)
    fig = kv_steps_figure(formula, i, measured, style=style, title="KV cache")
    figure_with_download(fig, "attn_kv_steps", "dl_kv_steps", name=f"{name}_kv_steps",
                         width="content", table=frame(
                             {style.say("step"): np.arange(n_steps),
                              style.say("formula (bytes)"): formula,
                              style.say("measured (bytes)"):
                                  measured + [None] * (n_steps - len(measured))}))
    if n_measured < n_steps:
        st.caption(say("measured_first", n=n_measured))


TAB_VIEWS = {"tab_head": head_tab, "tab_contrib": contributions_tab, "tab_model": model_tab,
             "tab_lines": lines_tab,
             "tab_qk": qk_tab, "tab_metrics": metrics_tab, "tab_agg": agg_tab,
             "tab_ablation": ablation_tab, "tab_cross": cross_tab, "tab_steps": steps_tab}
