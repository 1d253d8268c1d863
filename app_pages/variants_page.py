"""Variants page: multi-head, grouped-query and multi-query attention (MHA / GQA / MQA) on
the same model (Shazeer, 2019, "Fast Transformer Decoding"; Ainslie et al., 2023, "GQA").

Wiring only: the three trained date normalisers side by side, MiniLM converted to G K/V
groups, parameters and KV-cache bytes against sequence length (formula and measured through
the engine's KVCache), a small latency measurement on this machine, and the GPU benchmark
results of bench/results/ when they exist.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

import engine
from app_pages.common import attend, current_settings, current_style, get_model, show_notices
from app_pages.download import download_menu
from app_pages.i18n import COMMON, tabs_keeping_choice, tr
from app_pages.variants_text import T
from app_pages.widget_state import keep_valid, persist
from engine.core.config import ModelConfig, variant_name
from engine.core.transformer import Transformer, init_weights
from engine.models.registry import MODELS
from engine.variants import allowed_kv_heads, count_parameters
from viz.figures.bars import bars_figure
from viz.figures.heads_row import difference_maps, group_of_heads, heads_row
from viz.figures.kv_cache import bytes_vs_length_figure
from viz.figures.kv_sharing import kv_sharing_figure

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TRAINED = ("seq2seq-mha", "seq2seq-gqa", "seq2seq-mqa")
TRAIN_COMMAND = ".venv/bin/python -m engine.train.dates --variant all"
DEFAULT_DATE = "March 3rd, 2021"
DEFAULT_TEXT = "The animal didn't cross the street because it was too tired."
LENGTHS = (16, 64, 256, 1024)



def side_caption(key: str) -> None:
    st.caption(tr(T, key))


def small_config(kv: int) -> ModelConfig:
    """The random-weight decoder used for live measurements (only its shape matters)."""
    return ModelConfig(arch="decoder", vocab_size=512, d_model=256, n_heads=8, n_kv_heads=kv,
                       d_ff=512, n_decoder_layers=4, positions="rope", norm="rmsnorm",
                       norm_position="pre", final_norm=True, max_len=2048, bias=False,
                       activation="gelu", name=f"small-{variant_name(8, kv)}")


@st.cache_resource(show_spinner=False)
def small_decoder(kv: int) -> Transformer:
    return init_weights(Transformer(small_config(kv)), seed=0).eval()


def meta_params(cfg: ModelConfig) -> int:
    """Parameter count of a config without allocating its weights."""
    with torch.device("meta"):
        return count_parameters(Transformer(cfg))


@st.cache_data(show_spinner=False)
def measured_bytes(kv: int, lengths: tuple[int, ...]) -> list[int]:
    """cache.bytes_used of the small decoder after a prefill of each length."""
    model = small_decoder(kv)
    out = []
    with torch.inference_mode():
        for n in lengths:
            cache = model.new_cache(n)
            model.decode(torch.zeros(1, n, dtype=torch.long), cache=cache)
            out.append(int(cache.bytes_used))
    return out


@st.cache_data(show_spinner=False)
def trained_measured_bytes(name: str, device: str, lengths: tuple[int, ...]) -> list[int]:
    """cache.bytes_used of a trained encoder-decoder after a decoder prefill of each length."""
    model = engine.load(name, device)
    m = model.transformer
    src = torch.tensor([model.codec.encode(DEFAULT_DATE).ids], device=model.device)
    out = []
    with torch.inference_mode():
        memory = m.encode(src)
        for n in lengths:
            cache = m.new_cache(n)
            ids = torch.full((1, n), m.cfg.bos_id, dtype=torch.long, device=model.device)
            m.decode(ids, memory=memory, cache=cache)
            out.append(int(cache.bytes_used))
    return out


def one_thread() -> None:
    """Small models decode faster on one intra-op thread here (the measurement behind
    engine.api.pick_threads)."""
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def time_decode(model: Transformer, context: int, steps: int, repeats: int = 5,
                memory=None) -> tuple[float, float]:
    """(best, median) milliseconds per decoded token after a prefill of `context`.
    The best of a few repeats is the least disturbed by other work on a shared CPU."""
    per_token = []
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first run warms up
            cache = model.new_cache(context + steps)
            ids = torch.zeros(1, context, dtype=torch.long)
            if memory is not None:
                ids[:] = model.cfg.bos_id
            model.decode(ids, memory=memory, cache=cache)
            step = torch.zeros(1, 1, dtype=torch.long)
            start = time.perf_counter()
            for _ in range(steps):
                h = model.decode(step, memory=memory, cache=cache)
                step = model.lm_head(h[:, -1]).argmax(-1, keepdim=True)
            per_token.append((time.perf_counter() - start) / steps * 1000)
    runs = per_token[1:]
    return min(runs), statistics.median(runs)


def kv_results() -> dict[str, dict]:
    """The KV benchmark of issue 8 (bench/bench_kv.py): {device: result} from every
    bench/results/kv_<device>.json that holds measured points."""
    out: dict[str, dict] = {}
    if not RESULTS.is_dir():
        return out
    for path in sorted(RESULTS.glob("kv_*.json")):
        if path.name.startswith("kv_figures_"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("points"), list) and data["points"]:
            out[path.stem.removeprefix("kv_")] = data
    return out


def kv_figures(device: str) -> dict[str, dict]:
    """The Plotly figures bench/plot_results.py wrote for a device (latency, memory,
    bandwidth), as figure dicts; empty when it has not been run."""
    path = RESULTS / f"kv_figures_{device}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and "data" in v}


def headline_table(result: dict) -> pd.DataFrame | None:
    """One row per variant of the benchmark's headline point (its batch and context)."""
    head = result.get("headline")
    if not isinstance(head, dict):
        return None
    rows = [{"variant": v, "batch": head.get("batch"), "context": head.get("context"), **m}
            for v, m in head.items() if isinstance(m, dict)]
    return pd.DataFrame(rows) if rows else None


# ----------------------------------------------------------------------------- page

persist(("var_tab", "var_date", "var_text", "var_groups", "var_kind", "var_layer", "var_mlayer",
         "var_context", "var_log", "var_gpu_device"))
one_thread()  # every model on this page is small
settings = current_settings()
style = current_style()
st.title(tr(T, "title"))
st.caption(tr(T, "intro"))
names = ["tab_trained", "tab_minilm", "tab_memory", "tab_latency", "tab_gpu"]
tabs = dict(zip(names, tabs_keeping_choice(T, "var_tab", names), strict=True))

# -- the three trained encoder-decoders ------------------------------------------------
with tabs["tab_trained"]:
    if tabs["tab_trained"].open:
        installed = [n for n in TRAINED if MODELS[n].is_installed()]
        if not installed:
            st.info(tr(T, "not_trained"))
            st.code(TRAIN_COMMAND, language="bash")
        else:
            if len(installed) < len(TRAINED):
                st.info(tr(T, "only_some", names=", ".join(installed)))
                st.code(TRAIN_COMMAND, language="bash")
            st.session_state.setdefault("var_date", DEFAULT_DATE)
            text = st.text_input(tr(T, "date"), key="var_date")
            models = {n: get_model(n, settings.device) for n in installed}
            models = {n: m for n, m in models.items() if m is not None}
            if models:
                first = next(iter(models.values()))
                cfg0 = first.config
                kinds = ["decoder.cross", "decoder.self", "encoder.self"]
                keep_valid("var_kind", kinds)
                c1, c2 = st.columns([2, 1])
                with c1:
                    kind = st.segmented_control(tr(T, "block"), kinds, key="var_kind",
                                                required=True,
                                                format_func=lambda k: tr(T, k)) or kinds[0]
                n_layers = (cfg0.n_encoder_layers if kind == "encoder.self"
                            else cfg0.n_decoder_layers)
                keep_valid("var_layer", list(range(n_layers)))
                with c2:
                    layer = st.selectbox(tr(T, "layer"), list(range(n_layers)), key="var_layer")
                key = f"{kind}.{layer}"
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
                st.caption(tr(T, "shared_target"))
                sharing = st.columns(len(models))
                for col, (n, m) in zip(sharing, models.items(), strict=True):
                    c = m.config
                    with col:
                        st.markdown(f"**{n}** · {c.variant}")
                        st.caption(tr(T, "output"))
                        st.code(own[n].outputs.get("generated", ""), language=None)
                        fig = kv_sharing_figure(c.n_heads, c.kv_heads, style=style)
                        st.plotly_chart(fig, key=f"var_share_{n}", width="content")
                        download_menu(fig, key=f"dl_share_{n}", name=f"{n}_kv_sharing")
                left, right = st.columns([4, 1])
                with right:
                    side_caption("ex_groups")
                with left:
                    for n, rec in recs.items():
                        c = models[n].config
                        groups = group_of_heads(c.n_heads, c.kv_heads)
                        fig = heads_row(rec[key], groups=groups, style=style,
                                        title=f"{n} · {key}")
                        st.plotly_chart(fig, key=f"var_heads_{n}", width="content")
                        download_menu(fig, rec, key=f"dl_heads_{n}", block=kind, layer=layer)
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
                                            title=tr(T, "diff_title", v=v) + f" · {key}")
                            st.plotly_chart(fig, key=f"var_diff_{n}", width="content")
                            download_menu(fig, key=f"dl_diff_{n}", name=f"{n}_minus_mha_{key}",
                                          table=pd.DataFrame({
                                              "head": np.repeat(np.arange(diff.shape[0]),
                                                                diff.shape[1] * diff.shape[2]),
                                              "query_index": np.tile(np.repeat(
                                                  np.arange(diff.shape[1]), diff.shape[2]),
                                                  diff.shape[0]),
                                              "key_index": np.tile(np.arange(diff.shape[2]),
                                                                   diff.shape[0] * diff.shape[1]),
                                              "delta": diff.reshape(-1)}))

# -- MiniLM converted to G groups ------------------------------------------------------
with tabs["tab_minilm"]:
    if tabs["tab_minilm"].open:
        if not MODELS["minilm"].is_installed():
            st.info(tr(T, "minilm_missing"))
            st.code(MODELS["minilm"].install or "", language="bash")
        else:
            model = get_model("minilm", settings.device)
            if model is not None:
                cfg = model.config
                st.caption(tr(T, "converted"))
                st.session_state.setdefault("var_text", DEFAULT_TEXT)
                text = st.text_input(tr(COMMON, "text"), key="var_text")
                options = allowed_kv_heads(cfg.n_heads, cfg.kv_heads)
                keep_valid("var_groups", options, 3)
                keep_valid("var_mlayer", list(range(cfg.n_encoder_layers)))
                c1, c2 = st.columns([2, 1])
                with c1:
                    g = st.segmented_control(tr(T, "groups"), options, key="var_groups",
                                             required=True,
                                             format_func=lambda v: f"{v} "
                                             f"({variant_name(cfg.n_heads, v)})") or 3
                with c2:
                    layer = st.selectbox(tr(T, "layer"), list(range(cfg.n_encoder_layers)),
                                         key="var_mlayer")
                key = f"encoder.self.{layer}"
                try:
                    with st.spinner(tr(T, "converting", g=g)):
                        base = attend("minilm", settings.device, text)
                        conv = attend("minilm", settings.device, text, kv_heads=g)
                except (engine.InputError, ValueError) as exc:
                    st.warning(str(exc))
                    st.stop()
                show_notices(base)
                e0, e1 = base.outputs["embedding"], conv.outputs["embedding"]
                cos = float(np.dot(e0, e1) / (np.linalg.norm(e0) * np.linalg.norm(e1) + 1e-12))
                delta = float(np.mean([np.abs(conv[k] - base[k]).mean() for k in base.keys()]))
                m1, m2, m3 = st.columns(3)
                m1.metric(tr(T, "cosine"), f"{cos:.4f}")
                m2.metric(tr(T, "mean_delta"), f"{delta:.4f}")
                m3.metric("K/V heads", f"{g} / {cfg.n_heads}")
                fig = kv_sharing_figure(cfg.n_heads, g, style=style)
                st.plotly_chart(fig, key="var_minilm_share", width="content")
                download_menu(fig, key="dl_minilm_share", name=f"minilm_G{g}_sharing")
                left, right = st.columns([4, 1])
                with right:
                    side_caption("ex_groups")
                    side_caption("ex_diff")
                with left:
                    groups = group_of_heads(cfg.n_heads, g)
                    fig = heads_row(conv[key], groups=groups, style=style,
                                    title=f"minilm G={g} · {key}")
                    st.plotly_chart(fig, key="var_minilm_heads", width="content")
                    download_menu(fig, conv, key="dl_minilm_heads", block="encoder.self",
                                  layer=layer)
                    diff = difference_maps(conv[key], base[key])
                    fig = heads_row(diff, groups=groups, diverging=True, style=style,
                                    title=tr(T, "diff_title",
                                             v=variant_name(cfg.n_heads, g)) + f" · {key}")
                    st.plotly_chart(fig, key="var_minilm_diff", width="content")
                    download_menu(fig, key="dl_minilm_diff", name=f"minilm_G{g}_minus_mha",
                                  table=pd.DataFrame({
                                      "head": np.repeat(np.arange(diff.shape[0]),
                                                        diff.shape[1] * diff.shape[2]),
                                      "delta": diff.reshape(-1)}))

# -- parameters and KV-cache bytes -----------------------------------------------------
with tabs["tab_memory"]:
    if tabs["tab_memory"].open:
        rows = []
        formula: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        measured: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        lengths = np.asarray(LENGTHS, dtype=np.int64)
        configs: list[tuple[str, ModelConfig]] = []
        for n in TRAINED:
            if MODELS[n].is_installed():
                m = get_model(n, settings.device)
                if m is not None:
                    configs.append((n, m.config))
        base_cfg = None
        try:
            from engine.models.vaswani import vaswani

            base_cfg = vaswani()
        except ImportError:
            pass
        if base_cfg is not None:
            configs += [(f"transformer-base {variant_name(8, g)}", base_cfg.with_(n_kv_heads=g))
                        for g in (8, 2, 1)]
        configs += [(small_config(g).name, small_config(g)) for g in (8, 2, 1)]
        for label, c in configs:
            per = c.kv_cache_bytes_per_token(4)
            rows.append({"model": label, "variant": c.variant,
                         "query heads": c.n_heads, "K/V heads": c.kv_heads,
                         "head dim": c.head_dim, "decoder layers": c.n_decoder_layers,
                         "parameters": meta_params(c), "KV bytes / token (fp32)": per,
                         "KV MiB at 1,024 tokens": round(per * 1024 / 2**20, 3)})
        table = pd.DataFrame(rows)
        st.subheader(tr(T, "params_table"))
        st.dataframe(table, hide_index=True, width="stretch")
        with st.spinner(tr(T, "measuring")):
            for g in (8, 2, 1):
                c = small_config(g)
                formula[c.name] = (lengths, lengths * c.kv_cache_bytes_per_token(4))
                measured[c.name] = (lengths, np.asarray(measured_bytes(g, LENGTHS)))
            trained_lengths = tuple(n for n in LENGTHS if n <= 64) + (64,)
            for label, c in configs:
                if label in TRAINED:
                    tl = np.asarray(sorted(set(trained_lengths)), dtype=np.int64)
                    formula[label] = (tl, tl * c.kv_cache_bytes_per_token(4))
                    measured[label] = (tl, np.asarray(trained_measured_bytes(
                        label, settings.device, tuple(int(x) for x in tl))))
        st.session_state.setdefault("var_log", True)
        log = st.toggle(tr(T, "log"), key="var_log")
        left, right = st.columns([4, 1])
        with right:
            side_caption("ex_memory")
        with left:
            fig = bytes_vs_length_figure(formula, measured, style=style, log=log,
                                         title="KV cache vs sequence length")
            st.plotly_chart(fig, key="var_bytes", width="content")
            long_rows = [{"model": n, "tokens": int(x), "formula_bytes": int(f),
                          "measured_bytes": int(mv)}
                         for n, (xs, fs) in formula.items()
                         for x, f, mv in zip(xs, fs, measured[n][1], strict=True)]
            download_menu(fig, key="dl_bytes", name="kv_cache_vs_length",
                          table=pd.DataFrame(long_rows))
        st.caption(tr(T, "measured_on", models=", ".join(measured)))

# -- latency measured here -------------------------------------------------------------
with tabs["tab_latency"]:
    if tabs["tab_latency"].open:
        st.caption(tr(T, "ex_latency"))
        keep_valid("var_context", [64, 256, 1024], 256)
        context = st.segmented_control(tr(T, "context"), [64, 256, 1024], key="var_context",
                                       required=True) or 256
        if st.button(tr(T, "measure"), key="var_measure", type="primary"):
            results = []
            with st.spinner(tr(T, "measuring")):
                for g in (8, 2, 1):
                    best, med = time_decode(small_decoder(g), context, steps=8)
                    results.append({"model": small_config(g).name, "context": context,
                                    "ms / token": best, "median": med})
                for n in TRAINED:
                    if MODELS[n].is_installed():
                        m = get_model(n, settings.device)
                        if m is None:
                            continue
                        src = torch.tensor([m.codec.encode(DEFAULT_DATE).ids],
                                           device=m.device)
                        with torch.inference_mode():
                            memory = m.transformer.encode(src)
                        ctx = min(context, m.config.max_len - 16)
                        best, med = time_decode(m.transformer, ctx, steps=8, memory=memory)
                        results.append({"model": n, "context": ctx, "ms / token": best,
                                        "median": med})
            st.session_state["var_latency"] = results
        results = st.session_state.get("var_latency")
        if not results:
            st.info(tr(T, "latency_hint"))
        else:
            table = pd.DataFrame(results)
            fig = bars_figure({f"{r['model']} @{r['context']}": r["ms / token"] for r in results},
                              y_title="ms per decoded token (CPU, best of 5)", style=style,
                              title="decode latency on this machine")
            st.plotly_chart(fig, key="var_latency_fig", width="content")
            st.dataframe(table.round(3), hide_index=True)
            download_menu(fig, key="dl_latency", name="latency_here", table=table)

# -- GPU benchmark results (issue 8) ---------------------------------------------------
with tabs["tab_gpu"]:
    if tabs["tab_gpu"].open:
        results = kv_results()
        if not results:
            st.info(tr(T, "gpu_none"))
            st.caption(tr(T, "gpu_run"))
            st.code("python bench/bench_kv.py            # on a GPU machine\n"
                    "python bench/plot_results.py        # the figures shown here",
                    language="bash")
        else:
            devices = sorted(results, key=lambda d: (d != "cuda", d))
            keep_valid("var_gpu_device", devices)
            device = st.segmented_control(tr(T, "device"), devices, key="var_gpu_device",
                                          required=True) or devices[0]
            result = results[device]
            meta = result.get("meta", {})
            cfg = meta.get("scale_settings", {})
            st.caption(tr(T, "gpu_meta", name=meta.get("device_name") or device,
                          torch=meta.get("torch", "?"), date=str(meta.get("date", "?"))[:10],
                          cmd=meta.get("command", "python bench/bench_kv.py")))
            if cfg:
                st.caption(tr(T, "gpu_config", d_model=cfg.get("d_model"),
                              heads=cfg.get("n_heads"), d_head=cfg.get("d_head"),
                              kv=", ".join(str(k) for k in cfg.get("kv_heads", [])),
                              layers=cfg.get("n_layers"), dtype=cfg.get("dtype")))
            bw = result.get("copy_bandwidth", {})
            if bw.get("copy_GBps"):
                st.caption(tr(T, "gpu_bw", bw=bw["copy_GBps"]))
            if "graph_decode_ms" in result["points"][0]:
                st.caption(tr(T, "gpu_paths"))
            points = pd.DataFrame(result["points"])
            head = headline_table(result)
            if head is not None:
                st.subheader(tr(T, "gpu_headline"))
                st.dataframe(head.round(3), hide_index=True, width="stretch")
            figs = kv_figures(device)
            for fname, spec in figs.items():
                fig = go.Figure(spec)
                st.plotly_chart(fig, key=f"var_gpu_{device}_{fname}", width="content")
                download_menu(fig, key=f"dl_gpu_{device}_{fname}", table=points,
                              name=f"kv_{fname}_{device}")
            if not figs:  # plot_results.py not run: draw latency against context here
                batch = int(points["batch"].min())
                sel = points[(points["batch"] == batch) & (points["status"] == "ok")] \
                    if "status" in points else points[points["batch"] == batch]
                series = {v: (g["context"].to_numpy(), g["decode_ms"].to_numpy())
                          for v, g in sel.groupby("variant")}
                fig = bytes_vs_length_figure(series, style=style, y_title="decode ms / token",
                                             log=True, title=f"{device}: decode latency, "
                                             f"batch {batch}")
                fig.update_xaxes(title=dict(text="context (tokens)"), type="log")
                st.plotly_chart(fig, key=f"var_gpu_{device}_latency", width="content")
                download_menu(fig, key=f"dl_gpu_{device}_latency", table=points,
                              name=f"kv_latency_{device}")
            with st.expander(tr(T, "gpu_points", n=len(points))):
                st.dataframe(points, hide_index=True, width="stretch")
