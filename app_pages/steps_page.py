"""Step by step: the seed's self-attention example (seeds/001 §2) with editable matrices.

X, W_Q, W_K and W_V are data editors; every later matrix is computed by
engine.lessons.worked_example from them. The seed rounds its softmax by hand before the weighted
sums; this page follows the exact path and shows the seed's rounded one beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app_pages.common import current_style
from app_pages.download import download_menu
from app_pages.i18n import tr
from engine.lessons.worked_example import (
    SECOND_HEAD,
    SEED_W_KEY,
    SEED_W_OUT,
    SEED_W_QUERY,
    SEED_W_VALUE,
    SEED_X,
    worked_example,
)
from viz.figures.steps import (
    compare_outputs_figure,
    fmt,
    heads_figure,
    matrix_figure,
    weighted_sum_figure,
)

T = {
    "title": ("Step by step: self-attention by hand", "逐步计算:手算自注意力"),
    "intro": (
        "The worked example of the seed tutorial (§2): three tokens with d_model = 4, "
        "projected to d = 3. Edit any cell of X, W_Q, W_K or W_V and every step below is "
        "recomputed. The seed's example is **not** scaled by √d_k; switch scaling on to see "
        "what the Transformer paper does.",
        "来自种子教程(第二节)的示例:3 个词元,d_model = 4,投影到 d = 3。修改 X、W_Q、W_K、"
        "W_V 的任意单元格,下面每一步都会重新计算。种子教程的例子**没有**除以 √d_k;打开缩放即可"
        "看到 Transformer 论文的做法。",
    ),
    "scale": ("Scale the scores by 1/√d_k", "分数除以 √d_k(缩放)"),
    "reset": ("Restore the seed's numbers", "恢复种子教程的数值"),
    "s1": ("1 · Inputs and projection matrices (editable)", "1 · 输入与投影矩阵(可编辑)"),
    "s1_help": (
        "Rows of X are the three input vectors (word embeddings). W_Q, W_K, W_V map d_model = 4 "
        "to d = 3. In a trained model they are learned; here they are the seed's small integers.",
        "X 的每一行是一个输入向量(词嵌入)。W_Q、W_K、W_V 把 d_model = 4 映射到 d = 3。"
        "训练好的模型中它们是学出来的;这里用的是种子教程的小整数。",
    ),
    "s2": ("2 · Queries, keys and values", "2 · 查询、键和值"),
    "s2_help": (
        "Each token's query, key and value are its input row times W_Q, W_K and W_V.",
        "每个词元的查询、键、值向量 = 它的输入行分别乘以 W_Q、W_K、W_V。",
    ),
    "s3": ("3 · Attention scores QKᵀ", "3 · 注意力分数 QKᵀ"),
    "s3_help": (
        "Row i, column j is q_i · k_j: how well query i matches key j.",
        "第 i 行第 j 列是 q_i · k_j:查询 i 与键 j 的匹配程度。",
    ),
    "scaled": ("÷ √d_k = ÷ √{d} ≈ ÷ {root}", "÷ √d_k = ÷ √{d} ≈ ÷ {root}"),
    "unscaled_note": (
        "Unscaled, as in the seed (the paper divides by √d_k so that large d does not push "
        "softmax into near one-hot rows).",
        "与种子教程一样未缩放(论文除以 √d_k,以免维度大时 softmax 变得接近独热)。",
    ),
    "s4": ("4 · Softmax: attention weights", "4 · Softmax:注意力权重"),
    "s4_help": (
        "Each row is exponentiated and divided by its sum, so it is positive and sums to 1. "
        "These are the exact weights (the seed prints them too, before rounding).",
        "每一行取指数再除以该行之和,因此都为正且和为 1。这是精确的权重(种子教程在取整之前"
        "也打印了它们)。",
    ),
    "s5": ("5 · Weighted values and outputs", "5 · 加权值与输出"),
    "s5_help": (
        "Output i = Σ_j weight(i, j) · v_j. Pick a query to see its weighted value vectors and "
        "their sum.",
        "输出 i = Σ_j 权重(i, j) · v_j。选一个查询,看它的各个加权值向量及其和。",
    ),
    "query": ("Query", "查询"),
    "weight": ("weight", "权重"),
    "sum_row": ("sum = output", "求和 = 输出"),
    "outputs": ("Outputs (exact)", "输出(精确)"),
    "s6": ("6 · The seed's rounded softmax", "6 · 种子教程取整后的 softmax"),
    "s6_help": (
        "The seed replaces the softmax “for readability” by a hand-rounded matrix before the "
        "weighted sums, so its weighted values and outputs are not the exact ones.",
        "种子教程“为了方便阅读”在加权求和之前把 softmax 换成了手工取整的矩阵,因此它的加权值和"
        "输出并不是精确值。",
    ),
    "seed_weights": ("Seed's rounded weights", "种子教程取整后的权重"),
    "exact_weights": ("Exact weights", "精确权重"),
    "seed_weighted": ("Seed's weighted values for {q}", "种子教程中 {q} 的加权值"),
    "seed_outputs": ("Seed's outputs (rounded path)", "种子教程的输出(取整路径)"),
    "difference": ("Difference: seed − exact", "差值:种子 − 精确"),
    "diff_sentence": (
        "For input 1 the seed's output is [{seed}], the exact one is [{exact}]. The largest "
        "difference over all outputs is {maxdiff} ({where}).",
        "对于输入 1,种子教程的输出是 [{seed}],精确值是 [{exact}]。所有输出中最大的差值是 "
        "{maxdiff}({where})。",
    ),
    "not_seed": (
        "You changed the matrices or turned scaling on: the seed's rounded weights belong to "
        "its own inputs, unscaled. Restore the seed's numbers and switch scaling off to "
        "compare the two paths.",
        "你修改了矩阵或打开了缩放:种子教程的取整权重只对应它自己的输入且未缩放。恢复种子的数值"
        "并关闭缩放即可比较两条路径。",
    ),
    "compare_title": ("Outputs: exact vs the seed's rounded path", "输出:精确值与种子取整路径"),
    "s7": ("7 · Multi-head attention", "7 · 多头注意力"),
    "s7_help": (
        "Two heads of d = 3. Head 1 uses the matrices above; head 2 its own (editable below). "
        "Implementations project once with [W_Q¹ | W_Q²] (6 columns) and split the result "
        "into one block of 3 columns per head; each head attends on its own; the head outputs "
        "are concatenated and multiplied by W^O (6 × 4) to get back to d_model = 4.",
        "两个头,每头 d = 3。头 1 用上面的矩阵;头 2 有自己的矩阵(可在下方编辑)。实现中先用 "
        "[W_Q¹ | W_Q²](6 列)一次投影,再把结果按每头 3 列切开;每个头各自计算注意力;"
        "各头输出拼接后乘以 W^O(6 × 4),回到 d_model = 4。",
    ),
    "head2_edit": ("Head 2's matrices and W^O (editable)", "头 2 的矩阵和 W^O(可编辑)"),
    "projected": ("Projected once: X · [W¹ | W²]", "一次投影:X · [W¹ | W²]"),
    "split": ("Split into heads", "切分到各头"),
    "per_head": ("Per-head attention weights", "各头的注意力权重"),
    "head_out": ("Head {h} output", "头 {h} 的输出"),
    "concat": ("Concatenation [head 1 | head 2]", "拼接 [头 1 | 头 2]"),
    "final": ("Output = concat · W^O", "输出 = 拼接 · W^O"),
    "bad_cell": ("Cannot compute: {msg}", "无法计算:{msg}"),
    "input": ("input {i}", "输入 {i}"),
    "head": ("head {h}", "头 {h}"),
    "scores_title": ("scores", "分数"),
    "weights_title": ("softmax weights", "softmax 权重"),
    "output_sum": ("output = sum", "输出 = 求和"),
    "exact": ("exact", "精确"),
    "seed_rounded": ("seed (rounded weights)", "种子(取整权重)"),
    "sum_title": ("{q}: output as a sum of weighted values", "{q}:输出 = 加权值之和"),
}

EDITOR_KEYS = ("steps_x", "steps_wq", "steps_wk", "steps_wv",
               "steps_h2_wq", "steps_h2_wk", "steps_h2_wv", "steps_wo")


def precision() -> int:
    return int(st.session_state.get("precision", 3))


def table(m: np.ndarray, rows, cols, key: str) -> None:
    """A read-only matrix shown with `precision` significant digits (as in the figures); the
    data keep full precision. The keyed container lets tests find it."""
    df = pd.DataFrame(np.asarray(m, dtype=np.float64), index=list(rows), columns=list(cols))
    p = precision()
    with st.container(key=key):
        st.dataframe(df.style.format(lambda v: fmt(v, p)))


def editor(default, rows, cols, key: str, label: str) -> np.ndarray:
    st.markdown(f"**{label}**")
    df = pd.DataFrame(np.asarray(default, dtype=np.float64), index=list(rows),
                      columns=list(cols))
    edited = st.data_editor(df, key=key, num_rows="fixed", column_config={
        c: st.column_config.NumberColumn(required=True, format="%g") for c in df.columns
    })
    return edited.to_numpy(dtype=np.float64, na_value=np.nan)


def reset() -> None:
    for k in EDITOR_KEYS:
        st.session_state.pop(k, None)
    st.session_state["steps_scale"] = False


def download(fig, name: str, table: pd.DataFrame | None = None) -> None:
    download_menu(fig, name=name, key=f"dl_{name}", table=table)


def plot(fig, name: str, numbers: np.ndarray, rows, cols) -> None:
    """The figure and its download control; `numbers` [R, C] go into CSV/JSON/NPZ."""
    st.plotly_chart(fig, key=f"fig_{name}", config={"displaylogo": False})
    table = pd.DataFrame(np.asarray(numbers, dtype=np.float64), columns=list(cols))
    table.insert(0, "row", list(rows))
    download(fig, name, table)


st.title(tr(T, "title"))
STYLE = current_style()  # the sidebar's choice, read once per run
st.markdown(tr(T, "intro"))

c1, c2 = st.columns([3, 2])
scale = c1.toggle(tr(T, "scale"), value=False, key="steps_scale")
c2.button(tr(T, "reset"), on_click=reset, key="steps_reset")

inputs = [tr(T, "input", i=i) for i in (1, 2, 3)]
d_model = [f"x{j}" for j in (1, 2, 3, 4)]

# ---- 1 · inputs -------------------------------------------------------------------------
st.subheader(tr(T, "s1"))
st.caption(tr(T, "s1_help"))
cols = st.columns([4, 3, 3, 3])
with cols[0]:
    x = editor(SEED_X, inputs, d_model, "steps_x", "X")
with cols[1]:
    wq = editor(SEED_W_QUERY, d_model, ["q1", "q2", "q3"], "steps_wq", "W_Q")
with cols[2]:
    wk = editor(SEED_W_KEY, d_model, ["k1", "k2", "k3"], "steps_wk", "W_K")
with cols[3]:
    wv = editor(SEED_W_VALUE, d_model, ["v1", "v2", "v3"], "steps_wv", "W_V")

with st.expander(tr(T, "head2_edit")):
    hc = st.columns(4)
    with hc[0]:
        h2q = editor(SECOND_HEAD["w_query"], d_model, ["q1", "q2", "q3"], "steps_h2_wq",
                     "W_Q²")
    with hc[1]:
        h2k = editor(SECOND_HEAD["w_key"], d_model, ["k1", "k2", "k3"], "steps_h2_wk", "W_K²")
    with hc[2]:
        h2v = editor(SECOND_HEAD["w_value"], d_model, ["v1", "v2", "v3"], "steps_h2_wv",
                     "W_V²")
    with hc[3]:
        concat_cols = [f"h1·v{j}" for j in (1, 2, 3)] + [f"h2·v{j}" for j in (1, 2, 3)]
        wo = editor(SEED_W_OUT, concat_cols, [f"y{j}" for j in (1, 2, 3, 4)], "steps_wo",
                    "W^O")

try:
    ex = worked_example(x, wq, wk, wv, scale=scale,
                        second_head={"w_query": h2q, "w_key": h2k, "w_value": h2v}, w_out=wo)
except ValueError as exc:
    st.error(tr(T, "bad_cell", msg=str(exc)))
    st.stop()

ex_np = {k: v.numpy() for k, v in ex.items() if hasattr(v, "numpy")}
mh = {k: v.numpy() for k, v in ex["multi_head"].items() if hasattr(v, "numpy")}
p = precision()
dims3 = ["d1", "d2", "d3"]

# ---- 2 · Q, K, V ------------------------------------------------------------------------
st.subheader(tr(T, "s2"))
st.caption(tr(T, "s2_help"))
cols = st.columns(3)
for col, name, key, formula in (
    (cols[0], "queries", "steps_q", "Q = X · W_Q"),
    (cols[1], "keys", "steps_k", "K = X · W_K"),
    (cols[2], "values", "steps_v", "V = X · W_V"),
):
    with col:
        st.markdown(f"**{formula}**")
        table(ex_np[name], inputs, dims3, key)

# ---- 3 · scores -------------------------------------------------------------------------
st.subheader(tr(T, "s3"))
st.caption(tr(T, "s3_help"))
cols = st.columns(2)
with cols[0]:
    st.markdown("**Q · Kᵀ**")
    table(ex_np["scores"], inputs, inputs, "steps_scores")
with cols[1]:
    if scale:
        d_k = ex["d_k"]
        st.markdown("**" + tr(T, "scaled", d=d_k, root=fmt(float(np.sqrt(d_k)), p)) + "**")
        table(ex_np["scaled_scores"], inputs, inputs, "steps_scaled")
    else:
        st.info(tr(T, "unscaled_note"))

# ---- 4 · softmax ------------------------------------------------------------------------
st.subheader(tr(T, "s4"))
st.caption(tr(T, "s4_help"))
cols = st.columns([2, 3])
with cols[0]:
    st.markdown("**softmax(" + ("Q·Kᵀ/√d_k" if scale else "Q·Kᵀ") + ")**")
    table(ex_np["weights"], inputs, inputs, "steps_weights")
with cols[1]:
    plot(matrix_figure(ex_np["weights"], inputs, inputs, title=tr(T, "weights_title"),
                       value_name=tr(T, "weight"), style=STYLE, showscale=True),
         "steps_weights", ex_np["weights"], inputs, inputs)

# ---- 5 · weighted values and outputs ----------------------------------------------------
st.subheader(tr(T, "s5"))
st.caption(tr(T, "s5_help"))
qi = st.radio(tr(T, "query"), [0, 1, 2], format_func=lambda i: inputs[i], horizontal=True,
              key="steps_query")
weighted = ex_np["weighted_values"][:, qi, :]  # [Tk, d_v]: weight(qi, j) · v_j
rows = np.column_stack([ex_np["weights"][qi], weighted])
rows = np.vstack([rows, np.concatenate([[ex_np["weights"][qi].sum()], ex_np["outputs"][qi]])])
cols = st.columns([2, 3])
with cols[0]:
    table(rows, [f"{inputs[j]}: w·v{j + 1}" for j in range(3)] + [tr(T, "sum_row")],
          [tr(T, "weight")] + dims3, "steps_weighted")
    st.markdown(f"**{tr(T, 'outputs')}**")
    table(ex_np["outputs"], inputs, dims3, "steps_outputs")
with cols[1]:
    plot(weighted_sum_figure(weighted, ex_np["outputs"][qi], [f"w·v{j + 1}" for j in range(3)],
                             output_name=tr(T, "output_sum"),
                             title=tr(T, "sum_title", q=inputs[qi]), style=STYLE),
         "steps_weighted_sum", rows, [f"w·v{j + 1}" for j in range(3)] + ["sum"],
         [tr(T, "weight")] + dims3)

# ---- 6 · the seed's rounded path --------------------------------------------------------
st.subheader(tr(T, "s6"))
st.caption(tr(T, "s6_help"))
if ex["matches_seed"]:
    cols = st.columns(3)
    with cols[0]:
        st.markdown(f"**{tr(T, 'seed_weights')}**")
        table(ex_np["seed_rounded_weights"], inputs, inputs, "steps_seed_weights")
    with cols[1]:
        st.markdown(f"**{tr(T, 'exact_weights')}**")
        table(ex_np["weights"], inputs, inputs, "steps_exact_weights")
    with cols[2]:
        st.markdown(f"**{tr(T, 'seed_weighted', q=inputs[qi])}**")
        table(ex_np["seed_weighted_values"][:, qi, :], [f"w·v{j + 1}" for j in range(3)],
              dims3, "steps_seed_weighted")
    cols = st.columns(3)
    with cols[0]:
        st.markdown(f"**{tr(T, 'outputs')}**")
        table(ex_np["outputs"], inputs, dims3, "steps_exact_outputs")
    with cols[1]:
        st.markdown(f"**{tr(T, 'seed_outputs')}**")
        table(ex_np["seed_outputs"], inputs, dims3, "steps_seed_outputs")
    with cols[2]:
        st.markdown(f"**{tr(T, 'difference')}**")
        table(ex_np["seed_difference"], inputs, dims3, "steps_difference")
    diff = ex_np["seed_difference"]
    i, j = np.unravel_index(np.abs(diff).argmax(), diff.shape)
    st.markdown(tr(
        T, "diff_sentence",
        seed=", ".join(fmt(v, p) for v in ex_np["seed_outputs"][0]),
        exact=", ".join(fmt(v, p) for v in ex_np["outputs"][0]),
        maxdiff=fmt(float(diff[i, j]), p), where=f"{inputs[i]}, {dims3[j]}",
    ))
    plot(compare_outputs_figure(ex_np["outputs"], ex_np["seed_outputs"], inputs,
                                names=(tr(T, "exact"), tr(T, "seed_rounded")),
                                title=tr(T, "compare_title"), style=STYLE),
         "steps_compare", np.hstack([ex_np["outputs"], ex_np["seed_outputs"], diff]), inputs,
         [f"{kind} {d}" for kind in ("exact", "seed", "seed-exact") for d in dims3])
else:
    st.info(tr(T, "not_seed"))

# ---- 7 · multi-head ---------------------------------------------------------------------
st.subheader(tr(T, "s7"))
st.caption(tr(T, "s7_help"))
heads = [tr(T, "head", h=h) for h in (1, 2)]
split_cols = [f"h{h}·d{j}" for h in (1, 2) for j in (1, 2, 3)]
st.markdown(f"**{tr(T, 'projected')}**")
for tab, name in zip(st.tabs(["Q (3 × 6)", "K (3 × 6)", "V (3 × 6)"]),
                     ("queries", "keys", "values"), strict=True):
    with tab:
        table(mh[name], inputs, split_cols, f"steps_mh_{name}")
st.markdown(f"**{tr(T, 'split')}**")
for h, tab in enumerate(st.tabs(heads)):
    with tab:
        sub = st.columns(3)
        for c, name in zip(sub, ("head_queries", "head_keys", "head_values"), strict=True):
            with c:
                st.caption(f"{name.split('_')[1][0].upper()}{h + 1}")
                table(mh[name][h], inputs, dims3, f"steps_mh_{name}_{h}")
st.markdown(f"**{tr(T, 'per_head')}**")
plot(heads_figure(mh["head_weights"], inputs, head_names=heads, title=tr(T, "per_head"),
                  value_name=tr(T, "weight"), style=STYLE), "steps_heads",
     np.hstack(list(mh["head_weights"])), inputs,
     [f"head {h} → {k}" for h in (1, 2) for k in inputs])
cols = st.columns(2)
for h, col in enumerate(cols):
    with col:
        st.markdown(tr(T, "head_out", h=h + 1))
        table(mh["head_outputs"][h], inputs, dims3, f"steps_mh_out_{h}")
cols = st.columns([3, 2])
with cols[0]:
    st.markdown(f"**{tr(T, 'concat')}**")
    table(mh["concat"], inputs, split_cols, "steps_mh_concat")
with cols[1]:
    st.markdown(f"**{tr(T, 'final')}**")
    table(mh["outputs"], inputs, [f"y{j}" for j in (1, 2, 3, 4)], "steps_mh_outputs")
