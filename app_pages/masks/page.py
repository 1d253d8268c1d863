"""Masks: which keys a query may read — none, causal, padding, a sliding window, knock-outs.

Wiring only: widgets → engine (`attend(mask=…, window=…, knockout=…, scores=True)`, or
`attend_batch` for padding) → viz.figures.masks.masks_figure. The boolean mask shown is the
one the engine applied, read off the recorded scores (its False cells, and only they, are −∞).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import engine
from app_pages.masks.text import MASKS_TEXT
from app_pages.shared.download import figure_with_download
from app_pages.shared.figure_words import block_label
from app_pages.shared.i18n import COMMON_TEXT, tr, translator
from app_pages.shared.long_text import MAX_CHARS, first_tokens
from app_pages.shared.models import (
    attend,
    attend_batch,
    get_model,
    model_picker,
)
from app_pages.shared.notices import show_notices
from app_pages.shared.numbers import cosine
from app_pages.shared.progress import computing
from app_pages.shared.sidebar import current_style
from engine.core.block_key import BlockKey
from viz.figures.masks import masks_figure

say = translator(MASKS_TEXT)

DEFAULT_TEXT = "The cat sat on the mat because it was tired."
DEFAULT_TEXT2 = "A second, longer sentence in the same batch makes the first one padded."
WINDOW_MAX = 2048
# Tokens drawn: three [T, T] panels, ~7 MB of figure at 512 (the Attention page's full-map
# limit too); a longer text is cut here, and the page says so.
MAX_DRAWN = 512


MODES = ("none", "causal", "padding")


def visible(token: str) -> str:
    """Token text with newlines and tabs shown as escapes (a table cell stays one line)."""
    return str(token).replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def topk_table(top_k) -> pd.DataFrame:
    return pd.DataFrame({say("token"): [visible(t) for t, _ in top_k],
                         say("prob"): [float(p) for _, p in top_k]})


def drawable(codec, text: str, said: str) -> str:
    """`text` cut to its first MAX_DRAWN tokens, with a note (`said`) when it was cut; a text
    above MAX_CHARS characters is refused."""
    if len(text) > MAX_CHARS:
        st.error(tr(COMMON_TEXT, "too_long", n=len(text), max=MAX_CHARS,
                    limit=min(MAX_DRAWN, getattr(codec, "max_tokens", MAX_DRAWN))))
        st.stop()
    try:
        cut, kept, had = first_tokens(codec, text, MAX_DRAWN)
    except (engine.InputError, ValueError) as exc:
        st.error(tr(COMMON_TEXT, "error", msg=str(exc)))
        st.stop()
    if kept < had:
        st.info(say(said, kept=kept, n=had))
    return cut


st.title(say("title"))
STYLE = current_style()  # the sidebar's choice, read once per run
st.markdown(say("intro"))
device = st.session_state.get("device", "auto")
precision = int(st.session_state.get("precision", 3))

top = st.columns([2, 3])
with top[0]:
    name = model_picker("masks_model", kinds=("encoder", "decoder"), default="minilm")
    st.caption(say("kinds_note"))
if name is None:
    st.stop()
try:
    model = get_model(name, device)
except ImportError as exc:  # a model marked installed whose loader is missing
    st.error(say("load_failed", name=name, msg=str(exc)))
    st.stop()
if model is None:
    st.stop()
cfg = model.config
with top[1]:
    # no max_chars: Streamlit's would drop a longer paste without a word (it did at 4,000)
    text = st.text_input(tr(COMMON_TEXT, "text"), value=DEFAULT_TEXT, key="masks_text")
if not text.strip():
    st.info(say("empty"))
    st.stop()
text = drawable(model.codec, text, "kept_first")

mode_names = {m: say(f"mode_{m}") for m in MODES}
row = st.columns([3, 1, 3])
with row[0]:
    mode = st.radio(say("mode"), MODES, format_func=mode_names.get, horizontal=True,
                    key="masks_mode", index=1)  # causal: the page opens on a visible mask
with row[1]:
    window = int(st.number_input(say("window"), 0, WINDOW_MAX, 0, key="masks_window",
                                 help=say("window_help")))
text2 = None
if mode == "padding":
    text2 = st.text_input(say("text2"), value=DEFAULT_TEXT2, key="masks_text2")
    if not text2.strip():
        st.info(say("empty"))
        st.stop()
    text2 = drawable(model.codec, text2, "kept_first2")

self_blocks = [k for k in model.block_keys() if not BlockKey.parse(k).cross]
sel = st.columns([3, 2, 2])
with sel[0]:
    block = st.selectbox(say("block"), self_blocks, key="masks_block")
with sel[1]:
    head = int(st.slider(say("head"), 0, cfg.n_heads - 1, 0, key="masks_head"))

try:
    with computing(say("computing", block=block_label(STYLE, block))):
        base = attend(name, device, text, mask="auto", scores=True, layers=[block])
except (engine.InputError, ValueError) as exc:
    st.error(tr(COMMON_TEXT, "error", msg=str(exc)))
    st.stop()
show_notices(base)
tokens = base.tokens

with row[2]:
    labels = [f"{i}: {t}" for i, t in enumerate(tokens)]
    knockout = st.multiselect(say("knockout"), list(range(len(tokens))),
                              format_func=lambda i: labels[i], key=f"masks_knock_{len(tokens)}",
                              help=say("knockout_help"),
                              placeholder=say("choose"))
knockout = sorted(int(i) for i in knockout)

api_mask = {"none": "none", "causal": "causal", "padding": "auto"}[mode]
kwargs = dict(mask=api_mask, window=window or None, knockout=knockout or None, scores=True,
              layers=[block])
item = 0
try:
    if mode == "padding":
        with sel[2]:
            item = st.radio(say("item"), [0, 1], horizontal=True, key="masks_item",
                            format_func=lambda i: say("item_n", n=i + 1))
        records = attend_batch(name, device, (text, text2), **kwargs)
        rec = records[item]
        for notice in records[1].meta.get("notices", []):  # the first one's are shown above
            st.info(notice)
        reference = base if item == 0 else attend(name, device, text2, mask="auto",
                                                  scores=True, layers=[block])
    else:
        rec = attend(name, device, text, **kwargs)
        reference = base
except (engine.InputError, ValueError) as exc:
    st.error(tr(COMMON_TEXT, "error", msg=str(exc)))
    st.stop()

t = len(rec.tokens)
n_real = int(rec.meta.get("n_real", t))
if mode == "padding":
    if n_real < t:
        st.info(say("padding_note", t=t, n=item + 1, real=n_real, pad=t - n_real))
    else:
        st.info(say("no_padding", n=item + 1))
    if cfg.arch == "decoder":
        st.caption(say("padding_decoder"))

mask = rec.mask(block)[head]  # exactly the cells the engine masked
scores = rec.scores[block][head]  # [T, T], masked cells = -inf
weights = rec[block][head]
no_key = [int(i) for i in np.flatnonzero(~np.asarray(mask, dtype=bool).any(axis=-1))]
if no_key:  # such a row's weights are all 0 (the engine reads nothing there), not a softmax
    st.warning(say("no_key_left", rows=", ".join(f"{i}: {rec.tokens[i]}" for i in no_key)))
title = say("fig_title", block=block_label(STYLE, block), head=head)
fig = masks_figure(mask, scores, weights, rec.tokens, title=title, style=STYLE)
panels = ("panel_mask", "panel_scores", "panel_weights")
for ann, panel in zip(fig.layout.annotations[:3], panels, strict=False):
    ann.text = say(panel)  # the three subplot titles, in the interface language
figure_with_download(fig, "fig_masks", "dl_masks", record=rec, block=block, head=head,
                     name="masks", config={"displaylogo": False})
st.caption(say("figure_help"))

# ---- what changes -----------------------------------------------------------------------
st.subheader(say("changes"))
default_name = say("default_decoder" if cfg.arch == "decoder" else "default_encoder")
st.caption(say("changes_help", default=default_name))
n = len(reference.tokens)  # the real tokens: the reference ran alone, without padding
delta_layer = np.abs(rec[block][:, :n, :n] - reference[block][:, :n, :n])
m = st.columns(4)
with m[0], st.container(key="masks_metric_head"):
    st.metric(say("max_change_head"), f"{float(delta_layer[head].max()):.{precision}g}")
with m[1], st.container(key="masks_metric_layer"):
    st.metric(say("max_change_layer"), f"{float(delta_layer.max()):.{precision}g}")
with m[2], st.container(key="masks_metric_cells"):
    st.metric(say("masked_cells"), f"{int((~mask).sum())} / {mask.size}")
if "embedding" in rec.outputs and "embedding" in reference.outputs:
    cos = cosine(rec.outputs["embedding"], reference.outputs["embedding"])
    with m[3], st.container(key="masks_metric_cosine"):
        st.metric(say("cosine"), f"{cos:.{max(precision, 4)}f}")
if "top_k" in rec.outputs and "top_k" in reference.outputs:
    c = st.columns(2)
    with c[0], st.container(key="masks_topk_default"):
        st.markdown(f"**{say('topk_default')}**")
        st.dataframe(topk_table(reference.outputs["top_k"]), hide_index=True)
    with c[1], st.container(key="masks_topk_masked"):
        st.markdown(f"**{say('topk_masked')}**")
        st.dataframe(topk_table(rec.outputs["top_k"]), hide_index=True)
