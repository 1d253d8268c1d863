"""Masks: which keys a query may read — none, causal, padding, a sliding window, knock-outs.

Wiring only: widgets → engine (`attend(mask=…, window=…, knockout=…, scores=True)`, or
`attend_batch` for padding) → viz.figures.masks.masks_figure. The boolean mask shown is the one the
engine applied, read off the recorded scores (its False cells, and only they, are −∞).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import engine
from app_pages.common import attend, current_style, get_model, model_picker, show_notices
from app_pages.download import download_menu
from app_pages.i18n import COMMON, tr
from viz.figures.masks import masks_figure

DEFAULT_TEXT = "The cat sat on the mat because it was tired."
DEFAULT_TEXT2 = "A second, longer sentence in the same batch makes the first one padded."
WINDOW_MAX = 2048

T = {
    "choose": ("Choose…", "请选择…"),
    "title": ("Masks: which keys may a query read?", "掩码:查询可以读取哪些键?"),
    "intro": (
        "A mask removes keys before the softmax: their score becomes −∞, so their weight is "
        "exactly 0 and the remaining weights of the row are renormalised to sum to 1.",
        "掩码在 softmax 之前去掉某些键:它们的分数变成 −∞,权重恰好为 0,该行剩下的权重重新"
        "归一化,和为 1。",
    ),
    "kinds_note": (
        "Encoder and decoder models; the encoder-decoders' masks are on the Attention page.",
        "这里提供编码器和解码器模型;编码器-解码器的掩码见“注意力”页。",
    ),
    "empty": ("Type a sentence to see its masks.", "请输入一句话以查看掩码。"),
    "mode": ("Mask", "掩码"),
    "mode_none": ("none (every key)", "无(所有键)"),
    "mode_causal": ("causal (no future keys)", "因果(看不到未来的键)"),
    "mode_padding": ("padding (batch of two)", "填充(两句一批)"),
    "text2": ("Second sentence of the batch", "同一批中的第二句"),
    "item": ("Show", "显示"),
    "item_n": ("sentence {n}", "第 {n} 句"),
    "padding_note": (
        "The two sentences run as one batch, right-padded to {t} positions: sentence {n} has "
        "{real} real tokens and {pad} pad tokens. The pad keys are masked for every query.",
        "两句作为一批运行,右侧填充到 {t} 个位置:第 {n} 句有 {real} 个真实词元和 {pad} 个填充"
        "词元。所有查询都看不到填充的键。",
    ),
    "no_padding": (
        "Sentence {n} is the longer one, so it has no padding: show the other one, or make "
        "it shorter.",
        "第 {n} 句更长,所以没有填充:请显示另一句,或把它改短。",
    ),
    "padding_decoder": (
        "A decoder keeps its causal mask under padding as well.",
        "解码器在填充时仍保留因果掩码。",
    ),
    "window": ("Sliding window (0 = off)", "滑动窗口(0 = 关闭)"),
    "window_help": (
        "Each query keeps at most this many keys: under a causal mask the last N up to "
        "itself, otherwise the keys within N − 1 positions on either side.",
        "每个查询最多保留这么多键:因果掩码下是到自己为止的最后 N 个,否则是两侧各 N − 1 个"
        "位置以内的键。",
    ),
    "knockout": ("Knock out key tokens", "屏蔽某些键词元"),
    "knockout_help": (
        "No query may attend to these positions (in both sentences of a padded batch).",
        "任何查询都不能关注这些位置(填充批次中两句都适用)。",
    ),
    "block": ("Layer", "层"),
    "head": ("Head", "头"),
    "figure_help": (
        "Left: the boolean mask (dark = may attend). Middle: scores q·k/√d before softmax; "
        "grey cells marked × are −∞. Right: the softmax weights — exactly 0 where masked.",
        "左:布尔掩码(深色 = 可以关注)。中:softmax 之前的分数 q·k/√d;标 × 的灰色格子是 "
        "−∞。右:softmax 权重——被屏蔽处恰好为 0。",
    ),
    "changes": ("What changes in the output", "输出发生了什么变化"),
    "changes_help": (
        "Compared with the same sentence on its own under the model's default mask "
        "({default}).",
        "与同一句话单独运行、使用模型默认掩码({default})的结果相比。",
    ),
    "default_encoder": ("none", "无"),
    "default_decoder": ("causal", "因果"),
    "cosine": ("Embedding cosine to the default run", "与默认运行的句向量余弦相似度"),
    "max_change_head": ("Max |Δ weight|, this head", "本头最大 |Δ 权重|"),
    "max_change_layer": ("Max |Δ weight|, all heads of this layer", "本层所有头最大 |Δ 权重|"),
    "masked_cells": ("Masked cells", "被屏蔽的格子"),
    "topk_default": ("Next token, default run", "下一个词元(默认运行)"),
    "topk_masked": ("Next token, with this mask", "下一个词元(使用当前掩码)"),
    "token": ("token", "词元"),
    "prob": ("probability", "概率"),
    "load_failed": ("Could not load {name}: {msg}", "无法加载 {name}:{msg}"),
    "panel_mask": ("mask (may attend)", "掩码(可以关注)"),
    "panel_scores": ("scores (pre-softmax)", "分数(softmax 之前)"),
    "panel_weights": ("weights (softmax)", "权重(softmax 之后)"),
    "fig_title": ("{block}, head {head}", "{block},头 {head}"),
}

MODES = ("none", "causal", "padding")


def download(fig, name: str, **kw) -> None:
    download_menu(fig, name=name, key=f"dl_{name}", **kw)


@st.cache_data(show_spinner=False, max_entries=32)
def attend_batch(_model: engine.LoadedModel, name: str, device: str, texts: tuple[str, ...],
                 **kwargs) -> list[engine.AttentionRecord]:
    """Cached `model.attend_batch` (name and device key the cache; the model is not hashed)."""
    return _model.attend_batch(list(texts), **kwargs)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def visible(token: str) -> str:
    """Token text with newlines and tabs shown as escapes (a table cell stays one line)."""
    return str(token).replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def topk_table(top_k) -> pd.DataFrame:
    return pd.DataFrame({tr(T, "token"): [visible(t) for t, _ in top_k],
                         tr(T, "prob"): [float(p) for _, p in top_k]})


st.title(tr(T, "title"))
STYLE = current_style()  # the sidebar's choice, read once per run
st.markdown(tr(T, "intro"))
device = st.session_state.get("device", "auto")
precision = int(st.session_state.get("precision", 3))

top = st.columns([2, 3])
with top[0]:
    name = model_picker("masks_model", kinds=("encoder", "decoder"), default="minilm")
    st.caption(tr(T, "kinds_note"))
if name is None:
    st.stop()
try:
    model = get_model(name, device)
except ImportError as exc:  # a model marked installed whose loader is missing
    st.error(tr(T, "load_failed", name=name, msg=str(exc)))
    st.stop()
if model is None:
    st.stop()
cfg = model.config
with top[1]:
    text = st.text_input(tr(COMMON, "text"), value=DEFAULT_TEXT, key="masks_text",
                         max_chars=4000)
if not text.strip():
    st.info(tr(T, "empty"))
    st.stop()

mode_names = {m: tr(T, f"mode_{m}") for m in MODES}
row = st.columns([3, 1, 3])
with row[0]:
    mode = st.radio(tr(T, "mode"), MODES, format_func=mode_names.get, horizontal=True,
                    key="masks_mode", index=1)  # causal: the page opens on a visible mask
with row[1]:
    window = int(st.number_input(tr(T, "window"), 0, WINDOW_MAX, 0, key="masks_window",
                                 help=tr(T, "window_help")))
text2 = None
if mode == "padding":
    text2 = st.text_input(tr(T, "text2"), value=DEFAULT_TEXT2, key="masks_text2",
                          max_chars=4000)
    if not text2.strip():
        st.info(tr(T, "empty"))
        st.stop()

self_blocks = [k for k in model.block_keys() if ".self." in k]
sel = st.columns([3, 2, 2])
with sel[0]:
    block = st.selectbox(tr(T, "block"), self_blocks, key="masks_block")
with sel[1]:
    head = int(st.slider(tr(T, "head"), 0, cfg.n_heads - 1, 0, key="masks_head"))

try:
    base = attend(name, device, text, mask="auto", scores=True, layers=[block])
except (engine.InputError, ValueError) as exc:
    st.error(tr(COMMON, "error", msg=str(exc)))
    st.stop()
show_notices(base)
tokens = base.tokens

with row[2]:
    labels = [f"{i}: {t}" for i, t in enumerate(tokens)]
    knockout = st.multiselect(tr(T, "knockout"), list(range(len(tokens))),
                              format_func=lambda i: labels[i], key=f"masks_knock_{len(tokens)}",
                              help=tr(T, "knockout_help"), placeholder=tr(T, "choose"))
knockout = sorted(int(i) for i in knockout)

api_mask = {"none": "none", "causal": "causal", "padding": "auto"}[mode]
kwargs = dict(mask=api_mask, window=window or None, knockout=knockout or None, scores=True,
              layers=[block])
item = 0
try:
    if mode == "padding":
        with sel[2]:
            item = st.radio(tr(T, "item"), [0, 1], horizontal=True, key="masks_item",
                            format_func=lambda i: tr(T, "item_n", n=i + 1))
        records = attend_batch(model, name, device, (text, text2), **kwargs)
        rec = records[item]
        for notice in records[1].meta.get("notices", []):  # the first one's are shown above
            st.info(notice)
        reference = base if item == 0 else attend(name, device, text2, mask="auto",
                                                  scores=True, layers=[block])
    else:
        rec = attend(name, device, text, **kwargs)
        reference = base
except (engine.InputError, ValueError) as exc:
    st.error(tr(COMMON, "error", msg=str(exc)))
    st.stop()

t = len(rec.tokens)
n_real = int(rec.meta.get("n_real", t))
if mode == "padding":
    if n_real < t:
        st.info(tr(T, "padding_note", t=t, n=item + 1, real=n_real, pad=t - n_real))
    else:
        st.info(tr(T, "no_padding", n=item + 1))
    if cfg.arch == "decoder":
        st.caption(tr(T, "padding_decoder"))

mask = rec.mask(block)[head]  # exactly the cells the engine masked
scores = rec.scores[block][head]  # [T, T], masked cells = -inf
weights = rec[block][head]
title = tr(T, "fig_title", block=block, head=head)
fig = masks_figure(mask, scores, weights, rec.tokens, title=title, style=STYLE)
panels = ("panel_mask", "panel_scores", "panel_weights")
for ann, panel in zip(fig.layout.annotations[:3], panels, strict=False):
    ann.text = tr(T, panel)  # the three subplot titles, in the interface language
st.plotly_chart(fig, key="fig_masks", config={"displaylogo": False})
download(fig, "masks", record=rec, block=block, head=head)
st.caption(tr(T, "figure_help"))

# ---- what changes -----------------------------------------------------------------------
st.subheader(tr(T, "changes"))
default_name = tr(T, "default_decoder" if cfg.arch == "decoder" else "default_encoder")
st.caption(tr(T, "changes_help", default=default_name))
n = len(reference.tokens)  # the real tokens: the reference ran alone, without padding
delta_layer = np.abs(rec[block][:, :n, :n] - reference[block][:, :n, :n])
m = st.columns(4)
with m[0], st.container(key="masks_metric_head"):
    st.metric(tr(T, "max_change_head"), f"{float(delta_layer[head].max()):.{precision}g}")
with m[1], st.container(key="masks_metric_layer"):
    st.metric(tr(T, "max_change_layer"), f"{float(delta_layer.max()):.{precision}g}")
with m[2], st.container(key="masks_metric_cells"):
    st.metric(tr(T, "masked_cells"), f"{int((~mask).sum())} / {mask.size}")
if "embedding" in rec.outputs and "embedding" in reference.outputs:
    cos = cosine(rec.outputs["embedding"], reference.outputs["embedding"])
    with m[3], st.container(key="masks_metric_cosine"):
        st.metric(tr(T, "cosine"), f"{cos:.{max(precision, 4)}f}")
if "top_k" in rec.outputs and "top_k" in reference.outputs:
    c = st.columns(2)
    with c[0], st.container(key="masks_topk_default"):
        st.markdown(f"**{tr(T, 'topk_default')}**")
        st.dataframe(topk_table(reference.outputs["top_k"]), hide_index=True)
    with c[1], st.container(key="masks_topk_masked"):
        st.markdown(f"**{tr(T, 'topk_masked')}**")
        st.dataframe(topk_table(rec.outputs["top_k"]), hide_index=True)
