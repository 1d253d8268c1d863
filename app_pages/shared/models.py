"""Cached model loading and cached attention runs, and the model picker every page uses.

Models sit behind `st.cache_resource` (one copy per process, shared by every session:
forward passes run under torch.inference_mode and never mutate the model). Attention records
sit behind `result_cache.byte_cached`, keyed by every argument that changes them: one budget
in bytes for the process (ATTENTION_STUDIO_CACHE_MB), least recently used first out, the same
read-only record handed to every session instead of a pickled copy per rerun. The small
results of the other pages stay on `st.cache_data`.
"""

from __future__ import annotations

import streamlit as st

import engine
from app_pages.shared.i18n import COMMON_TEXT, lang, tr
from app_pages.shared.result_cache import byte_cached
from engine.models.registry import MODELS


@st.cache_data(ttl=60, show_spinner=False)
def found_checkpoints() -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Checkpoints on this machine besides the registered models, as `python -m engine
    models` lists them (the HF cache, and the folders and GGUF files an operator put in
    ATTENTION_STUDIO_MODELS; nothing else on the server is offered):
    ({name: (kind, summary)}, {unsupported name: why})."""
    from engine.models.registry import discover

    ok, unsupported = {}, {}
    for c in discover():
        if c.facts:
            f = c.facts
            ok[c.name] = (f["kind"], f"{f['layers']} × {f['heads']} heads, {f['kv_heads']} K/V, "
                                     f"{f['positions']}, {c.size_bytes / 2**30:.2f} GiB on disk")
        else:
            unsupported[c.name] = c.why or f"model_type {c.model_type!r}"
    return ok, unsupported


def installed_models(kinds: tuple[str, ...] | None = None) -> tuple[list[str], dict[str, str]]:
    """(installed model names, then the checkpoints found on disk; {missing name: install
    command})."""
    ok, missing = [], {}
    for name, e in MODELS.items():
        if kinds and e.kind not in kinds:
            continue
        if e.is_installed():
            ok.append(name)
        else:
            missing[name] = e.install or ""
    found, _ = found_checkpoints()
    ok += [name for name, (kind, _) in found.items() if not kinds or kind in kinds]
    return ok, missing


SUMMARY_ZH = {  # the registry's one-line descriptions, in 中文
    "minilm": "all-MiniLM-L6-v2(BERT 句向量编码器)",
    "gemma3-270m": "Gemma 3 270M(Q4_K_M GGUF,已反量化)",
    "smollm2-135m": "SmolLM2-135M-Instruct(Llama 架构,GQA;Q4_1 GGUF,已反量化)",
    "seq2seq-mha": "在本项目中训练的日期规范化模型(MHA,8 个查询头)",
    "seq2seq-gqa": "在本项目中训练的日期规范化模型(GQA,8 个查询头)",
    "seq2seq-mqa": "在本项目中训练的日期规范化模型(MQA,8 个查询头)",
    "transformer-base": "Vaswani 等人的 base Transformer,随机权重(仅演示机制)",
}


def model_summary(name: str, language: str | None = None) -> str:
    """A model's one-line description in `language` (default: the interface's)."""
    if name in MODELS:
        if (language or lang()) == "zh" and name in SUMMARY_ZH:
            return SUMMARY_ZH[name]
        return MODELS[name].summary
    return found_checkpoints()[0].get(name, ("", ""))[1]


@st.cache_resource(show_spinner=False)
def _load(name: str, device: str) -> engine.LoadedModel:
    bar = st.progress(0.0, text=tr(COMMON_TEXT, "loading", name=name))

    def progress(fraction: float, message: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=message)

    try:
        return engine.load(name, device=device, progress=progress)
    finally:
        bar.empty()


def get_model(name: str, device: str) -> engine.LoadedModel | None:
    """The model, or None after showing why it cannot be loaded."""
    try:
        with st.spinner(tr(COMMON_TEXT, "loading", name=name)):
            return _load(name, device)
    except engine.ModelNotInstalled as exc:
        st.warning(f"{tr(COMMON_TEXT, 'not_installed')}")
        st.code(exc.command, language="bash")
    except (ValueError, ImportError, OSError) as exc:  # a corrupt file, a broken package
        st.error(tr(COMMON_TEXT, "error", msg=str(exc)))
    return None


def model_picker(key: str, kinds: tuple[str, ...] | None = None, default: str | None = None):
    """A selectbox of installed models, with the missing ones listed with their command."""
    names, missing = installed_models(kinds)
    if not names:
        st.error("no model is installed")
        return None
    index = names.index(default) if default in names else 0
    language = lang()  # fixed for this run: the labels are formatted outside it, too
    name = st.selectbox(tr(COMMON_TEXT, "model"), names, index=index, key=key,
                        format_func=lambda n: f"{n} — {model_summary(n, language)}")
    if missing:
        with st.expander(f"{tr(COMMON_TEXT, 'not_installed')} {', '.join(missing)}"):
            for n, cmd in missing.items():
                st.markdown(f"**{n}**")
                st.code(cmd, language="bash")
    _, unsupported = found_checkpoints()
    if unsupported:
        with st.expander(tr(COMMON_TEXT, "unsupported_found", n=len(unsupported))):
            for n, why in unsupported.items():
                st.text(f"{n}: {why}")  # st.text: a path or message is never Markdown
    return name


@byte_cached("attend")
def attend(name: str, device: str, text: str, **kwargs) -> engine.AttentionRecord:
    """Cached `model.attend`; every keyword argument is part of the cache key. The record is
    shared with every session and its arrays are read-only (copy one to change it)."""
    return _load(name, device).attend(text, **kwargs)


@byte_cached("attend_batch")
def attend_batch(name: str, device: str, texts: tuple[str, ...],
                 **kwargs) -> list[engine.AttentionRecord]:
    """Cached `model.attend_batch` (one padded batch); every argument is part of the key.
    Shared and read-only like `attend`'s records."""
    return _load(name, device).attend_batch(list(texts), **kwargs)


def show_notices(record: engine.AttentionRecord) -> None:
    """The engine's notices about this input (truncation, unknown characters, …)."""
    for notice in record.meta.get("notices", []):
        st.info(notice)
