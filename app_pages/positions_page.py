"""Positions: how a Transformer knows word order — sinusoidal, learned (MiniLM), RoPE, ALiBi.

Numbers come from engine.core.positions (and MiniLM's own position table); figures from
viz.figures.positions. d_model, length and base are editable and shared by the views.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from app_pages.common import current_style, get_model, installed_models
from app_pages.download import download_menu
from app_pages.i18n import tr
from engine.core.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    rope_cos_sin,
    sinusoidal_table,
)
from engine.models.registry import MODELS
from viz.figures.positions import (
    alibi_figure,
    dimension_curves_figure,
    encoding_figure,
    rope_circle_figure,
    rope_distance_figure,
    score_matrix_figure,
    similarity,
    similarity_figure,
)

T = {
    "choose": ("Choose…", "请选择…"),
    "title": ("Positions: how attention knows word order", "位置编码:注意力如何知道词序"),
    "intro": (
        "Attention by itself ignores order: shuffle the tokens and each one gets the same "
        "result. Position information is added to the embeddings (sinusoidal, learned), "
        "rotates q and k (RoPE), or biases the scores (ALiBi).",
        "注意力本身不看顺序:打乱词元,每个词元得到的结果不变。位置信息要么加到词嵌入上"
        "(正弦、可学习),要么旋转 q 和 k(RoPE),要么加到分数上(ALiBi)。",
    ),
    "d_model": ("d_model (dimensions)", "d_model(维度)"),
    "length": ("Length (positions)", "长度(位置数)"),
    "base": ("Base", "底数 base"),
    "tab_sin": ("Sinusoidal", "正弦位置编码"),
    "tab_learned": ("Learned (MiniLM)", "可学习(MiniLM)"),
    "tab_rope": ("RoPE", "RoPE 旋转位置编码"),
    "tab_alibi": ("ALiBi", "ALiBi"),
    "sin_help": (
        "PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(pos / base^(2i/d)). "
        "Low dimensions oscillate fast, high ones slowly, so each position gets a unique "
        "pattern, and PE[pos + k] is a rotation of PE[pos] for every fixed offset k.",
        "PE[pos, 2i] = sin(pos / base^(2i/d)),PE[pos, 2i+1] = cos(pos / base^(2i/d))。"
        "低维振荡快、高维振荡慢,所以每个位置都有独特的模式;对任意固定偏移 k,PE[pos + k] "
        "是 PE[pos] 的一个旋转。",
    ),
    "sin_title": ("Sinusoidal encoding (position × dimension)", "正弦位置编码(位置 × 维度)"),
    "dims": ("Dimensions to draw as curves", "画成曲线的维度"),
    "curves_title": ("Chosen dimensions over position", "所选维度随位置的变化"),
    "similarity": ("Similarity", "相似度"),
    "sim_dot": ("dot product", "点积"),
    "sim_cosine": ("cosine", "余弦"),
    "sim_help": (
        "Position-position similarity: nearby positions are alike and the similarity falls "
        "off with distance — the same along every diagonal for the sinusoidal table.",
        "位置与位置的相似度:相邻位置相似,随距离增大而下降;对正弦编码,每条对角线上都相同。",
    ),
    "sim_title": ("Position-position similarity ({kind})", "位置间相似度({kind})"),
    "learned_help": (
        "MiniLM (BERT) learns one vector per position (512 × 384) during training. Its "
        "table is not a formula; its similarity still falls off with distance. MiniLM's "
        "d = 384 ignores the d_model setting; the length setting picks the first positions.",
        "MiniLM(BERT)在训练中为每个位置学习一个向量(512 × 384)。它不是公式,但相似度同样随"
        "距离下降。MiniLM 的维度固定为 384,不受 d_model 设置影响;长度设置决定显示前多少个位置。",
    ),
    "learned_title": ("MiniLM learned positions (position × dimension)",
                      "MiniLM 可学习位置向量(位置 × 维度)"),
    "learned_sim_title": ("MiniLM position-position similarity ({kind})",
                          "MiniLM 位置间相似度({kind})"),
    "learned_missing": ("MiniLM is not installed, so its learned positions cannot be shown. "
                        "Install it with:", "未安装 MiniLM,无法显示其可学习位置向量。安装命令:"),
    "learned_clip": (
        "Colours are capped at the 99th percentile of |value|: a few dimensions hold much "
        "larger values and would wash the rest out. Hover shows the exact numbers.",
        "颜色上限取 |值| 的第 99 百分位:少数维度的值大得多,会让其余部分看不清。悬停可看精确数值。",
    ),
    "learned_cut": ("MiniLM has 512 positions: showing 512.",
                    "MiniLM 只有 512 个位置:显示 512 个。"),
    "rope_help": (
        "RoPE rotates each pair of q (and k) dimensions by the angle pos·θ_i, "
        "θ_i = base^(−2i/d). Fast pairs (small i) turn a lot per position, slow ones barely. "
        "Because both q and k are rotated, q_m·k_n depends only on n − m.",
        "RoPE 把 q(和 k)的每一对维度旋转 pos·θ_i 的角度,θ_i = base^(−2i/d)。快的维度对"
        "(i 小)每个位置转很多,慢的几乎不转。因为 q 和 k 都被旋转,q_m·k_n 只取决于 n − m。",
    ),
    "pairs": ("Pairs (frequencies) to draw", "要画的维度对(频率)"),
    "n_positions": ("Positions drawn on the circle", "圆上画出的位置数"),
    "circle_title": ("Rotation of one pair per frequency", "每个频率下一个维度对的旋转"),
    "seed": ("Random q and k (seed)", "随机 q 和 k(种子)"),
    "distance_title": ("q·k against relative distance, one curve per query position m",
                       "q·k 随相对距离变化,每个查询位置 m 一条曲线"),
    "matrix_title": ("q_m·k_n (constant along each diagonal)", "q_m·k_n(每条对角线上为常数)"),
    "spread": (
        "Largest spread of q_m·k_n along one diagonal (same n − m): {spread} (float32 "
        "rounding), against a score range of {range}: the score depends only on the distance.",
        "同一对角线(相同 n − m)上 q_m·k_n 的最大差异:{spread}(float32 舍入误差),而分数的"
        "范围是 {range}:分数只取决于距离。",
    ),
    "odd": ("RoPE needs an even dimension: using d = {d}.", "RoPE 需要偶数维度:使用 d = {d}。"),
    "alibi_help": (
        "ALiBi adds −slope_h · |i − j| to the scores of head h: a penalty growing with "
        "distance, steep for the first heads, gentle for the last. Slopes are the geometric "
        "series 2^(−8/H), 2^(−16/H), …, for 8 heads 1/2 … 1/256.",
        "ALiBi 给第 h 个头的分数加上 −slope_h · |i − j|:距离越远惩罚越大,前面的头陡、后面"
        "的头缓。斜率是几何级数 2^(−8/H)、2^(−16/H)……8 个头时为 1/2 … 1/256。",
    ),
    "heads": ("Heads", "头数"),
    "causal": ("As in a decoder (future keys masked)", "解码器形式(屏蔽未来的键)"),
    "alibi_title": ("ALiBi bias per head", "每个头的 ALiBi 偏置"),
    "alibi_cut": ("Showing the first {n} positions.", "显示前 {n} 个位置。"),
    "head": ("head", "头"),
    "slope": ("slope", "斜率"),
    "bias": ("bias", "偏置"),
    "position": ("position", "位置"),
    "dimension": ("dimension", "维度"),
    "value": ("value", "数值"),
    "dim": ("dim", "维"),
    "pair": ("pair", "维度对"),
    "angle": ("angle", "角度"),
    "sim_value": ("similarity", "相似度"),
    "distance": ("relative distance n − m", "相对距离 n − m"),
    "qk_rope": ("q·k after RoPE", "RoPE 之后的 q·k"),
    "key_pos": ("key position n", "键位置 n"),
    "query_pos": ("query position m", "查询位置 m"),
}

ALIBI_MAX = 64  # positions drawn per ALiBi head (8 small heatmaps stay light)


def axes() -> dict:
    """Translated axis titles of a position × dimension table."""
    return dict(x_title=tr(T, "dimension"), y_title=tr(T, "position"),
                value_name=tr(T, "value"))


def sim_axes() -> dict:
    return dict(value_name=tr(T, "sim_value"), axis_title=tr(T, "position"))


def download(fig, name: str, table: pd.DataFrame | None = None) -> None:
    download_menu(fig, name=name, key=f"dl_{name}", table=table)


def plot(fig, name: str, numbers: np.ndarray | None = None, columns=None,
         table: pd.DataFrame | None = None) -> None:
    """The figure and its download control; `numbers` (a matrix) or `table` are the numbers
    the CSV/JSON/NPZ downloads carry."""
    st.plotly_chart(fig, key=f"fig_{name}", config={"displaylogo": False})
    if table is None and numbers is not None:
        numbers = np.asarray(numbers, dtype=np.float32)
        table = pd.DataFrame(numbers, columns=columns)
    download(fig, name, table)


@st.cache_data(show_spinner=False, max_entries=32)
def rope_scores(length: int, d: int, base: float, seed: int) -> np.ndarray:
    """q_m·k_n for one random q and k placed at every position: [length, length] float32."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(d, generator=g), torch.randn(d, generator=g)
    cos, sin = rope_cos_sin(torch.arange(length), d, base)
    q_rot = apply_rope(q.expand(1, 1, length, d), cos, sin)[0, 0]  # [T, D]
    k_rot = apply_rope(k.expand(1, 1, length, d), cos, sin)[0, 0]
    return (q_rot @ k_rot.T).numpy().astype(np.float32)


def diagonal_spread(scores: np.ndarray) -> float:
    """Largest max − min of `scores` along one diagonal (0 when only n − m matters)."""
    t = scores.shape[0]
    return max(float(np.ptp(np.diagonal(scores, off))) for off in range(-t + 1, t))


def minilm_positions(device: str) -> np.ndarray | None:
    """MiniLM's learned position table [512, 384], or None after saying why it cannot load."""
    model = get_model("minilm", device)
    if model is None:
        return None
    return model.transformer.encoder.embed.positions.weight.detach().float().cpu().numpy()


def show_sinusoidal(d_model: int, length: int, base: float, kinds: dict) -> None:
    st.caption(tr(T, "sin_help"))
    table = sinusoidal_table(length, d_model, base).numpy()  # [L, D]
    plot(encoding_figure(table, title=tr(T, "sin_title"), style=STYLE, **axes()),
         "pos_sinusoidal", table)
    # a fast pair (0, 1), a middle one, and a slow sine (d/2) that still moves over 64 positions
    q = 2 * (d_model // 8)
    default = [d for d in (0, 1, q, q + 1, 2 * (d_model // 4)) if 0 <= d < d_model]
    dims = st.multiselect(tr(T, "dims"), list(range(d_model)),
                          default=list(dict.fromkeys(default)), key=f"pos_dims_{d_model}",
                          placeholder=tr(T, "choose"))
    if dims:
        plot(dimension_curves_figure(table, dims, title=tr(T, "curves_title"), style=STYLE,
                                     x_title=tr(T, "position"), y_title=tr(T, "value"),
                                     dim_label=tr(T, "dim")),
             "pos_curves", table[:, dims], [f"dim {d}" for d in dims])
    kind = st.radio(tr(T, "similarity"), list(kinds), format_func=kinds.get, horizontal=True,
                    key="pos_sim")
    st.caption(tr(T, "sim_help"))
    sim = similarity(table, kind)
    plot(similarity_figure(sim, title=tr(T, "sim_title", kind=kinds[kind]), style=STYLE,
                           **sim_axes()), "pos_similarity", sim)


def show_learned(length: int, kinds: dict) -> None:
    st.caption(tr(T, "learned_help"))
    names, _ = installed_models(("encoder",))
    if "minilm" not in names:
        st.info(tr(T, "learned_missing"))
        st.code(MODELS["minilm"].install or "", language="bash")
        return
    try:
        learned = minilm_positions(st.session_state.get("device", "auto"))
    except ImportError as exc:
        st.error(str(exc))
        return
    if learned is None:
        return
    if length > learned.shape[0]:
        st.info(tr(T, "learned_cut"))
    part = learned[:length]
    plot(encoding_figure(part, title=tr(T, "learned_title"), style=STYLE, clip_quantile=0.99,
                         **axes()), "pos_learned", part)
    st.caption(tr(T, "learned_clip"))
    kind = st.radio(tr(T, "similarity"), list(kinds), format_func=kinds.get, horizontal=True,
                    key="pos_sim_learned", index=1)
    sim = similarity(part, kind)
    plot(similarity_figure(sim, title=tr(T, "learned_sim_title", kind=kinds[kind]),
                           style=STYLE, **sim_axes()), "pos_learned_similarity", sim)


def show_rope(d_model: int, length: int, base: float) -> None:
    st.caption(tr(T, "rope_help"))
    d = d_model - d_model % 2
    if d != d_model:
        st.info(tr(T, "odd", d=d))
    half = d // 2
    thetas = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # engine.core.positions' θ_i
    pairs = st.multiselect(tr(T, "pairs"), list(range(half)),
                           default=list(dict.fromkeys([0, half // 4, half - 1])),
                           key=f"pos_rope_pairs_{d}", max_selections=4,
                           placeholder=tr(T, "choose"))
    n_pos = st.slider(tr(T, "n_positions"), 1, min(16, length), min(6, length),
                      key="pos_rope_npos")
    cos, sin = rope_cos_sin(torch.arange(length), d, base)  # [L, d]
    if pairs:
        plot(rope_circle_figure(cos.numpy(), sin.numpy(), pairs, list(range(n_pos)), thetas,
                                title=tr(T, "circle_title"), style=STYLE,
                                pair_label=tr(T, "pair"), position_label=tr(T, "position"),
                                angle_label=tr(T, "angle")), "pos_rope_circle",
             np.stack([cos.numpy()[:n_pos, pairs], sin.numpy()[:n_pos, pairs]], axis=-1)
             .reshape(n_pos, -1),
             [f"pair {q} {c}" for q in pairs for c in ("cos", "sin")])
    seed = int(st.columns(3)[0].number_input(tr(T, "seed"), 0, 10_000, 0, key="pos_rope_seed"))
    scores = rope_scores(length, d, base, seed)
    ms = list(dict.fromkeys([0, length // 4, length // 2]))
    cols = st.columns(2)
    with cols[0]:
        plot(rope_distance_figure(scores, ms, title=tr(T, "distance_title"), style=STYLE,
                                  x_title=tr(T, "distance"), y_title=tr(T, "qk_rope")),
             "pos_rope_distance", scores[ms].T, [f"m = {m}" for m in ms])
    with cols[1]:
        plot(score_matrix_figure(scores, title=tr(T, "matrix_title"), style=STYLE,
                                 x_title=tr(T, "key_pos"), y_title=tr(T, "query_pos")),
             "pos_rope_matrix", scores)
    p = int(st.session_state.get("precision", 3))
    st.markdown(tr(T, "spread", spread=f"{diagonal_spread(scores):.2g}",
                   range=f"{float(scores.max() - scores.min()):.{p}g}"))


def show_alibi(length: int) -> None:
    st.caption(tr(T, "alibi_help"))
    cols = st.columns(2)
    n_heads = int(cols[0].number_input(tr(T, "heads"), 1, 32, 8, key="pos_alibi_heads"))
    causal = cols[1].toggle(tr(T, "causal"), value=False, key="pos_alibi_causal")
    n = min(length, ALIBI_MAX)
    if n < length:
        st.caption(tr(T, "alibi_cut", n=n))
    bias = alibi_bias(n_heads, n, n).numpy()  # [H, n, n]
    if causal:
        bias = np.where(np.tril(np.ones((n, n), dtype=bool))[None], bias, np.nan)
    slopes = alibi_slopes(n_heads).numpy()
    slopes_table = pd.DataFrame({
        tr(T, "head"): np.arange(1, n_heads + 1),
        tr(T, "slope"): slopes.astype(np.float64),
        "1 / " + tr(T, "slope"): 1.0 / slopes.astype(np.float64),
    })
    plot(alibi_figure(bias, slopes, title=tr(T, "alibi_title"), style=STYLE,
                      head_label=tr(T, "head"), slope_label=tr(T, "slope"),
                      value_name=tr(T, "bias")), "pos_alibi", table=slopes_table)
    with st.container(key="pos_slopes"):
        st.dataframe(slopes_table, hide_index=True)


st.title(tr(T, "title"))
STYLE = current_style()  # the sidebar's choice, read once per run
st.markdown(tr(T, "intro"))

c = st.columns(3)
d_model = int(c[0].number_input(tr(T, "d_model"), min_value=2, max_value=1024, value=64,
                                step=2, key="pos_d_model"))
length = int(c[1].number_input(tr(T, "length"), min_value=2, max_value=512, value=64,
                               key="pos_length"))
base = float(c[2].number_input(tr(T, "base"), min_value=1.0001, max_value=1e8, value=10_000.0,
                               step=1000.0, format="%g", key="pos_base"))
kinds = {"dot": tr(T, "sim_dot"), "cosine": tr(T, "sim_cosine")}

TABS = ("tab_sin", "tab_learned", "tab_rope", "tab_alibi")
chosen = st.session_state.get("pos_tab")
for tab_key in TABS:  # keep the open tab when the language (and so its label) changes
    if chosen in T[tab_key]:
        st.session_state["pos_tab"] = tr(T, tab_key)
# lazy tabs: only the open one runs (MiniLM loads only when its tab is opened)
tabs = st.tabs([tr(T, k) for k in TABS], key="pos_tab", on_change="rerun")
views = (
    lambda: show_sinusoidal(d_model, length, base, kinds),
    lambda: show_learned(length, kinds),
    lambda: show_rope(d_model, length, base),
    lambda: show_alibi(length),
)
for tab, view in zip(tabs, views, strict=True):
    if tab.open:
        with tab:
            view()
