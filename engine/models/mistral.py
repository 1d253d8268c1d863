"""Mistral 7B (Jiang et al., 2023): Llama's layout with a sliding window of `sliding_window`
keys in every layer (null in v0.2 and later: full attention)."""

from __future__ import annotations

from engine.models.llama import convert, decoder_config

MODEL_TYPES = ("mistral",)
__all__ = ["MODEL_TYPES", "config_from_hf", "convert"]


def config_from_hf(hf: dict):
    return decoder_config(hf)
