"""Attention page: type a sentence, see where every head looks.

Wiring only: widgets → `engine` (through the cached `shared.models.attend`) → `viz` builders
→ `figure_with_download`. Views live in lazily rendered tabs (only the open tab runs; each
tab is a function in `tabs.py`), so typing a sentence redraws one figure, not nine.

Long inputs (> viz.LONG_INPUT tokens) record one layer at a time; the all-layer views
(model view, metrics, rollout) come from one cached pass reduced to small arrays, so a
2,048-token Gemma map never reaches the browser at full size.
"""

from __future__ import annotations

import streamlit as st

import engine
from app_pages.attention.input_box import refuse_huge, show_count, text_box, token_list
from app_pages.attention.long_layers import (
    budget_for,
    crowded_by,
    layer_record,
    pass_outputs,
    pass_summary,
    replayable,
    start_pass,
)
from app_pages.attention.passes import long_summary
from app_pages.attention.tabs import TAB_VIEWS, AttentionView, kind_name
from app_pages.attention.text import ATTENTION_TEXT
from app_pages.shared.i18n import COMMON_TEXT, tabs_keeping_choice, tr, translator
from app_pages.shared.models import attend, get_model, model_picker
from app_pages.shared.notices import show_notices
from app_pages.shared.numbers import frame
from app_pages.shared.progress import computing
from app_pages.shared.result_cache import CACHE
from app_pages.shared.result_cache import ENV_VAR as CACHE_VAR
from app_pages.shared.sidebar import current_settings, current_style
from app_pages.shared.timing import timed
from app_pages.shared.widget_state import keep_in_range, keep_valid, persist
from engine.core.block_key import BlockKey, kind_of
from viz.figures.long_input import LONG_INPUT
from viz.style import visible_token

say = translator(ATTENTION_TEXT)

DEFAULT_TEXT = "The animal didn't cross the street because it was too tired."
DEFAULT_DATE = "March 3rd, 2021"
MAX_GENERATE = 64

ENC_DEC_ONLY = ("tab_cross", "tab_steps")  # cross-attention and generation steps


# ----------------------------------------------------------------------------- page

persist(("attn_model", "attn_text", "attn_target", "attn_generate", "attn_kind", "attn_layer",
         "attn_head", "attn_tab", "attn_lines_heads", "attn_qk_query", "attn_metric",
         "attn_ablate", "attn_long_view"), {"attn_text": DEFAULT_TEXT})
settings = current_settings()
style = current_style()
st.title(say("title"))
st.caption(say("intro"))

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
    text = text_box()
target: str | None = None
generate = 0
if arch == "encoder-decoder":
    with cols[1]:
        target = st.text_input(tr(COMMON_TEXT, "target"), key="attn_target",
                               placeholder=say("target_placeholder"),
                               help=say("target_help"))
    target = (target or "").strip() or None
    if target is None and model.weights_hash.startswith("init:"):  # random weights
        limit = min(getattr(model, "max_target_tokens", cfg.max_len - 1), cfg.max_len - 1)
        st.info(say("no_greedy", name=name, n=limit))
        target = text
elif arch == "decoder":
    with cols[1]:
        keep_in_range("attn_generate", 0, MAX_GENERATE, 0)
        generate = int(st.number_input(say("generate"), 0, MAX_GENERATE,
                                       key="attn_generate",
                                       help=say("generate_help")))

with cols[0]:
    refuse_huge(text, getattr(model.codec, "max_tokens", cfg.max_len))
    try:
        n_tokens = show_count(model, name, text).kept + generate
    except (engine.InputError, ValueError) as exc:
        st.warning(say("bad_input", msg=str(exc)))
        st.stop()
long = n_tokens > LONG_INPUT

kinds = list(dict.fromkeys(kind_of(k) for k in model.block_keys()))
keep_valid("attn_kind", kinds)
c1, c2, c3 = st.columns([5, 2, 2])
with c1:
    kind = st.segmented_control(say("block"), kinds, key="attn_kind",
                                format_func=kind_name, required=True) or kinds[0]
n_layers = cfg.n_encoder_layers if kind == "encoder.self" else cfg.n_decoder_layers
keep_valid("attn_layer", list(range(n_layers)))
keep_valid("attn_head", list(range(cfg.n_heads)))
with c2:
    layer = st.selectbox(say("layer"), list(range(n_layers)), key="attn_layer")
with c3:
    head = st.selectbox(say("head"), list(range(cfg.n_heads)), key="attn_head")
key = str(BlockKey(kind, layer))
base = dict(target=target, generate=generate)

# A long input records the chosen layer only. Without generated tokens, its pass also stops
# after that layer (attention there depends on the layers below it alone), and the model's
# outputs come from one fused pass per text, cached: switching to layer k then costs k + 1
# layers, not the whole model.
maps_only = long and arch in ("encoder", "decoder") and not generate
# ... and after the first view, one background pass over every layer keeps their queries
# and keys: another layer is then one q·kᵀ away (long_layers, layer_pass).
from_pass = maps_only and replayable(model, kind, generate)


def model_outputs() -> dict:
    """Embedding / next-token top-k / generated text for this text."""
    if not maps_only:
        return rec.outputs
    if from_pass:  # the background pass reports them: no second pass over the whole model
        return pass_outputs(name, settings.device, text, kind)
    return attend(name, settings.device, text, layers=[], **base).outputs


if generate:
    doing = say("computing_generate", g=generate, n=n_tokens)
elif maps_only:  # the pass stops after the chosen layer
    doing = say("computing_upto", n=n_tokens, layer=layer)
else:
    doing = say("computing", n=n_tokens)
try:
    with computing(doing), timed("engine pass", tokens=n_tokens, layer=key):
        # ("Loading …" is get_model's, while a model loads)
        if from_pass:  # the shared background pass's q and k, or a pass up to this layer
            rec = layer_record(name, settings.device, text, kind, key)
        else:
            rec = attend(name, settings.device, text, layers=[key] if long else None,
                         outputs=not maps_only, **base)
    shown = rec.outputs  # a long decoder's next-token table is filled in after the figures
except (engine.InputError, ValueError) as exc:
    st.warning(say("bad_input", msg=str(exc)))
    st.stop()

show_notices(rec)
if long:
    st.info(say("long", n=len(rec.tokens)))
    layer_bytes = sum(m.nbytes for m in rec.maps.values())
    crowded = crowded_by(layer_bytes)  # e.g. Gemma's 4 heads at 8,000 tokens
    if crowded:
        st.warning(say(crowded, mb=layer_bytes / 2**20, budget=CACHE.max_bytes
                       / 2**20, var=CACHE_VAR,
                       want=budget_for(layer_bytes) // 2**20))
# Figures label the axes readably (Ġ/▁ as spaces, a byte token of 我 as "我 1/2"); the
# token list below and every data export keep the raw tokens.
q_tok, k_tok = rec.axis_labels(key)
out_cols = st.columns(2)
with out_cols[0].expander(say("tokens", n=len(rec.tokens))):
    token_list(rec.tokens, rec.target_tokens)


def show_outputs(shown: dict) -> None:
    """The generated text and the next-token table, in the right-hand column."""
    if "generated" in shown:
        st.caption(say("generated"))
        st.code(shown["generated"], language=None)
    if "top_k" in shown:
        st.caption(say("next_tokens"))
        top = shown["top_k"]
        # each alternative on its own: its bytes never join a neighbour's into one character
        readable = [model.codec.labels([t])[0] if hasattr(model.codec, "labels") else t
                    for t, _ in top]
        st.dataframe(frame([(visible_token(r), p) for r, (_, p) in zip(readable, top,
                                                                       strict=True)],
                           columns=[style.say("token"), style.say("probability")]),
                     width="stretch", height=160)


if not (arch == "decoder" and maps_only):
    with out_cols[1]:
        show_outputs(shown)

layer_maps = None if long else [rec[k] for k in rec.blocks(kind)]


def summary() -> dict:
    """The all-layer summary of a long input (computed on first use by a tab that needs it)."""
    with computing(say("summary_computing", n=n_tokens)), timed("reductions", what="summary"):
        if from_pass:
            return pass_summary(name, settings.device, text, kind)
        return long_summary(name, settings.device, text, kind, target, generate)


weights = rec[key]  # [H, Tq, Tk]

names = [t for t in TAB_VIEWS if arch == "encoder-decoder" or t not in ENC_DEC_ONLY]
tabs = dict(zip(names, tabs_keeping_choice(ATTENTION_TEXT, "attn_tab", names), strict=True))


def open_head(layer_: int, head_: int) -> None:
    st.session_state["attn_layer"] = layer_
    st.session_state["attn_head"] = head_
    st.session_state["attn_tab"] = say("tab_head")


view = AttentionView(name=name, settings=settings, style=style, model=model, cfg=cfg, arch=arch,
                     text=text, base=base, long=long, kind=kind, layer=layer, head=head, key=key,
                     rec=rec, weights=weights, q_tok=q_tok, k_tok=k_tok, layer_maps=layer_maps,
                     summary=summary, open_head=open_head, outputs=model_outputs)
for tab_name in names:
    with tabs[tab_name]:
        if tabs[tab_name].open:
            TAB_VIEWS[tab_name](view)
if arch == "decoder" and maps_only:  # a whole fused pass: after the figures, not before
    with out_cols[1]:
        with computing(say("computing_next", n=n_tokens)):
            shown = model_outputs()
        show_outputs(shown)
if from_pass:  # after the page is drawn, so that it never delays the first view
    start_pass(name, settings.device, text, kind)
