"""DistilBERT (Sanh et al., 2019): BERT's post-norm encoder, 6 layers, no token types; its
own tensor names (q_lin, sa_layer_norm, ffn.lin1, …)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engine.core.config import ModelConfig
from engine.models.common import rename

MODEL_TYPES = ("distilbert",)
ACTIVATIONS = {"gelu": "gelu", "relu": "relu"}


def config_from_hf(hf: Mapping) -> ModelConfig:
    act = hf.get("activation", "gelu")
    if act not in ACTIVATIONS:
        raise ValueError(f"activation {act!r} is not supported ({', '.join(ACTIVATIONS)} are)")
    return ModelConfig(
        arch="encoder", name="distilbert", vocab_size=hf["vocab_size"], d_model=hf["dim"],
        n_heads=hf["n_heads"], d_ff=hf["hidden_dim"], n_encoder_layers=hf["n_layers"],
        activation=ACTIVATIONS[act], norm="layernorm", norm_position="post", norm_eps=1e-12,
        embed_norm=True, positions="learned", max_len=hf.get("max_position_embeddings", 512),
        pad_id=hf.get("pad_token_id") or 0,
    )


_P = r"(?:distilbert\.)?"
_L = _P + r"transformer\.layer\.(\d+)\."
_O = r"encoder.layers.\1."
RULES = [
    (_P + r"embeddings\.word_embeddings\.weight", "encoder.embed.tokens.weight"),
    (_P + r"embeddings\.position_embeddings\.weight", "encoder.embed.positions.weight"),
    (_P + r"embeddings\.LayerNorm\.(weight|bias)", r"encoder.embed.norm.\1"),
    (_L + r"attention\.([qkv])_lin\.(weight|bias)", _O + r"self_attn.\2_proj.\3"),
    (_L + r"attention\.out_lin\.(weight|bias)", _O + r"self_attn.o_proj.\2"),
    (_L + r"sa_layer_norm\.(weight|bias)", _O + r"self_norm.\2"),
    (_L + r"ffn\.lin1\.(weight|bias)", _O + r"ffn.up.\2"),
    (_L + r"ffn\.lin2\.(weight|bias)", _O + r"ffn.down.\2"),
    (_L + r"output_layer_norm\.(weight|bias)", _O + r"ffn_norm.\2"),
]
IGNORE = (r"vocab_.*", r"pre_classifier\..*", r"classifier\..*", r"qa_outputs\..*",
          _P + r"embeddings\.position_ids")


def convert(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    return rename(tensors, RULES, IGNORE)[0]
