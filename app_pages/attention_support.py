"""What the Attention page's tabs share: table and caption helpers, and the cached passes that
some tabs run besides the page's own record (a long input's all-layer summary, greedy decoding
with heads off, the KV cache measured step by step)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import streamlit as st
import torch

import engine
from app_pages.attention_text import KIND_NAMES, T
from app_pages.common import (
    attend,
)
from app_pages.i18n import lang, tr
from engine.core.transformer import Request
from engine.decode.greedy import generate
from viz.aggregate import mean_heads, rollout_layers
from viz.figures.long_input import block_average, block_size
from viz.metrics import head_metrics

FULL_HEATMAP_MAX = 512  # up to here the full map is drawn (zoom/pan in the browser)
WINDOW_MAX = 256  # the zoom window of a longer map
ROLLOUT_MAX = 512  # rollout is a T×T product per layer: skipped above this
MEASURE_STEPS = 32  # greedy steps run to read the real KV cache (the formula covers the rest)


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
                model.transformer.encode(x, req=req, record=reducer)
            else:
                model.transformer.decode(x, req=req, record=reducer)
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
    new = generate(model.transformer, ids, n, eos_id=cfg.eos_id,
                   req=Request(record=(), heads_off=off))
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
    generate(model.transformer, ids, n, eos_id=None,
                         on_step=lambda step, cache: sizes.append(int(cache.bytes_used)))
    return sizes
