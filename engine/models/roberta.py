"""RoBERTa (Liu et al., 2019) and XLM-R (Conneau et al., 2020): BERT's layout whose learned
positions start at padding_idx + 1 (so max_position_embeddings = 514 holds 512 positions)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engine.core.config import ModelConfig
from engine.models import bert

MODEL_TYPES = ("roberta", "xlm-roberta")


def config_from_hf(hf: Mapping) -> ModelConfig:
    offset = (hf.get("pad_token_id") if hf.get("pad_token_id") is not None else 1) + 1
    return bert.encoder_config(hf, position_offset=offset,
                               max_len=hf.get("max_position_embeddings", 514) - offset,
                               type_vocab_size=hf.get("type_vocab_size", 1))


def convert(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    return bert.convert(tensors, cfg, prefix="roberta.")
