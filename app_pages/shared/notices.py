"""The engine's notices in the reader's language.

The engine gives each notice a stable `code` and the `args` it was made from
(engine.api.Notice; its text stays English); this table says them in 中文. A notice without
a known code is shown as the engine wrote it.
"""

from __future__ import annotations

import streamlit as st

from app_pages.shared.i18n import lang

NOTICE_TEXT = {  # code: (English, 中文), formatted with the notice's args (the English
    # column documents the code; English readers see the engine's text itself)
    "truncated": (
        "The text was cut to {n} tokens (it had {had}); {model} reads at most {max}.",
        "文本被截断为 {n} 个词元(原有 {had} 个);{model} 最多读取 {max} 个。",
    ),
    "target_truncated": (
        "The target was cut to {n} tokens (it had {had}); {model} reads at most {max}.",
        "目标序列被截断为 {n} 个词元(原有 {had} 个);{model} 最多读取 {max} 个。",
    ),
    "beyond_training_length": (
        "The text has {n} tokens, more than the {max} positions {model} was trained on.",
        "文本有 {n} 个词元,超过了 {model} 训练时的 {max} 个位置。",
    ),
    "unknown_tokens": (
        "{share:.0%} of the tokens are unknown to {model}'s vocabulary ([UNK]); for Chinese "
        "text try gemma3-270m.",
        "{share:.0%} 的词元不在 {model} 的词表中([UNK]);中文文本可改用 gemma3-270m。",
    ),
    "unknown_tokens_other": (
        "{share:.0%} of the tokens are unknown to {model}'s vocabulary ([UNK]).",
        "{share:.0%} 的词元不在 {model} 的词表中([UNK])。",
    ),
    "random_weights": (
        "{model} has random weights: its maps show mechanics (masks, positions), not language.",
        "{model} 的权重是随机的:它的注意力图展示的是机制(掩码、位置),而不是语言。",
    ),
    "cuda_unavailable": (
        "CUDA was asked for but no GPU is available: running on CPU.",
        "选择了 CUDA,但没有可用的 GPU:改在 CPU 上运行。",
    ),
}


def notice_text(notice: object) -> str:
    """One notice in the interface language: in English the engine's own text; in 中文 the
    table's, or the engine's text when its code is unknown."""
    code = getattr(notice, "code", None)
    if lang() != "zh" or code not in NOTICE_TEXT:
        return str(notice)
    try:
        return NOTICE_TEXT[code][1].format(**getattr(notice, "args", {}))
    except (KeyError, ValueError):  # args of another engine version: its own words
        return str(notice)


def show_notices(record) -> None:
    """The engine's notices about this input (truncation, unknown tokens, random weights …)."""
    for notice in record.meta.get("notices", []):
        st.info(notice_text(notice))
