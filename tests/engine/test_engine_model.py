"""The whole model: padding invariance, equivariance, variants, caching, config checks."""

import pytest
import torch
from torch import nn

from engine.core.config import ModelConfig
from engine.core.transformer import Request
from engine.decode.greedy import generate
from engine.variants import convert_kv_heads
from tests.conftest import tiny

GEMMA_LIKE = dict(positions="rope", norm="rmsnorm", norm_position="pre", final_norm=True,
                  post_attn_norm=True, post_ffn_norm=True, activation="geglu", qk_norm=True,
                  bias=False, tie_embeddings=True, embed_scale=32**0.5,
                  rope_base=(10_000.0, 1_000_000.0), window=(3, None))
BERT_LIKE = dict(positions="learned", norm_position="post", embed_norm=True, activation="gelu",
                 type_vocab_size=2)


def all_maps(out):
    return {k: v.weights for k, v in out.record.items()}


@pytest.mark.parametrize("arch,kw", [("encoder", BERT_LIKE), ("decoder", GEMMA_LIKE),
                                     ("encoder", dict(positions="alibi"))])
def test_padding_does_not_change_real_tokens(arch, kw):
    m = tiny(arch, **kw)
    short = torch.tensor([[5, 9, 11, 4]])
    padded = torch.tensor([[5, 9, 11, 4, 0, 0, 0], [7, 8, 9, 10, 11, 12, 13]])
    real = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    alone = m(short, req=Request(record=None))
    batch = m(padded, real, req=Request(record=None))
    assert torch.allclose(alone.hidden[0], batch.hidden[0, :4], atol=1e-5)
    for key, w in all_maps(alone).items():
        assert torch.allclose(w[0], batch.record[key].weights[0, :, :4, :4], atol=1e-6)
        assert (batch.record[key].weights[0, :, :, 4:] == 0).all()  # pads get exactly 0


def test_encoder_without_positions_is_permutation_equivariant():
    m = tiny("encoder", positions="none")
    ids = torch.tensor([[5, 9, 11, 4, 20]])
    perm = torch.tensor([3, 0, 4, 1, 2])
    a = m(ids, req=Request(record=None))
    b = m(ids[:, perm], req=Request(record=None))
    assert torch.allclose(a.hidden[:, perm], b.hidden, atol=1e-5)
    wa, wb = a.record["encoder.self.1"].weights, b.record["encoder.self.1"].weights
    assert torch.allclose(wa[:, :, perm][:, :, :, perm], wb, atol=1e-6)


@pytest.mark.parametrize("arch,kw", [("encoder-decoder", {}), ("decoder", GEMMA_LIKE),
                                     ("decoder", dict(positions="alibi", n_kv_heads=2))])
def test_fused_and_weights_paths_give_the_same_outputs(arch, kw):
    m = tiny(arch, **kw)
    ids = torch.randint(3, 61, (2, 9))
    tgt = torch.randint(3, 61, (2, 5)) if arch == "encoder-decoder" else None
    fused = m(ids, target_ids=tgt, req=Request(record=()))
    explicit = m(ids, target_ids=tgt, req=Request(record=None))
    assert not fused.record and explicit.record
    assert torch.allclose(fused.hidden, explicit.hidden, atol=1e-5)


def test_only_requested_layers_are_recorded():
    m = tiny("encoder-decoder")
    ids, tgt = torch.randint(3, 61, (1, 6)), torch.randint(3, 61, (1, 4))
    out = m(ids, target_ids=tgt, req=Request(record=["decoder.cross.1"]))
    assert list(out.record) == ["decoder.cross.1"]
    assert out.record["decoder.cross.1"].weights.shape == (1, 4, 4, 6)


def test_kv_heads_equal_to_heads_reproduces_the_model_exactly():
    m = tiny("encoder", **BERT_LIKE)
    same = convert_kv_heads(m, 4)
    ids = torch.randint(3, 61, (1, 7))
    assert torch.equal(m(ids).hidden, same(ids).hidden)


def test_expanding_mqa_to_mha_by_copying_reproduces_it():
    m = tiny("decoder", n_kv_heads=1, **GEMMA_LIKE)
    mha = convert_kv_heads(m, 4)
    assert mha.cfg.kv_heads == 4
    ids = torch.randint(3, 61, (1, 8))
    a, b = m(ids, req=Request(record=None)), mha(ids, req=Request(record=None))
    assert torch.allclose(a.logits, b.logits, atol=1e-5)
    for key in a.record:
        assert torch.allclose(a.record[key].weights, b.record[key].weights, atol=1e-6)


def test_mean_pooling_groups_changes_kv_width_and_keeps_queries():
    m = tiny("encoder", **BERT_LIKE)
    g2 = convert_kv_heads(m, 2)
    assert g2.encoder.layers[0].self_attn.k_proj.weight.shape == (2 * 8, 32)
    assert torch.equal(g2.encoder.layers[0].self_attn.q_proj.weight,
                       m.encoder.layers[0].self_attn.q_proj.weight)
    k = m.encoder.layers[0].self_attn.k_proj.weight.view(4, 8, 32)
    want = k.view(2, 2, 8, 32).mean(1).reshape(16, 32)
    assert torch.allclose(g2.encoder.layers[0].self_attn.k_proj.weight, want)
    with pytest.raises(ValueError, match="kv_heads must be one of"):
        convert_kv_heads(m, 3)


@pytest.mark.parametrize("arch,kw", [("decoder", GEMMA_LIKE), ("decoder", dict(n_kv_heads=2)),
                                     ("encoder-decoder", dict(n_kv_heads=1)),
                                     ("decoder", dict(positions="alibi"))])
def test_cached_and_uncached_decoding_agree(arch, kw):
    m = tiny(arch, **kw)
    ids = torch.randint(3, 61, (1, 6))
    assert torch.equal(generate(m, ids, 10, use_cache=True), generate(m, ids, 10, use_cache=False))


def test_kv_cache_holds_kv_heads_and_matches_the_formula():
    for kv in (4, 2, 1):
        m = tiny("decoder", n_kv_heads=kv)
        cache = m.new_cache(capacity=32)
        m.decode(torch.randint(3, 61, (1, 5)), cache=cache)
        assert cache.self_attn[0].k.shape[1] == kv
        assert cache.bytes_used == m.cfg.kv_cache_bytes_per_token(4) * 5


def test_cached_step_weights_equal_the_full_map_rows():
    m = tiny("decoder", **GEMMA_LIKE)
    ids = torch.randint(3, 61, (1, 7))
    full = m(ids, req=Request(record=None)).record
    cache = m.new_cache()
    m.decode(ids[:, :6], cache=cache)
    rows = {}
    m.decode(ids[:, 6:], cache=cache, req=Request(record=None), record=rows)
    for key, rec in rows.items():
        assert torch.allclose(rec.weights[0, :, 0], full[key].weights[0, :, 6], atol=1e-6)


@pytest.mark.parametrize("bad,match", [
    (dict(n_kv_heads=3), "must divide"),
    (dict(d_model=30), "not divisible"),
    (dict(activation="swish"), "activation"),
    (dict(positions="rope", d_head=7), "even"),
    (dict(window=(2, 3, 4)), "entries"),
    (dict(n_decoder_layers=0), "decoder needs"),
    (dict(window=0), "window"),
])
def test_invalid_configs_say_what_to_change(bad, match):
    base = dict(arch="decoder", vocab_size=10, d_model=32, n_heads=4, d_ff=8, n_decoder_layers=2)
    base.update(bad)
    with pytest.raises(ValueError, match=match):
        ModelConfig(**base)


@pytest.mark.parametrize("kw", [{}, dict(knockout=[4, 17]), dict(window=5)])
def test_local_window_blocks_equal_the_dense_path(kw):
    """Long prefills of sliding layers run in query blocks (O(T·w)); they must equal the
    explicit path, padding and knock-outs included."""
    m = tiny("decoder", positions="rope", window=(3, None), n_kv_heads=2, max_len=256)
    ids = torch.randint(3, 61, (2, 50))
    real = torch.ones(2, 50, dtype=torch.bool)
    real[1, 40:] = False
    fused = m(ids, real, req=Request(record=(), **kw))
    explicit = m(ids, real, req=Request(record=None, **kw))
    assert torch.allclose(fused.hidden[0], explicit.hidden[0], atol=1e-5)
    assert torch.allclose(fused.hidden[1, :40], explicit.hidden[1, :40], atol=1e-5)


def test_long_recorded_maps_run_in_blocks_and_equal_the_fused_outputs():
    """Past QUERY_BLOCK queries, recorded causal/windowed maps are built block by block; the
    block output must equal the fused path's, and the maps stay exact distributions."""
    from engine.fast.blocked import QUERY_BLOCK

    t = QUERY_BLOCK + 72
    m = tiny("decoder", positions="rope", window=(9, None), n_kv_heads=2, max_len=t)
    ids = torch.randint(3, 61, (2, t))
    real = torch.ones(2, t, dtype=torch.bool)
    real[1, t - 30:] = False
    fused = m(ids, real, req=Request(record=(), knockout=[3]))
    explicit = m(ids, real, req=Request(record=None, scores=True, knockout=[3]))
    assert torch.allclose(fused.hidden[0], explicit.hidden[0], atol=1e-5)
    assert torch.allclose(fused.hidden[1, : t - 30], explicit.hidden[1, : t - 30], atol=1e-5)
    for rec in explicit.record.values():
        rows, masked = rec.weights.sum(-1), torch.isinf(rec.scores)
        has_key = ~masked.all(-1)  # padded queries whose window holds only padding see nothing
        assert torch.allclose(rows[has_key], torch.ones_like(rows[has_key]), atol=1e-5)
        assert (rows[~has_key] == 0).all()
        assert (rec.weights[masked] == 0).all()
        assert (rec.weights[..., 3] == 0).all()  # the knocked-out key
    assert torch.isinf(explicit.record["decoder.self.0"].scores[1]).all(-1).any()
    seen = (explicit.record["decoder.self.0"].weights[0, 0] > 0).sum(-1)
    expected = [min(i + 1, 9) - (i - 9 < 3 <= i) for i in range(t)]  # key 3 is knocked out
    assert seen.tolist() == expected


@pytest.mark.parametrize("arch,key,stack", [
    ("encoder", "encoder.self.0", "encoder"),
    ("decoder", "decoder.self.0", "decoder"),
    ("encoder-decoder", "encoder.self.0", "encoder"),
    ("encoder-decoder", "decoder.cross.0", "decoder"),
])
def test_maps_only_stops_after_the_deepest_recorded_layer(arch, key, stack):
    """Attention in layer L depends on the layers below it alone: `maps_only` returns the
    same map without running any later layer (nor the decoder, for encoder maps)."""
    m = tiny(arch)
    ids, tgt = torch.randint(3, 61, (1, 7)), torch.randint(3, 61, (1, 5))
    kw = dict(target_ids=tgt) if arch == "encoder-decoder" else {}
    ran: list[str] = []
    for name in ("encoder", "decoder"):
        stack_mod = getattr(m, name)
        for i, layer in enumerate([] if stack_mod is None else stack_mod.layers):
            layer.register_forward_hook(lambda *_, n=f"{name}.{i}": ran.append(n))
    whole = m(ids, req=Request(record=[key]), **kw)
    everything = list(ran)
    ran.clear()
    short = m(ids, req=Request(record=[key], maps_only=True), **kw)
    assert torch.equal(short.record[key].weights, whole.record[key].weights)
    assert short.logits is None
    expected = ["encoder.0", "encoder.1", "decoder.0"] if key == "decoder.cross.0" else [
        f"{stack}.0"]
    assert ran == expected and len(everything) > len(expected)


def test_packed_projections_follow_weight_changes_and_keep_gradients():
    """q|k|v in one product equal the three products; a load or a dtype change rebuilds the
    concatenation (no stale weights); under autograd and on the CPU each linear runs itself."""
    from engine.fast.packed import PackedLinears

    torch.manual_seed(0)
    lins = [nn.Linear(8, 6), nn.Linear(8, 2), nn.Linear(8, 2)]
    packed, x = PackedLinears(), torch.randn(3, 8)

    def one_product(x):
        out = torch.nn.functional.linear(x, *packed.get(lins))
        return out.split([6, 2, 2], dim=-1)

    with torch.no_grad():
        for got, lin in zip(one_product(x), lins, strict=True):
            torch.testing.assert_close(got, lin(x))
        lins[1].load_state_dict({"weight": torch.ones(2, 8), "bias": torch.zeros(2)})
        torch.testing.assert_close(one_product(x)[1], x.sum(-1, keepdim=True).expand(3, 2))
        for lin in lins:
            lin.double()
        assert one_product(x.double())[0].dtype == torch.float64
        assert torch.equal(packed(x.double(), lins)[0], lins[0](x.double()))  # CPU: as is
    out = packed(x.double(), lins)[2].sum()
    out.backward()
    assert lins[2].weight.grad is not None and lins[0].weight.grad is None
    with torch.inference_mode():  # weights without a version counter are never packed
        made_here = [nn.Linear(8, 2), nn.Linear(8, 2)]
    from engine.fast.packed import packable

    assert packable(lins) and not packable(made_here)
