"""The fixed-shape (CUDA-graph) decode step equals the engine's own decoding.

On the CPU at tiny scale the step runs eagerly: its tokens equal `Transformer.generate` (cached
and uncached) and its logits the uncached forward pass, for MHA, GQA and MQA and a Gemma-like
block (q/k norms, post-norms, two RoPE bases, tied and scaled embeddings). The CUDA tests
(skipped without a GPU) check the captured graph and the split-keys Triton kernel.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from engine.core.config import ModelConfig, RopeScaling
from engine.core.norms import RMSNorm
from engine.core.positions import apply_rope, rope_cos_sin
from engine.core.transformer import Transformer, init_weights
from engine.decode.graph import GraphDecoder, decode_attention, default_splits
from engine.decode.greedy import generate
from tests.conftest import tiny

VARIANTS = {"MHA": 4, "GQA-2": 2, "MQA": 1}
GEMMA_LIKE = dict(positions="rope", norm="rmsnorm", norm_position="pre", final_norm=True,
                  post_attn_norm=True, post_ffn_norm=True, activation="geglu", qk_norm=True,
                  bias=False, tie_embeddings=True, embed_scale=32**0.5, n_kv_heads=1,
                  rope_base=(10_000.0, 1_000_000.0))
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def decoder(kv_heads: int, **kw) -> Transformer:
    """The benchmark's model family at tiny scale: pre-norm RMSNorm, RoPE, GeGLU, no biases."""
    base = dict(arch="decoder", vocab_size=61, d_model=32, n_heads=4, n_kv_heads=kv_heads,
                d_ff=64, n_decoder_layers=2, positions="rope", norm="rmsnorm",
                norm_position="pre", activation="geglu", bias=False, max_len=128)
    cfg = ModelConfig(**{**base, **kw})
    return init_weights(Transformer(cfg), seed=kv_heads).eval()


@pytest.mark.parametrize("variant,kv_heads", VARIANTS.items())
def test_tokens_equal_generate_cached_and_uncached(variant, kv_heads):
    m = decoder(kv_heads)
    assert m.cfg.variant == variant
    ids = torch.randint(3, 61, (3, 9), generator=torch.Generator().manual_seed(kv_heads))
    want = generate(m, ids, 10)
    assert torch.equal(want, generate(m, ids, 10, use_cache=False))
    dec = GraphDecoder(m, m.new_cache(9 + 10, batch=3))
    assert torch.equal(dec.generate(ids, 10, chunk=4), want)
    assert dec.cache.length == 9 + 9  # the last token is produced, not yet fed


@pytest.mark.parametrize("kv_heads", VARIANTS.values())
def test_each_step_logits_equal_the_uncached_forward(kv_heads):
    m = decoder(kv_heads, bias=True)  # biases ride along in the fused projections
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)  # init_weights zeroes them
    ids = torch.randint(3, 61, (2, 6), generator=torch.Generator().manual_seed(1))
    dec = GraphDecoder(m, m.new_cache(32, batch=2), splits=3)
    logits = dec.prefill(ids)
    seq = ids
    for _ in range(7):
        assert torch.allclose(logits, m(seq).logits[:, -1], atol=1e-5)
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
        assert torch.equal(dec.ids, seq[:, -1:])
        logits = dec.step()
    assert int(dec.pos) == seq.shape[1]


def test_gemma_like_block_and_continuing_eagerly_after():
    m = tiny("decoder", **GEMMA_LIKE)
    ids = torch.randint(3, 61, (2, 7), generator=torch.Generator().manual_seed(2))
    want = generate(m, ids, 12)
    cache = m.new_cache(7 + 12, batch=2)
    dec = GraphDecoder(m, cache)
    got = dec.generate(ids, 8)
    assert torch.equal(got, want[:, :8])
    # The cache is still the engine's: eager decoding continues where the graph stopped.
    nxt = got[:, -1:]
    for i in range(8, 12):
        nxt = m.extend(nxt, cache).argmax(-1, keepdim=True)
        assert torch.equal(nxt[:, 0], want[:, i])


def test_masked_decode_attention_equals_sdpa_on_the_prefix():
    torch.manual_seed(3)
    q = torch.randn(2, 2, 3, 8)  # [B, Hkv, G, D]
    k, v = torch.randn(2, 2, 20, 8), torch.randn(2, 2, 20, 8)
    want = F.scaled_dot_product_attention(q, k[:, :, :13], v[:, :, :13], scale=0.4)
    got = decode_attention(q, k, v, torch.tensor([13]), 0.4)
    assert torch.allclose(got, want, atol=1e-6)


def test_fewer_kernel_rope_and_norm_are_the_same_functions():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 5, 16)
    cos, sin = rope_cos_sin(torch.arange(5), 16, 10_000.0)
    rotated = torch.cat([-x[..., 8:], x[..., :8]], dim=-1)  # the rotate-half definition
    assert torch.allclose(apply_rope(x, cos, sin), x * cos + rotated * sin, atol=1e-6)
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    want = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    assert torch.allclose(norm(x), want, atol=1e-6)
    norm_b, xb = copy.deepcopy(norm).to(torch.bfloat16), x.bfloat16()
    x32, w32 = xb.float(), norm_b.weight.float()  # bf16 in, float32 inside, one rounding out
    want_b = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6) * w32).bfloat16()
    assert torch.equal(norm_b(xb), want_b)


@pytest.mark.parametrize("kw", [
    dict(positions="alibi"), dict(positions="rope", window=3),
    dict(positions="rope", rope_scaling=RopeScaling("linear", 2.0)),
    dict(positions="rope", attn_softcap=50.0), dict(logits_softcap=30.0),
    dict(logits_bias=True),
], ids=["alibi", "window", "rope-scaling", "attn-softcap", "logits-softcap", "logits-bias"])
def test_unsupported_models_are_refused(kw):
    with pytest.raises(ValueError, match="graph decoding"):
        GraphDecoder(tiny("decoder", **kw), tiny("decoder").new_cache(8, batch=1))


def test_capacity_is_enforced_and_cache_must_be_allocated():
    m = decoder(2)
    with pytest.raises(ValueError, match="allocated"):
        GraphDecoder(m, m.new_cache(8))
    dec = GraphDecoder(m, m.new_cache(8, batch=1))
    dec.prefill(torch.randint(3, 61, (1, 6)))
    with pytest.raises(ValueError, match="capacity"):
        dec.decode(3)


# -- CUDA ---------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("kv_heads", VARIANTS.values())
def test_cuda_graph_replay_equals_cpu_generate(kv_heads):
    m = decoder(kv_heads, d_model=64)  # head dimension 16: the split-keys kernels run
    ids = torch.randint(3, 61, (3, 9), generator=torch.Generator().manual_seed(5))
    want = generate(m, ids, 14)
    g = copy.deepcopy(m).cuda()
    dec = GraphDecoder(g, g.new_cache(9 + 14, batch=3))
    first = dec.prefill(ids.cuda()).argmax(-1, keepdim=True)
    dec.capture()
    got = torch.cat([first, dec.decode(13)], dim=1).cpu()
    assert torch.equal(got, want)
    # The graph's last logits equal the CPU's uncached forward for the same sequence.
    seq = torch.cat([ids, want[:, :-1]], dim=1)
    assert torch.allclose(dec.logits.cpu(), m(seq).logits[:, -1], rtol=1e-4, atol=1e-5)


@needs_cuda
@pytest.mark.gpu
def test_cuda_generate_with_graph_equals_cpu_generate():
    """`generate(graph=True)` on CUDA captures and replays the step; EOS handling included."""
    m = decoder(2, d_model=64)
    ids = torch.randint(3, 61, (3, 9), generator=torch.Generator().manual_seed(6))
    want = generate(m, ids, 12)
    g = copy.deepcopy(m).cuda()
    assert torch.equal(generate(g, ids.cuda(), 12, graph=True).cpu(), want)
    eos = int(want[1, 4])
    assert torch.equal(generate(g, ids.cuda(), 12, eos_id=eos, graph=True).cpu(),
                       generate(m, ids, 12, eos_id=eos))


@needs_cuda
@pytest.mark.gpu
def test_cuda_graph_of_a_gemma_like_block_equals_cpu_generate():
    """Head dimension 8 (too narrow for the kernels' tiles): the masked SDPA path, in a graph."""
    m = tiny("decoder", **GEMMA_LIKE)
    ids = torch.randint(3, 61, (2, 7), generator=torch.Generator().manual_seed(7))
    g = copy.deepcopy(m).cuda()
    assert torch.equal(generate(g, ids.cuda(), 10, graph=True).cpu(), generate(m, ids, 10))


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("b,h_kv,g", [(1, 1, 32), (3, 8, 4), (2, 32, 1), (5, 2, 3)])
@pytest.mark.parametrize("n", [1, 77, 1000])
def test_split_keys_kernel_equals_sdpa_on_the_prefix(b, h_kv, g, n):
    torch.manual_seed(6)
    d, cap = 128, 1031
    kw = dict(device="cuda", dtype=torch.bfloat16)
    q = torch.randn(b, h_kv, g, d, **kw)
    k, v = torch.randn(b, h_kv, cap, d, **kw), torch.randn(b, h_kv, cap, d, **kw)
    k[:, :, n:] = float("nan")  # keys past the valid ones must not be read into the result
    want = F.scaled_dot_product_attention(q.float(), k[:, :, :n].float(), v[:, :, :n].float())
    for splits in (1, 7, default_splits(b * h_kv, q.device)):
        got = decode_attention(q, k, v, torch.tensor([n], device="cuda"), d**-0.5, splits)
        assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
        err = (got.float() - want).norm() / want.norm()
        assert err < 1e-2, (splits, float(err))


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_norm_and_rope_cache_kernels_equal_the_pytorch_path(dtype):
    from engine.decode import triton_kernels as triton_decode

    torch.manual_seed(8)
    kw = dict(device="cuda", dtype=dtype)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    norm = RMSNorm(4096, eps=1e-6).to(**kw)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 1, 4096, **kw)
    assert torch.allclose(triton_decode.rms_norm(x, norm.weight, norm.eps), norm(x), **tol)

    b, h, h_kv, d, cap = 3, 8, 2, 128, 50
    qkv = torch.randn(b, h + 2 * h_kv, d, **kw)
    cos, sin = (t.to(**kw) for t in rope_cos_sin(torch.arange(cap), d, 10_000.0))
    pos = torch.tensor([17], device="cuda")
    k_cache, v_cache = torch.zeros(b, h_kv, cap, d, **kw), torch.zeros(b, h_kv, cap, d, **kw)
    q = triton_decode.rope_and_cache(qkv, torch.stack([cos, sin], 1), pos, k_cache, v_cache, h)
    qk = apply_rope(qkv[:, : h + h_kv], cos[17:18], sin[17:18])
    assert torch.allclose(q, qk[:, :h], **tol)
    assert torch.allclose(k_cache[:, :, 17], qk[:, h:], **tol)
    assert torch.equal(v_cache[:, :, 17], qkv[:, h + h_kv :])
    assert not k_cache[:, :, :17].any() and not v_cache[:, :, 18:].any()  # only slot 17


@pytest.mark.parametrize("variant,kv_heads", VARIANTS.items())
def test_generate_with_graph_equals_generate_eos_included(variant, kv_heads):
    """`Transformer.generate(..., graph=True)` is the same greedy decoding: the same ids, and
    with an EOS, the same padding after it and the same early stop."""
    m = decoder(kv_heads)
    ids = torch.randint(3, 61, (2, 9), generator=torch.Generator().manual_seed(kv_heads))
    plain = generate(m, ids, 8)
    assert torch.equal(generate(m, ids, 8, graph=True), plain)
    eos = int(plain[0, 2])  # an id the first row produces at step 2
    with_eos = generate(m, ids, 8, eos_id=eos)
    assert torch.equal(generate(m, ids, 8, eos_id=eos, graph=True), with_eos)
    assert (with_eos[0, 3:] == m.cfg.pad_id).all()


def test_generate_with_graph_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="graph decoding"):
        generate(decoder(4), torch.ones(1, 3, dtype=torch.long), 2, graph=True, use_cache=False)
    with pytest.raises(ValueError, match="decoder-only"):
        generate(tiny("encoder-decoder"), torch.ones(1, 3, dtype=torch.long), 2, graph=True)
