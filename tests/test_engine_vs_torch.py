"""The Vaswani preset against torch.nn.Transformer: same weights, same outputs and maps."""

import pytest
import torch
from torch import nn

from engine.presets import vaswani
from engine.transformer import Request, Transformer, init_weights

D, H, LAYERS, FF = 64, 4, 2, 128


def copy_attention(ours, theirs: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight,
                                               ours.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias,
                                             ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.o_proj.weight)
        theirs.out_proj.bias.copy_(ours.o_proj.bias)


def copy_norm(ours, theirs) -> None:
    theirs.load_state_dict(ours.state_dict())


def reference(model: Transformer) -> nn.Transformer:
    ref = nn.Transformer(D, H, LAYERS, LAYERS, FF, dropout=0.0, batch_first=True).eval()
    ref.encoder.norm = None  # the paper's post-LN stack has no final norm
    ref.decoder.norm = None
    for ours, theirs in zip(model.encoder.layers, ref.encoder.layers, strict=True):
        copy_attention(ours.self_attn, theirs.self_attn)
        copy_norm(ours.self_norm, theirs.norm1)
        copy_norm(ours.ffn_norm, theirs.norm2)
        theirs.linear1.load_state_dict(ours.ffn.up.state_dict())
        theirs.linear2.load_state_dict(ours.ffn.down.state_dict())
    for ours, theirs in zip(model.decoder.layers, ref.decoder.layers, strict=True):
        copy_attention(ours.self_attn, theirs.self_attn)
        copy_attention(ours.cross_attn, theirs.multihead_attn)
        copy_norm(ours.self_norm, theirs.norm1)
        copy_norm(ours.cross_norm, theirs.norm2)
        copy_norm(ours.ffn_norm, theirs.norm3)
        theirs.linear1.load_state_dict(ours.ffn.up.state_dict())
        theirs.linear2.load_state_dict(ours.ffn.down.state_dict())
    return ref


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    model = init_weights(Transformer(vaswani(100, D, H, LAYERS, FF)), seed=1).eval()
    return model, reference(model)


def test_outputs_match_nn_transformer(pair):
    model, ref = pair
    src, tgt = torch.randint(3, 100, (2, 9)), torch.randint(3, 100, (2, 6))
    with torch.no_grad():
        ours = model(src, target_ids=tgt)
        src_x, tgt_x = model.encoder.embed(src), model.decoder.embed(tgt)
        causal = nn.Transformer.generate_square_subsequent_mask(6)
        theirs = ref(src_x, tgt_x, tgt_mask=causal)
    assert torch.allclose(ours.hidden, theirs, atol=1e-5)
    assert torch.allclose(ours.encoder_hidden, ref.encoder(src_x), atol=1e-5)


def test_per_head_weights_match_multihead_attention(pair):
    model, ref = pair
    src, tgt = torch.randint(3, 100, (1, 7)), torch.randint(3, 100, (1, 5))
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    with torch.no_grad():
        rec = model(src, target_ids=tgt, req=Request(record=None)).record
        x = model.encoder.embed(src)
        for i, layer in enumerate(ref.encoder.layers):
            _, w = layer.self_attn(x, x, x, need_weights=True, average_attn_weights=False)
            assert torch.allclose(rec[f"encoder.self.{i}"].weights, w, atol=1e-5)
            x = layer(x)
        memory, y = x, model.decoder.embed(tgt)
        for i, layer in enumerate(ref.decoder.layers):
            _, w = layer.self_attn(y, y, y, attn_mask=causal, need_weights=True,
                                   average_attn_weights=False)
            assert torch.allclose(rec[f"decoder.self.{i}"].weights, w, atol=1e-5)
            h = layer.norm1(y + layer.self_attn(y, y, y, attn_mask=causal)[0])
            _, w = layer.multihead_attn(h, memory, memory, need_weights=True,
                                        average_attn_weights=False)
            assert torch.allclose(rec[f"decoder.cross.{i}"].weights, w, atol=1e-5)
            y = layer(y, memory, tgt_mask=causal)
