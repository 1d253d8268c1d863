"""Step by step: the seed's self-attention example (seeds/001 §2) with editable matrices.

X, W_Q, W_K and W_V are data editors; every later matrix is computed by
engine.lessons.worked_example from them. The seed rounds its softmax by hand before the weighted
sums; this page follows the exact path and shows the seed's rounded one beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app_pages.shared.download import figure_with_download
from app_pages.shared.i18n import translator
from app_pages.shared.sidebar import current_style
from app_pages.steps.text import STEPS_TEXT
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

say = translator(STEPS_TEXT)


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


def titled_tables(cells: list[tuple]) -> None:
    """Read-only tables side by side, each under its bold title:
    cells = [(title, matrix, row labels, column labels, key), ...]."""
    for col, (title, m, rows, cols, key) in zip(st.columns(len(cells)), cells, strict=True):
        with col:
            st.markdown(f"**{title}**")
            table(m, rows, cols, key)


def cell_text(v: float) -> str:
    return f"{float(v):.10g}"


def parse_cell(value) -> float | None:
    """A cell's text → its number, or None when it is not one ("abc", empty, inf)."""
    text = str(value).strip().replace("−", "-").replace(",", ".") if value is not None else ""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def editor_key(key: str) -> str:
    """The editor's widget key for its current generation: a new generation is a new widget,
    which the browser mounts afresh with the page's numbers (the browser keeps a data
    editor's own edits for as long as its widget lives, whatever the server holds)."""
    gen = st.session_state.get(f"steps_gen_{key}", 0)
    return key if gen == 0 else f"{key}~{gen}"


def editor(default, rows, cols, key: str, label: str) -> np.ndarray:
    """An editable matrix. Cells are text, read here: a cell that is not a number is refused
    with a hint naming it, and the editor comes back with the value it had."""
    st.markdown(f"**{label}**")
    base = np.asarray(st.session_state.get(f"steps_base_{key}", default), dtype=np.float64)
    df = pd.DataFrame([[cell_text(v) for v in row] for row in base], index=list(rows),
                      columns=list(cols))
    hint = st.session_state.pop(f"steps_hint_{key}", None)
    if hint:
        st.error(hint)
    edited = st.data_editor(df, key=editor_key(key), num_rows="fixed", column_config={
        c: st.column_config.TextColumn(required=True) for c in df.columns
    })
    values = base.copy()
    refused = []
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            number = parse_cell(edited.iat[i, j])
            if number is None:
                refused.append(say("refused", matrix=label, row=r, col=c,
                                   text=str(edited.iat[i, j] or ""), old=cell_text(base[i, j])))
            else:
                values[i, j] = number
    if refused:  # keep the old values and show them again, in a new editor
        st.session_state[f"steps_base_{key}"] = values
        st.session_state[f"steps_gen_{key}"] = st.session_state.get(f"steps_gen_{key}", 0) + 1
        st.session_state[f"steps_hint_{key}"] = " ".join(refused)
        st.rerun()
    return values


def reset() -> None:
    """Back to the seed's numbers, in new editors (the browser's edits go with the old ones)."""
    for k in EDITOR_KEYS:
        st.session_state.pop(editor_key(k), None)
        st.session_state.pop(f"steps_base_{k}", None)
        st.session_state.pop(f"steps_hint_{k}", None)
        st.session_state[f"steps_gen_{k}"] = st.session_state.get(f"steps_gen_{k}", 0) + 1
    st.session_state["steps_scale"] = False


def plot(fig, name: str, numbers: np.ndarray, rows, cols) -> None:
    """The figure and its download control; `numbers` [R, C] go into CSV/JSON/NPZ."""
    table = pd.DataFrame(np.asarray(numbers, dtype=np.float64), columns=list(cols))
    table.insert(0, "row", list(rows))
    figure_with_download(fig, f"fig_{name}", f"dl_{name}", name=name, table=table,
                         config={"displaylogo": False})


st.title(say("title"))
STYLE = current_style()  # the sidebar's choice, read once per run
st.markdown(say("intro"))

c1, c2 = st.columns([3, 2])
scale = c1.toggle(say("scale"), value=False, key="steps_scale")
c2.button(say("reset"), on_click=reset, key="steps_reset")

inputs = [say("input", i=i) for i in (1, 2, 3)]
d_model = [f"x{j}" for j in (1, 2, 3, 4)]

# ---- 1 · inputs -------------------------------------------------------------------------
st.subheader(say("s1"))
st.caption(say("s1_help"))
cols = st.columns([4, 3, 3, 3])
with cols[0]:
    x = editor(SEED_X, inputs, d_model, "steps_x", "X")
with cols[1]:
    wq = editor(SEED_W_QUERY, d_model, ["q1", "q2", "q3"], "steps_wq", "W_Q")
with cols[2]:
    wk = editor(SEED_W_KEY, d_model, ["k1", "k2", "k3"], "steps_wk", "W_K")
with cols[3]:
    wv = editor(SEED_W_VALUE, d_model, ["v1", "v2", "v3"], "steps_wv", "W_V")

with st.expander(say("head2_edit")):
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
    st.error(say("bad_cell", msg=str(exc)))
    st.stop()

ex_np = {k: v.numpy() for k, v in ex.items() if hasattr(v, "numpy")}
mh = {k: v.numpy() for k, v in ex["multi_head"].items() if hasattr(v, "numpy")}
p = precision()
dims3 = ["d1", "d2", "d3"]

# ---- 2 · Q, K, V ------------------------------------------------------------------------
st.subheader(say("s2"))
st.caption(say("s2_help"))
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
st.subheader(say("s3"))
st.caption(say("s3_help"))
cols = st.columns(2)
with cols[0]:
    st.markdown("**Q · Kᵀ**")
    table(ex_np["scores"], inputs, inputs, "steps_scores")
with cols[1]:
    if scale:
        d_k = ex["d_k"]
        st.markdown("**" + say("scaled", d=d_k, root=fmt(float(np.sqrt(d_k)), p)) + "**")
        table(ex_np["scaled_scores"], inputs, inputs, "steps_scaled")
    else:
        st.info(say("unscaled_note"))

# ---- 4 · softmax ------------------------------------------------------------------------
st.subheader(say("s4"))
st.caption(say("s4_help"))
cols = st.columns([2, 3])
with cols[0]:
    st.markdown("**softmax(" + ("Q·Kᵀ/√d_k" if scale else "Q·Kᵀ") + ")**")
    table(ex_np["weights"], inputs, inputs, "steps_weights")
with cols[1]:
    plot(matrix_figure(ex_np["weights"], inputs, inputs, title=say("weights_title"),
                       value_name=say("weight"), style=STYLE, showscale=True),
         "steps_weights", ex_np["weights"], inputs, inputs)

# ---- 5 · weighted values and outputs ----------------------------------------------------
st.subheader(say("s5"))
st.caption(say("s5_help"))
qi = st.radio(say("query"), [0, 1, 2], format_func=lambda i: inputs[i], horizontal=True,
              key="steps_query")
weighted = ex_np["weighted_values"][:, qi, :]  # [Tk, d_v]: weight(qi, j) · v_j
rows = np.column_stack([ex_np["weights"][qi], weighted])
rows = np.vstack([rows, np.concatenate([[ex_np["weights"][qi].sum()], ex_np["outputs"][qi]])])
cols = st.columns([2, 3])
with cols[0]:
    table(rows, [f"{inputs[j]}: w·v{j + 1}" for j in range(3)] + [say("sum_row")],
          [say("weight")] + dims3, "steps_weighted")
    st.markdown(f"**{say('outputs')}**")
    table(ex_np["outputs"], inputs, dims3, "steps_outputs")
with cols[1]:
    plot(weighted_sum_figure(weighted, ex_np["outputs"][qi], [f"w·v{j + 1}" for j in range(3)],
                             output_name=say("output_sum"),
                             title=say("sum_title", q=inputs[qi]), style=STYLE),
         "steps_weighted_sum", rows, [f"w·v{j + 1}" for j in range(3)] + ["sum"],
         [say("weight")] + dims3)

# ---- 6 · the seed's rounded path --------------------------------------------------------
st.subheader(say("s6"))
st.caption(say("s6_help"))
if ex["matches_seed"]:
    titled_tables([
        (say("seed_weights"), ex_np["seed_rounded_weights"], inputs, inputs,
         "steps_seed_weights"),
        (say("exact_weights"), ex_np["weights"], inputs, inputs, "steps_exact_weights"),
        (say("seed_weighted", q=inputs[qi]), ex_np["seed_weighted_values"][:, qi, :],
         [f"w·v{j + 1}" for j in range(3)], dims3, "steps_seed_weighted"),
    ])
    titled_tables([
        (say("outputs"), ex_np["outputs"], inputs, dims3, "steps_exact_outputs"),
        (say("seed_outputs"), ex_np["seed_outputs"], inputs, dims3, "steps_seed_outputs"),
        (say("difference"), ex_np["seed_difference"], inputs, dims3, "steps_difference"),
    ])
    diff = ex_np["seed_difference"]
    i, j = np.unravel_index(np.abs(diff).argmax(), diff.shape)
    st.markdown(say(
        "diff_sentence",
        seed=", ".join(fmt(v, p) for v in ex_np["seed_outputs"][0]),
        exact=", ".join(fmt(v, p) for v in ex_np["outputs"][0]),
        maxdiff=fmt(float(diff[i, j]), p), where=f"{inputs[i]}, {dims3[j]}",
    ))
    plot(compare_outputs_figure(ex_np["outputs"], ex_np["seed_outputs"], inputs,
                                names=(say("exact"), say("seed_rounded")),
                                title=say("compare_title"), style=STYLE),
         "steps_compare", np.hstack([ex_np["outputs"], ex_np["seed_outputs"], diff]), inputs,
         [f"{kind} {d}" for kind in ("exact", "seed", "seed-exact") for d in dims3])
else:
    st.info(say("not_seed"))

# ---- 7 · multi-head ---------------------------------------------------------------------
st.subheader(say("s7"))
st.caption(say("s7_help"))
heads = [say("head", h=h) for h in (1, 2)]
split_cols = [f"h{h}·d{j}" for h in (1, 2) for j in (1, 2, 3)]
st.markdown(f"**{say('projected')}**")
for tab, name in zip(st.tabs(["Q (3 × 6)", "K (3 × 6)", "V (3 × 6)"]),
                     ("queries", "keys", "values"), strict=True):
    with tab:
        table(mh[name], inputs, split_cols, f"steps_mh_{name}")
st.markdown(f"**{say('split')}**")
for h, tab in enumerate(st.tabs(heads)):
    with tab:
        sub = st.columns(3)
        for c, name in zip(sub, ("head_queries", "head_keys", "head_values"), strict=True):
            with c:
                st.caption(f"{name.split('_')[1][0].upper()}{h + 1}")
                table(mh[name][h], inputs, dims3, f"steps_mh_{name}_{h}")
st.markdown(f"**{say('per_head')}**")
plot(heads_figure(mh["head_weights"], inputs, head_names=heads, title=say("per_head"),
                  value_name=say("weight"), style=STYLE), "steps_heads",
     np.hstack(list(mh["head_weights"])), inputs,
     [f"head {h} → {k}" for h in (1, 2) for k in inputs])
cols = st.columns(2)
for h, col in enumerate(cols):
    with col:
        st.markdown(say("head_out", h=h + 1))
        table(mh["head_outputs"][h], inputs, dims3, f"steps_mh_out_{h}")
cols = st.columns([3, 2])
with cols[0]:
    st.markdown(f"**{say('concat')}**")
    table(mh["concat"], inputs, split_cols, "steps_mh_concat")
with cols[1]:
    st.markdown(f"**{say('final')}**")
    table(mh["outputs"], inputs, [f"y{j}" for j in (1, 2, 3, 4)], "steps_mh_outputs")
