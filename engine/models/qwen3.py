"""Qwen3 (Yang et al., 2025): Qwen2's layout without the q/k/v biases (`attention_bias`),
with an RMSNorm over each head's q and k before RoPE and an explicit `head_dim`."""

from __future__ import annotations

from engine.models.llama import convert, decoder_config
from engine.models.qwen2 import windows

MODEL_TYPES = ("qwen3",)
__all__ = ["MODEL_TYPES", "config_from_hf", "convert"]


def config_from_hf(hf: dict):
    return decoder_config(hf, qk_norm=True, window=windows(hf))
