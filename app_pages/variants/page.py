"""Variants page: multi-head, grouped-query and multi-query attention (MHA / GQA / MQA) on
the same model (Shazeer, 2019, "Fast Transformer Decoding"; Ainslie et al., 2023, "GQA").

Wiring only: the three trained date normalisers side by side, MiniLM converted to G K/V
groups, parameters and KV-cache bytes against sequence length (formula and measured through
the engine's KVCache), a small latency measurement on this machine, and the GPU benchmark
results of bench/results/ when they exist.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import engine
from app_pages.shared.download import figure_with_download
from app_pages.shared.figure_words import block_label, readable_columns, translated_figure
from app_pages.shared.i18n import COMMON_TEXT, tabs_keeping_choice, tr, translator
from app_pages.shared.models import attend, get_model
from app_pages.shared.notices import show_notices
from app_pages.shared.numbers import cosine, heads_table
from app_pages.shared.progress import steps
from app_pages.shared.sidebar import current_settings, current_style
from app_pages.shared.widget_state import keep_valid, persist
from app_pages.variants.bench_results import READABLE, headline_table, kv_figures, kv_results
from app_pages.variants.measure import (
    DEFAULT_DATE,
    small_kv_bytes,
    small_latency,
    small_name,
    trained_kv_bytes,
    trained_latency,
)
from app_pages.variants.text import VARIANTS_TEXT
from engine.core.block_key import BlockKey
from engine.core.config import ModelConfig, variant_name
from engine.models.registry import MODELS
from engine.variants import (
    allowed_kv_heads,
    parameter_count,
    small_decoder_config,
    use_one_thread,
)
from viz.figures.bars import bars_figure
from viz.figures.heads_row import difference_maps, group_of_heads, heads_row
from viz.figures.kv_cache import bytes_vs_length_figure
from viz.figures.kv_sharing import kv_sharing_figure

say = translator(VARIANTS_TEXT)

TRAINED = ("seq2seq-mha", "seq2seq-gqa", "seq2seq-mqa")
TRAIN_COMMAND = ".venv/bin/python -m engine.train.dates --variant all"
DEFAULT_TEXT = "The animal didn't cross the street because it was too tired."
LENGTHS = (16, 64, 256, 1024)


def side_caption(key: str) -> None:
    st.caption(say(key))


# ----------------------------------------------------------------------------- page

persist(("var_tab", "var_date", "var_text", "var_groups", "var_kind", "var_layer", "var_mlayer",
         "var_context", "var_log", "var_gpu_device"))
use_one_thread()  # every model on this page is small
settings = current_settings()
style = current_style()
st.title(say("title"))
st.caption(say("intro"))
names = ["tab_trained", "tab_pretrained", "tab_minilm", "tab_memory", "tab_latency", "tab_gpu"]
tabs = dict(zip(names, tabs_keeping_choice(VARIANTS_TEXT, "var_tab", names), strict=True))

# -- the three trained encoder-decoders ------------------------------------------------
with tabs["tab_trained"]:
    if tabs["tab_trained"].open:
        installed = [n for n in TRAINED if MODELS[n].is_installed()]
        if not installed:
            st.info(say("not_trained"))
            st.code(TRAIN_COMMAND, language="bash")
        else:
            if len(installed) < len(TRAINED):
                st.info(say("only_some", names=", ".join(installed)))
                st.code(TRAIN_COMMAND, language="bash")
            st.session_state.setdefault("var_date", DEFAULT_DATE)
            text = st.text_input(say("date"), key="var_date")
            models = {n: get_model(n, settings.device) for n in installed}
            models = {n: m for n, m in models.items() if m is not None}
            if models:
                first = next(iter(models.values()))
                cfg0 = first.config
                kinds = ["decoder.cross", "decoder.self", "encoder.self"]
                keep_valid("var_kind", kinds)
                c1, c2 = st.columns([2, 1])
                with c1:
                    kind = st.segmented_control(say("block"), kinds, key="var_kind",
                                                required=True,
                                                format_func=lambda k: say(k)) or kinds[0]
                n_layers = (cfg0.n_encoder_layers if kind == "encoder.self"
                            else cfg0.n_decoder_layers)
                keep_valid("var_layer", list(range(n_layers)))
                with c2:
                    layer = st.selectbox(say("layer"), list(range(n_layers)), key="var_layer")
                key = str(BlockKey(kind, layer))
                try:
                    own = {n: attend(n, settings.device, text) for n in models}
                    ref_name = "seq2seq-mha" if "seq2seq-mha" in own else next(iter(own))
                    shared = own[ref_name].outputs.get("generated") or text
                    recs = {n: attend(n, settings.device, text, target=shared) for n in models}
                except (engine.InputError, ValueError) as exc:
                    st.warning(str(exc))
                    st.stop()
                # what the engine noticed about the input (truncation, unknown characters)
                seen: set[str] = set()
                for rec in own.values():
                    for notice in rec.meta.get("notices", []):
                        if notice not in seen:
                            seen.add(notice)
                            st.info(notice)
                st.caption(say("shared_target"))
                sharing = st.columns(len(models))
                for col, (n, m) in zip(sharing, models.items(), strict=True):
                    c = m.config
                    with col:
                        st.markdown(f"**{n}** · {c.variant}")
                        st.caption(say("output"))
                        st.code(own[n].outputs.get("generated", ""), language=None)
                        fig = kv_sharing_figure(c.n_heads, c.kv_heads, style=style)
                        figure_with_download(fig, f"var_share_{n}", f"dl_share_{n}",
                                             name=f"{n}_kv_sharing", width="content")
                left, right = st.columns([4, 1])
                with right:
                    side_caption("ex_groups")
                with left:
                    for n, rec in recs.items():
                        c = models[n].config
                        groups = group_of_heads(c.n_heads, c.kv_heads)
                        fig = heads_row(rec[key], groups=groups, style=style,
                                        title=f"{n} · {block_label(style, key)}")
                        figure_with_download(fig, f"var_heads_{n}", f"dl_heads_{n}", record=rec,
                                             block=kind, layer=layer, width="content")
                ref = recs[ref_name]
                others = [n for n in recs if n != ref_name]
                if others:
                    left, right = st.columns([4, 1])
                    with right:
                        side_caption("ex_diff")
                    with left:
                        for n in others:
                            c = models[n].config
                            diff = difference_maps(recs[n][key], ref[key])
                            v = c.variant
                            fig = heads_row(diff, diverging=True, style=style,
                                            groups=group_of_heads(c.n_heads, c.kv_heads),
                                            title=say("diff_title", v=v)
                                            + f" · {block_label(style, key)}")
                            figure_with_download(fig, f"var_diff_{n}", f"dl_diff_{n}",
                                                 name=f"{n}_minus_mha_{key}", width="content",
                                                 table=heads_table(diff, "delta"))

# -- pretrained MHA, GQA and MQA side by side ---------------------------------------------
PRETRAINED = ("minilm", "smollm2-135m", "gemma3-270m")  # MHA (12/12), GQA (9/3), MQA (4/1)

with tabs["tab_pretrained"]:
    if tabs["tab_pretrained"].open:
        present = [n for n in PRETRAINED if MODELS[n].is_installed()]
        st.caption(say("pretrained_intro"))
        for n in PRETRAINED:
            if n not in present:
                st.caption(say("pretrained_missing", name=n))
                st.code(MODELS[n].install or "", language="bash")
        text = st.text_input(tr(COMMON_TEXT, "text"), DEFAULT_TEXT, key="var_pre_text")
        for n in present:
            m = get_model(n, settings.device)
            if m is None:
                continue
            c = m.config
            kind = "encoder.self" if c.arch == "encoder" else "decoder.self"
            layer = c.n_layers_total // 2  # a middle layer: past the first layers' sinks
            key = str(BlockKey(kind, layer))
            try:
                rec = attend(n, settings.device, text, layers=[key], outputs=False)
            except (engine.InputError, ValueError) as exc:
                st.warning(str(exc))
                break
            st.markdown(f"**{n}** · {c.variant} · {c.n_heads} / {c.kv_heads}")
            left, right = st.columns([1, 4])
            with left:
                figure_with_download(kv_sharing_figure(c.n_heads, c.kv_heads, style=style),
                                     f"var_pre_share_{n}", f"dl_pre_share_{n}",
                                     name=f"{n}_kv_sharing", width="content")
            with right:
                fig = heads_row(rec[key], groups=group_of_heads(c.n_heads, c.kv_heads),
                                style=style, title=f"{n} · {block_label(style, key)}")
                figure_with_download(fig, f"var_pre_heads_{n}", f"dl_pre_heads_{n}",
                                     record=rec, block=kind, layer=layer, width="content")
        side_caption("ex_groups")

# -- MiniLM converted to G groups ------------------------------------------------------
with tabs["tab_minilm"]:
    if tabs["tab_minilm"].open:
        if not MODELS["minilm"].is_installed():
            st.info(say("minilm_missing"))
            st.code(MODELS["minilm"].install or "", language="bash")
        else:
            model = get_model("minilm", settings.device)
            if model is not None:
                cfg = model.config
                st.caption(say("converted"))
                st.session_state.setdefault("var_text", DEFAULT_TEXT)
                text = st.text_input(tr(COMMON_TEXT, "text"), key="var_text")
                options = allowed_kv_heads(cfg.n_heads, cfg.kv_heads)
                keep_valid("var_groups", options, 3)
                keep_valid("var_mlayer", list(range(cfg.n_encoder_layers)))
                c1, c2 = st.columns([2, 1])
                with c1:
                    g = st.segmented_control(say("groups"), options, key="var_groups",
                                             required=True,
                                             format_func=lambda v: f"{v} "
                                             f"({variant_name(cfg.n_heads, v)})") or 3
                with c2:
                    layer = st.selectbox(say("layer"), list(range(cfg.n_encoder_layers)),
                                         key="var_mlayer")
                key = str(BlockKey("encoder.self", layer))
                try:
                    with st.spinner(say("converting", g=g)):
                        base = attend("minilm", settings.device, text)
                        conv = attend("minilm", settings.device, text, kv_heads=g)
                except (engine.InputError, ValueError) as exc:
                    st.warning(str(exc))
                    st.stop()
                show_notices(base)
                cos = cosine(base.outputs["embedding"], conv.outputs["embedding"])
                delta = float(np.mean([np.abs(conv[k] - base[k]).mean() for k in base.keys()]))
                m1, m2, m3 = st.columns(3)
                m1.metric(say("cosine"), f"{cos:.4f}")
                m2.metric(say("mean_delta"), f"{delta:.4f}")
                m3.metric("K/V heads", f"{g} / {cfg.n_heads}")
                fig = kv_sharing_figure(cfg.n_heads, g, style=style)
                figure_with_download(fig, "var_minilm_share", "dl_minilm_share",
                                     name=f"minilm_G{g}_sharing", width="content")
                left, right = st.columns([4, 1])
                with right:
                    side_caption("ex_groups")
                    side_caption("ex_diff")
                with left:
                    groups = group_of_heads(cfg.n_heads, g)
                    fig = heads_row(conv[key], groups=groups, style=style,
                                    title=f"minilm G={g} · {block_label(style, key)}")
                    figure_with_download(fig, "var_minilm_heads", "dl_minilm_heads", record=conv,
                                         block="encoder.self", layer=layer, width="content")
                    diff = difference_maps(conv[key], base[key])
                    fig = heads_row(diff, groups=groups, diverging=True, style=style,
                                    title=say("diff_title",
                                             v=variant_name(cfg.n_heads, g))
                                    + f" · {block_label(style, key)}")
                    figure_with_download(fig, "var_minilm_diff", "dl_minilm_diff",
                                         name=f"minilm_G{g}_minus_mha", width="content",
                                         table=heads_table(diff, "delta"))

# -- parameters and KV-cache bytes -----------------------------------------------------
with tabs["tab_memory"]:
    if tabs["tab_memory"].open:
        rows = []
        formula: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        measured: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        lengths = np.asarray(LENGTHS, dtype=np.int64)
        configs: list[tuple[str, ModelConfig]] = []
        trained = [n for n in TRAINED if MODELS[n].is_installed()]
        base_cfg = None
        try:
            from engine.models.vaswani import vaswani

            base_cfg = vaswani()
        except ImportError:
            pass
        # The first open of this tab took 21 s behind one spinner: each step now says what
        # it measures (loading, parameter counts on the meta device, KV-cache prefills).
        n_configs = len(trained) + (3 if base_cfg is not None else 0) + 3
        with steps(bool(trained) + n_configs + 3 + len(trained)) as step:
            if trained:
                with step(say("step_load", n=len(trained))):
                    for n in trained:
                        m = get_model(n, settings.device)
                        if m is not None:
                            configs.append((n, m.config))
            if base_cfg is not None:
                configs += [(f"transformer-base {variant_name(8, g)}",
                             base_cfg.with_(n_kv_heads=g)) for g in (8, 2, 1)]
            configs += [(small_name(g), small_decoder_config(g)) for g in (8, 2, 1)]
            for label, c in configs:
                with step(say("step_params", name=label)):
                    per = c.kv_cache_bytes_per_token(4)
                    rows.append({"model": label, "variant": c.variant,
                                 "query heads": c.n_heads, "K/V heads": c.kv_heads,
                                 "head dim": c.head_dim, "decoder layers": c.n_decoder_layers,
                                 "parameters": parameter_count(c),
                                 "KV bytes / token (fp32)": per,
                                 "KV MiB at 1,024 tokens": round(per * 1024 / 2**20, 3)})
            table = pd.DataFrame(rows)
            st.subheader(say("params_table"))
            st.dataframe(readable_columns(table, style), hide_index=True, width="stretch",
                         column_config={  # thousands separators
                             style.say("parameters"):
                                 st.column_config.NumberColumn(format="localized")})
            for g in (8, 2, 1):
                c = small_decoder_config(g)
                with step(say("step_kv", name=c.name, lo=int(lengths[0]),
                              hi=int(lengths[-1]))):
                    formula[c.name] = (lengths, lengths * c.kv_cache_bytes_per_token(4))
                    measured[c.name] = (lengths, np.asarray(small_kv_bytes(g, LENGTHS)))
            trained_lengths = tuple(n for n in LENGTHS if n <= 64) + (64,)
            for label, c in configs:
                if label in TRAINED:
                    tl = np.asarray(sorted(set(trained_lengths)), dtype=np.int64)
                    with step(say("step_kv", name=label, lo=int(tl[0]), hi=int(tl[-1]))):
                        formula[label] = (tl, tl * c.kv_cache_bytes_per_token(4))
                        measured[label] = (tl, np.asarray(trained_kv_bytes(
                            label, settings.device, tuple(int(x) for x in tl))))
        st.session_state.setdefault("var_log", True)
        log = st.toggle(say("log"), key="var_log")
        left, right = st.columns([4, 1])
        with right:
            side_caption("ex_memory")
        with left:
            fig = bytes_vs_length_figure(formula, measured, style=style, log=log,
                                         title="KV cache vs sequence length")
            long_rows = [{"model": n, "tokens": int(x), "formula_bytes": int(f),
                          "measured_bytes": int(mv)}
                         for n, (xs, fs) in formula.items()
                         for x, f, mv in zip(xs, fs, measured[n][1], strict=True)]
            figure_with_download(fig, "var_bytes", "dl_bytes", name="kv_cache_vs_length",
                                 table=readable_columns(pd.DataFrame(long_rows), style),
                                 width="content")
        st.caption(say("measured_on", models=", ".join(measured)))

# -- latency measured here -------------------------------------------------------------
with tabs["tab_latency"]:
    if tabs["tab_latency"].open:
        st.caption(say("ex_latency"))
        keep_valid("var_context", [64, 256, 1024], 256)
        context = st.segmented_control(say("context"), [64, 256, 1024], key="var_context",
                                       required=True) or 256
        if st.button(say("measure"), key="var_measure", type="primary"):
            results = []
            with st.spinner(say("measuring")):
                for g in (8, 2, 1):
                    best, med = small_latency(g, context)
                    results.append({"model": small_name(g), "context": context,
                                    "ms / token": best, "median": med})
                for n in TRAINED:
                    if MODELS[n].is_installed():
                        m = get_model(n, settings.device)
                        if m is None:
                            continue
                        ctx, best, med = trained_latency(m, context)
                        results.append({"model": n, "context": ctx, "ms / token": best,
                                        "median": med})
            st.session_state["var_latency"] = results
        results = st.session_state.get("var_latency")
        if not results:
            st.info(say("latency_hint"))
        else:
            table = pd.DataFrame(results)
            fig = bars_figure({f"{r['model']} @{r['context']}": r["ms / token"] for r in results},
                              y_title="ms per decoded token (CPU, best of 5)", style=style,
                              title="decode latency on this machine")
            table = readable_columns(table, style)
            figure_with_download(fig, "var_latency_fig", "dl_latency", name="latency_here",
                                 table=table, width="content")
            st.dataframe(table.round(3), hide_index=True)

# -- GPU benchmark results (issue 8) ---------------------------------------------------


def no_machine_paths(command: str) -> str:
    """The benchmark's command without the paths of the machine it ran on (`--out
    /root/out` → `--out bench/results`; other absolute paths → their file name)."""
    command = re.sub(r"(--out[ =])\S+", r"\1bench/results", str(command))
    return re.sub(r"(?<![\w.])/(?:[\w.-]+/)+([\w.-]+)", r"\1", command)


def readable_table(df: pd.DataFrame) -> None:
    """A benchmark table with readable headers and units (READABLE): shown as labels over
    the data's own column names in English, as the columns themselves under 中文."""
    if style.words:
        st.dataframe(readable_columns(df, style, READABLE), hide_index=True, width="stretch")
    else:
        st.dataframe(df, hide_index=True, width="stretch", column_config={
            c: st.column_config.Column(READABLE[c]) for c in df.columns if c in READABLE})


with tabs["tab_gpu"]:
    if tabs["tab_gpu"].open:
        results = kv_results()
        if not results:
            st.info(say("gpu_none"))
            st.caption(say("gpu_run"))
            st.code("python bench/bench_kv.py            # on a GPU machine\n"
                    "python bench/plot_results.py        # the figures shown here",
                    language="bash")
        else:
            devices = sorted(results, key=lambda d: (d != "cuda", d))
            keep_valid("var_gpu_device", devices)
            device = st.segmented_control(say("device"), devices, key="var_gpu_device",
                                          required=True) or devices[0]
            result = results[device]
            meta = result.get("meta", {})
            cfg = meta.get("scale_settings", {})
            st.caption(say("gpu_meta", name=meta.get("device_name") or device,
                          torch=meta.get("torch", "?"), date=str(meta.get("date", "?"))[:10],
                          cmd=no_machine_paths(meta.get("command", "python bench/bench_kv.py"))))
            if cfg:
                st.caption(say("gpu_config", d_model=cfg.get("d_model"),
                              heads=cfg.get("n_heads"), d_head=cfg.get("d_head"),
                              kv=", ".join(str(k) for k in cfg.get("kv_heads", [])),
                              layers=cfg.get("n_layers"), dtype=cfg.get("dtype")))
            bw = result.get("copy_bandwidth", {})
            if bw.get("copy_GBps"):
                st.caption(say("gpu_bw", bw=bw["copy_GBps"]))
            if "graph_decode_ms" in result["points"][0]:
                st.caption(say("gpu_paths"))
            shares = [p.get(k) for p in result["points"] for k in p if k.endswith("fraction")]
            if any(isinstance(v, (int, float)) and v > 1 for v in shares):
                st.caption(say("gpu_over_100"))
            points = pd.DataFrame(result["points"])
            head = headline_table(result)
            if head is not None:
                st.subheader(say("gpu_headline"))
                readable_table(head.round(3))
            figs = kv_figures(device)
            for fname, spec in figs.items():
                fig = translated_figure(go.Figure(spec), style)
                figure_with_download(fig, f"var_gpu_{device}_{fname}", f"dl_gpu_{device}_{fname}",
                                     table=points, name=f"kv_{fname}_{device}", width="content")
            if not figs:  # plot_results.py not run: draw latency against context here
                batch = int(points["batch"].min())
                sel = points[(points["batch"] == batch) & (points["status"] == "ok")] \
                    if "status" in points else points[points["batch"] == batch]
                series = {v: (g["context"].to_numpy(), g["decode_ms"].to_numpy())
                          for v, g in sel.groupby("variant")}
                fig = bytes_vs_length_figure(series, style=style, y_title="decode ms / token",
                                             log=True, title=style.say(
                                                 "{device}: decode latency, batch {batch}",
                                                 device=device, batch=batch))
                fig.update_xaxes(title=dict(text=style.say("context (tokens)")), type="log")
                figure_with_download(fig, f"var_gpu_{device}_latency",
                                     f"dl_gpu_{device}_latency", table=points,
                                     name=f"kv_latency_{device}", width="content")
            with st.expander(say("gpu_points", n=len(points))):
                readable_table(points)
