"""The Vaswani preset against torch.nn.Transformer: same weights, same outputs and maps."""

import pytest
import torch
from torch import nn

from engine.core.transformer import Request, Transformer, init_weights
from engine.models.vaswani import vaswani
from tests.torch_oracle import nn_transformer_like

D, H, LAYERS, FF = 64, 4, 2, 128


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    model = init_weights(Transformer(vaswani(100, D, H, LAYERS, FF)), seed=1).eval()
    return model, nn_transformer_like(model)


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
