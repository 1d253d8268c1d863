"""BERT (Devlin et al., 2019): a post-norm encoder with learned positions, token types,
LayerNorm after the embeddings and GELU.

Checkpoints come bare (BertModel: `embeddings.…`, `encoder.layer.N.…`) or with the `bert.`
prefix of *ForMaskedLM / *ForSequenceClassification, whose heads (`cls.…`, `classifier.…`)
and the pooler the engine does not run. RoBERTa and MiniLM reuse this name map.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engine.core.config import ModelConfig
from engine.models.common import Rules, rename

MODEL_TYPES = ("bert",)
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "relu": "relu"}


def encoder_config(hf: Mapping, **changes) -> ModelConfig:
    """The BERT-style encoder a config.json describes; `changes` override single fields."""
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"position_embedding_type {hf['position_embedding_type']!r} is not "
                         "supported (absolute is)")
    act = hf.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise ValueError(f"hidden_act {act!r} is not supported ({', '.join(ACTIVATIONS)} are)")
    fields = dict(
        arch="encoder", name=hf["model_type"], vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"], n_heads=hf["num_attention_heads"],
        d_ff=hf["intermediate_size"], n_encoder_layers=hf["num_hidden_layers"],
        activation=ACTIVATIONS[act], norm="layernorm", norm_position="post",
        norm_eps=float(hf.get("layer_norm_eps", 1e-12)), embed_norm=True, positions="learned",
        max_len=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2), pad_id=hf.get("pad_token_id") or 0,
    )
    fields.update(changes)
    return ModelConfig(**fields)


def config_from_hf(hf: Mapping) -> ModelConfig:
    return encoder_config(hf)


def rules(prefix: str) -> Rules:
    """BERT's names, optionally under `prefix` ("bert.", "roberta.")."""
    p = rf"(?:{prefix.replace('.', chr(92) + '.')})?"
    layer = p + r"encoder\.layer\.(\d+)\."
    out = r"encoder.layers.\1."
    return [
        (p + r"embeddings\.word_embeddings\.weight", "encoder.embed.tokens.weight"),
        (p + r"embeddings\.position_embeddings\.weight", "encoder.embed.positions.weight"),
        (p + r"embeddings\.token_type_embeddings\.weight", "encoder.embed.types.weight"),
        (p + r"embeddings\.LayerNorm\.(weight|bias)", r"encoder.embed.norm.\1"),
        (layer + r"attention\.self\.query\.(weight|bias)", out + r"self_attn.q_proj.\2"),
        (layer + r"attention\.self\.key\.(weight|bias)", out + r"self_attn.k_proj.\2"),
        (layer + r"attention\.self\.value\.(weight|bias)", out + r"self_attn.v_proj.\2"),
        (layer + r"attention\.output\.dense\.(weight|bias)", out + r"self_attn.o_proj.\2"),
        (layer + r"attention\.output\.LayerNorm\.(weight|bias)", out + r"self_norm.\2"),
        (layer + r"intermediate\.dense\.(weight|bias)", out + r"ffn.up.\2"),
        (layer + r"output\.dense\.(weight|bias)", out + r"ffn.down.\2"),
        (layer + r"output\.LayerNorm\.(weight|bias)", out + r"ffn_norm.\2"),
    ]


# Heads and buffers the encoder does not run.
IGNORE = (r"cls\..*", r"lm_head\..*", r"classifier\..*", r"qa_outputs\..*",
          r"(?:\w+\.)?pooler\..*", r"(?:\w+\.)?embeddings\.position_ids")


def convert(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig,
            prefix: str = "bert.") -> dict[str, torch.Tensor]:
    """BERT names → ours. Pure: no I/O; shapes are checked when the weights are copied."""
    return rename(tensors, rules(prefix), IGNORE)[0]
