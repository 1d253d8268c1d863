"""The Attention page's text box: a text area that takes long texts, the token count against
the model's limit under it, a warning naming what the engine will cut, a refusal of texts too
big to read (shared.long_text.MAX_CHARS), and the token list in a box of its own height.

Streamlit sends a text area's value on Ctrl+Enter or when it loses focus, never per
keystroke: the count follows the text at those moments (the help text says so).
"""

from __future__ import annotations

import streamlit as st

from app_pages.attention.text import ATTENTION_TEXT
from app_pages.shared.i18n import COMMON_TEXT, tr, translator
from app_pages.shared.long_text import MAX_CHARS, Count, count_tokens
from viz.style import visible_token

say = translator(ATTENTION_TEXT)

TEXT_HEIGHT = 110  # px: about four lines; a longer text scrolls inside the box
TOKEN_LIST_HEIGHT = 260  # px: the token list scrolls inside this (4,446 tokens made 9,000 px)
TOKEN_LIST_FIXED_FROM = 48  # tokens: a shorter list is drawn at its own height


def text_box() -> str:
    """The text area (key attn_text: `persist` keeps it across pages)."""
    return st.text_area(tr(COMMON_TEXT, "text"), key="attn_text", height=TEXT_HEIGHT,
                        help=say("text_help"))


def refuse_huge(text: str, limit: int) -> None:
    """Stop the page, with a message, for a text above MAX_CHARS characters (kept in the box,
    so it can be shortened there)."""
    if len(text) > MAX_CHARS:
        st.error(tr(COMMON_TEXT, "too_long", n=len(text), max=MAX_CHARS, limit=limit))
        st.stop()


def show_count(model, name: str, text: str) -> Count:
    """The count under the box ("2,048 tokens · gemma3-270m reads up to 8,192") and, for a
    text over the limit, what the engine will cut. Raises what the codec raises on a text it
    cannot read (empty, …)."""
    count = count_tokens(model.codec, text)
    cfg = model.config
    line = say("token_count", n=count.n, model=name, max=count.limit)
    if cfg.positions == "rope" and cfg.max_len > count.limit:
        # Gemma's positions go to 32,768, the engine records at most 8,192 tokens of a text
        line += say("token_count_trained", trained=cfg.max_len)
    st.caption(line)
    if count.cut:
        key = "over_limit_at" if count.cut_at is not None else "over_limit"
        st.warning(say(key, n=count.n, kept=count.kept, cut=count.n - count.kept,
                       at=count.cut_at or 0, model=name))
    return count


def token_list(tokens: list[str], target_tokens: list[str] | None) -> None:
    """The raw tokens as `i:token` (visible_token: invisible ones by their code points), in a
    box of fixed height with its own scroll once the list is long."""
    n = len(tokens) + len(target_tokens or [])
    with st.container(height=TOKEN_LIST_HEIGHT if n > TOKEN_LIST_FIXED_FROM else "content",
                      key="attn_token_list", border=False):
        for toks in (tokens, target_tokens):
            if toks is not None:
                st.code("  ".join(f"{i}:{visible_token(t)}" for i, t in enumerate(toks)),
                        language=None, wrap_lines=True)
