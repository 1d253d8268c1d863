"""The Variants page's live measurements, cached: KV-cache bytes after a prefill and decode
latency of the small random-weight decoders and the trained date normalisers. The numbers
come from engine.variants; this module only picks the models and caches the results."""

from __future__ import annotations

import streamlit as st

import engine
from engine.variants import (
    decode_latency_ms,
    prefill_kv_bytes,
    small_decoder,
    small_decoder_config,
)

DEFAULT_DATE = "March 3rd, 2021"  # the trained models' encoder reads this date
LATENCY_STEPS = 8


@st.cache_data(show_spinner=False)
def small_kv_bytes(kv: int, lengths: tuple[int, ...]) -> list[int]:
    """cache.bytes_used of the small decoder with `kv` K/V heads after a prefill of each
    length."""
    return prefill_kv_bytes(small_decoder(kv), lengths)


def _source_ids(model: engine.LoadedModel) -> list[int]:
    return list(model.codec.encode(DEFAULT_DATE).ids)


@st.cache_data(show_spinner=False)
def trained_kv_bytes(name: str, device: str, lengths: tuple[int, ...]) -> list[int]:
    """cache.bytes_used of a trained encoder-decoder after a decoder prefill of each length."""
    model = engine.load(name, device)
    return prefill_kv_bytes(model.transformer, lengths, source_ids=_source_ids(model))


def small_latency(kv: int, context: int) -> tuple[float, float]:
    """(best, median) ms per decoded token of the small decoder after `context` tokens."""
    return decode_latency_ms(small_decoder(kv), context, steps=LATENCY_STEPS)


def trained_latency(model: engine.LoadedModel, context: int) -> tuple[int, float, float]:
    """(context used, best, median) ms per decoded token of a trained encoder-decoder; the
    context is capped below its max_len."""
    ctx = min(context, model.config.max_len - 16)
    best, med = decode_latency_ms(model.transformer, ctx, steps=LATENCY_STEPS,
                                  source_ids=_source_ids(model))
    return ctx, best, med


def small_name(kv: int) -> str:
    return small_decoder_config(kv).name
