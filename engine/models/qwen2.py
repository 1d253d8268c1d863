"""Qwen2 and Qwen2.5 (Yang et al., 2024): Llama's layout with biases on q, k and v (none on
o or the FFN), and a sliding window only where `use_sliding_window` says so, from layer
`max_window_layers` on."""

from __future__ import annotations

from engine.models.llama import convert, decoder_config, layer_windows

MODEL_TYPES = ("qwen2",)
__all__ = ["MODEL_TYPES", "config_from_hf", "convert", "windows"]


def windows(hf: dict):
    """Per-layer windows: none unless use_sliding_window; then from `layer_types`, or sliding
    from max_window_layers on (transformers' default for older configs)."""
    if not hf.get("use_sliding_window"):
        return None
    n = hf["num_hidden_layers"]
    first = hf.get("max_window_layers", n)
    default = ["sliding_attention" if i >= first else "full_attention" for i in range(n)]
    return layer_windows(hf, n, default)


def config_from_hf(hf: dict):
    return decoder_config(hf, qkv_bias=True, o_bias=False, ffn_bias=False, window=windows(hf))
