"""English / 中文 interface text.

Each page keeps its own table `{key: (english, chinese)}` in its folder's `text.py`, so a
page's strings are edited with the page; `tr(table, key)` picks the current language.
"""

from __future__ import annotations

import streamlit as st

LANGS = {"en": "English", "zh": "中文"}


def lang() -> str:
    return st.session_state.get("lang", "en")


def tr(table: dict[str, tuple[str, str]], key: str, **fmt) -> str:
    """The text for `key` in the current language, formatted with `fmt`."""
    en, zh = table[key]
    text = zh if lang() == "zh" else en
    return text.format(**fmt) if fmt else text


def translator(table: dict[str, tuple[str, str]]):
    """`tr` bound to one page's table: `say = translator(MASKS_TEXT)`; `say("title")`."""
    def say(key: str, **fmt) -> str:
        return tr(table, key, **fmt)

    return say


def tabs_keeping_choice(table: dict[str, tuple[str, str]], key: str, names: list[str]):
    """Lazy tabs whose open tab survives a language switch (their labels change with it)."""
    current = st.session_state.get(key)
    for n in names:
        if current in table[n]:
            st.session_state[key] = tr(table, n)
    return st.tabs([tr(table, n) for n in names], key=key, on_change="rerun")


COMMON_TEXT = {  # the sidebar's and every page's shared words
    "app_title": ("Attention Studio", "注意力工作室"),
    "language": ("Language / 语言", "语言 / Language"),
    "device": ("Device", "设备"),
    "colorscale": ("Colour scale", "配色"),
    "shared_range": ("Shared colour range across heads", "所有头共用颜色范围"),
    "precision": ("Number precision (digits)", "数值精度(位数)"),
    "model": ("Model", "模型"),
    "not_installed": ("Not installed — install with:", "未安装——安装命令:"),
    "unsupported_found": ("{n} checkpoint(s) found that cannot be opened",
                          "找到 {n} 个无法打开的检查点"),
    "loading": ("Loading {name}…", "正在加载 {name}…"),
    "text": ("Text", "文本"),
    "target": ("Target (decoder input)", "目标序列(解码器输入)"),
    "download": ("Download", "下载"),
    "page_attention": ("Attention", "注意力"),
    "page_masks": ("Masks", "掩码"),
    "page_variants": ("Variants (MHA/GQA/MQA)", "变体(MHA/GQA/MQA)"),
    "page_positions": ("Positions", "位置编码"),
    "page_steps": ("Step by step", "逐步计算"),
    "page_census": ("Census", "头普查"),
    "error": ("Could not run: {msg}", "无法运行:{msg}"),
    "layer_of": ("layer {k} of {n}", "第 {k} 层 / 共 {n} 层"),
    "step_of": ("step {k} of {n}", "第 {k} 步 / 共 {n} 步"),
    "too_long": (
        "The text has {n:,} characters, more than the {max:,} this page takes: paste a shorter "
        "part (the model reads at most {limit:,} tokens of it anyway).",
        "文本有 {n:,} 个字符,超过本页接受的 {max:,} 个:请粘贴较短的一段(模型无论如何最多只读取"
        "其中 {limit:,} 个词元)。",
    ),
}
