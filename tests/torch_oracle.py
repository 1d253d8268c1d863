"""torch.nn.Transformer holding an engine model's weights: the independent implementation that
tests/engine/test_engine_vs_torch.py checks the Vaswani preset against and that
bench/bench_engine_vs_torch.py times it against."""

from __future__ import annotations

import torch
from torch import nn

from engine.core.transformer import Transformer


def copy_attention(ours, theirs: nn.MultiheadAttention) -> None:
    """Our q/k/v/o projections → MultiheadAttention's packed in_proj and out_proj."""
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight,
                                               ours.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias,
                                             ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.o_proj.weight)
        theirs.out_proj.bias.copy_(ours.o_proj.bias)


def nn_transformer_like(model: Transformer) -> nn.Transformer:
    """nn.Transformer of `model`'s shape (post-LN, ReLU FFN, no final norms, as in the paper)
    with its weights; embeddings and output projection are not part of it."""
    c = model.cfg
    ref = nn.Transformer(c.d_model, c.n_heads, c.n_encoder_layers, c.n_decoder_layers, c.d_ff,
                         dropout=0.0, batch_first=True).eval()
    ref.encoder.norm = None  # the paper's post-LN stacks end without a norm
    ref.decoder.norm = None
    for ours, theirs in zip(model.encoder.layers, ref.encoder.layers, strict=True):
        copy_attention(ours.self_attn, theirs.self_attn)
        theirs.norm1.load_state_dict(ours.self_norm.state_dict())
        theirs.norm2.load_state_dict(ours.ffn_norm.state_dict())
        theirs.linear1.load_state_dict(ours.ffn.up.state_dict())
        theirs.linear2.load_state_dict(ours.ffn.down.state_dict())
    for ours, theirs in zip(model.decoder.layers, ref.decoder.layers, strict=True):
        copy_attention(ours.self_attn, theirs.self_attn)
        copy_attention(ours.cross_attn, theirs.multihead_attn)
        theirs.norm1.load_state_dict(ours.self_norm.state_dict())
        theirs.norm2.load_state_dict(ours.cross_norm.state_dict())
        theirs.norm3.load_state_dict(ours.ffn_norm.state_dict())
        theirs.linear1.load_state_dict(ours.ffn.up.state_dict())
        theirs.linear2.load_state_dict(ours.ffn.down.state_dict())
    return ref
