"""The original Transformer (Vaswani et al., 2017, "Attention Is All You Need") as configs.

Base model (Table 3): N = 6, d_model = 512, d_ff = 2048, h = 8, d_k = d_v = 64; embeddings
scaled by √d_model, sinusoidal positions, post-LN "Add & Norm", ReLU FFN, masked decoder
self-attention, encoder-decoder (cross) attention, a linear + softmax output.
"""

from __future__ import annotations

from engine.core.config import ModelConfig


def vaswani(
    vocab_size: int = 8000,
    d_model: int = 512,
    n_heads: int = 8,
    n_layers: int = 6,
    d_ff: int = 2048,
    n_kv_heads: int | None = None,
    max_len: int = 1024,
    name: str = "transformer-base",
) -> ModelConfig:
    return ModelConfig(
        arch="encoder-decoder",
        name=name,
        vocab_size=vocab_size,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_ff=d_ff,
        n_encoder_layers=n_layers,
        n_decoder_layers=n_layers,
        activation="relu",
        norm="layernorm",
        norm_position="post",
        norm_eps=1e-5,
        positions="sinusoidal",
        max_len=max_len,
        embed_scale=d_model**0.5,
        tie_embeddings=True,
        bias=True,
        pad_id=0,
        bos_id=1,
        eos_id=2,
    )
