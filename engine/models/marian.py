"""Marian (Junczys-Dowmunt et al., 2018; the Helsinki-NLP OPUS-MT checkpoints): BART's
layout without the embedding LayerNorm, with sinusoidal positions laid out as sines in the
first half of the dimensions and cosines in the second, embeddings × √d_model, SiLU ("swish")
and a final_logits_bias. The decoder starts from the pad token."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engine.core.config import ModelConfig
from engine.models import bart

MODEL_TYPES = ("marian",)


def config_from_hf(hf: Mapping) -> ModelConfig:
    if hf.get("decoder_vocab_size") not in (None, hf["vocab_size"]) or not hf.get(
            "share_encoder_decoder_embeddings", True):
        raise ValueError("separate source and target vocabularies are not supported")
    pre = bool(hf.get("normalize_before", False))
    start = hf.get("decoder_start_token_id")
    return bart.seq2seq_config(
        hf, embed_norm=False, positions="sinusoidal", sinusoid_halves=True, position_offset=0,
        norm_position="pre" if pre else "post", final_norm=pre,
        bos_id=start if start is not None else hf.get("pad_token_id", 0))


def convert(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Marian names → ours; the stored sinusoid tables are left out (computed, not learned)."""
    return bart.convert(tensors, cfg, ignore=(r"(?:model\.)?(encoder|decoder)\.embed_positions"
                                              r"\.weight",))
