"""The engine on CUDA equals the engine on the CPU: forward, attention maps, attend, generate.

Run on a GPU machine: `python -m pytest -q -m gpu tests/engine/test_gpu.py`. Without CUDA every test
is skipped. Float32 on both sides (TF32 off, PyTorch's default for matmuls), so the two agree
to rounding; the bf16 test checks which attention kernel runs, not digits.
"""

import copy

import pytest
import torch

from engine.core.transformer import Request
from engine.decode.greedy import generate
from tests.conftest import tiny

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

GEMMA_LIKE = dict(positions="rope", norm="rmsnorm", norm_position="pre", final_norm=True,
                  post_attn_norm=True, post_ffn_norm=True, activation="geglu", qk_norm=True,
                  bias=False, tie_embeddings=True, embed_scale=32**0.5, n_kv_heads=1,
                  rope_base=(10_000.0, 1_000_000.0), window=(3, None))
BERT_LIKE = dict(positions="learned", norm_position="post", embed_norm=True, activation="gelu",
                 type_vocab_size=2)
CASES = [
    ("encoder", BERT_LIKE),
    ("encoder", dict(positions="alibi", n_kv_heads=2)),
    ("decoder", GEMMA_LIKE),
    ("decoder", dict(positions="rope", n_kv_heads=2, norm="rmsnorm", norm_position="pre")),
    ("decoder", dict(positions="alibi")),
    ("encoder-decoder", dict(n_kv_heads=2)),
]
TOL = dict(rtol=1e-4, atol=1e-5)


def on_cuda(model):
    return copy.deepcopy(model).cuda()


def run(model, arch, ids, tgt, real, req):
    if arch == "encoder-decoder":
        return model(ids, real, tgt, req=req)
    return model(ids, real, req=req)


@pytest.mark.parametrize("arch,kw", CASES)
@pytest.mark.parametrize("record", [None, ()], ids=["maps", "fused"])
def test_forward_and_maps_on_cuda_equal_cpu(arch, kw, record):
    torch.manual_seed(0)
    m = tiny(arch, **kw)
    ids, tgt = torch.randint(3, 61, (2, 9)), torch.randint(3, 61, (2, 6))
    real = torch.ones(2, 9, dtype=torch.bool)
    real[1, 6:] = False  # a padded row
    if arch == "decoder":
        real = None  # decoder-only batches here are unpadded
    req = Request(record=record, scores=record is None, qk=record is None)
    cpu = run(m, arch, ids, tgt, real, req)
    gpu = run(on_cuda(m), arch, ids.cuda(), tgt.cuda(), None if real is None else real.cuda(),
              req)
    assert torch.allclose(gpu.hidden.cpu(), cpu.hidden, **TOL)
    if cpu.logits is not None:
        assert torch.allclose(gpu.logits.cpu(), cpu.logits, **TOL)
    assert cpu.record.keys() == gpu.record.keys()
    for key, rec in cpu.record.items():
        assert torch.allclose(gpu.record[key].weights.cpu(), rec.weights, **TOL), key
        finite = rec.scores.isfinite()
        assert torch.equal(gpu.record[key].scores.cpu().isfinite(), finite), key
        assert torch.allclose(gpu.record[key].scores.cpu()[finite], rec.scores[finite], **TOL)
        assert torch.allclose(gpu.record[key].q.cpu(), rec.q, **TOL)


@pytest.mark.parametrize("arch,kw", CASES)
def test_packed_projections_on_cuda_equal_cpu(arch, kw):
    """Without autograd, CUDA runs q|k|v (k|v for cross-attention) and gate|up as one product
    each (engine/fast/packed.py); a model whose weights were made under inference mode (no version
    counter to notice changes) runs them one by one. Both equal the CPU."""
    torch.manual_seed(0)
    m = tiny(arch, **kw)
    ids, tgt = torch.randint(3, 61, (2, 9)), torch.randint(3, 61, (2, 6))
    req = Request(record=None)
    with torch.no_grad():
        cpu = run(m, arch, ids, tgt, None, req)
        gpu = run(on_cuda(m), arch, ids.cuda(), tgt.cuda(), None, req)
    with torch.inference_mode():
        made_here = on_cuda(m)
        inference = run(made_here, arch, ids.cuda(), tgt.cuda(), None, req)
    assert all(p.is_inference() for p in made_here.parameters())
    for out in (gpu, inference):
        assert torch.allclose(out.hidden.cpu(), cpu.hidden, **TOL)
        for key, rec in cpu.record.items():
            assert torch.allclose(out.record[key].weights.cpu(), rec.weights, **TOL), key


@pytest.mark.parametrize("arch,kw", [c for c in CASES if c[0] != "encoder"])
def test_generate_on_cuda_equals_cpu(arch, kw):
    torch.manual_seed(1)
    m = tiny(arch, **kw)
    ids = torch.randint(3, 61, (3, 7))
    want = generate(m, ids, 12)
    g = on_cuda(m)
    assert torch.equal(generate(g, ids.cuda(), 12).cpu(), want)
    assert torch.equal(generate(g, ids.cuda(), 12, use_cache=False).cpu(), want)
    if arch == "decoder":  # a prompt fed in chunks, into a preallocated cache
        cache = g.new_cache(ids.shape[1] + 12, batch=3)
        assert torch.equal(generate(g, ids.cuda(), 12, cache=cache, prefill_chunk=3).cpu(), want)


def test_attend_on_cuda_equals_cpu():
    import engine

    text = "the animal did not cross the street because it was too tired"
    cpu = engine.load("transformer-base", device="cpu").attend(text, target="it was tired")
    gpu_model = engine.load("transformer-base", device="cuda")
    assert gpu_model.device.type == "cuda"
    gpu = gpu_model.attend(text, target="it was tired")
    assert gpu.keys() == cpu.keys()
    for key in cpu.keys():
        assert gpu[key].dtype == cpu[key].dtype
        assert abs(gpu[key] - cpu[key]).max() < 1e-4, key


def attention_ops(fn) -> set[str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return {e.key for e in prof.key_averages()}


@pytest.mark.parametrize("kv_heads", [8, 2, 1])
def test_bf16_fused_path_runs_flash_and_never_widens_kv(kv_heads):
    """Prefill, a prefill chunk after a cache, and a decode step run PyTorch's flash kernel,
    which takes the Hkv K/V heads as they are: no repeat_interleave to H heads, no math
    fallback, and no cuDNN attention (it builds a plan for every new key length)."""
    torch.manual_seed(2)
    m = tiny("decoder", d_model=512, n_heads=8, n_kv_heads=kv_heads, d_ff=256, vocab_size=61,
             positions="rope", norm="rmsnorm", norm_position="pre", bias=False, max_len=512)
    g = on_cuda(m).to(torch.bfloat16)
    ids = torch.randint(3, 61, (2, 96))
    cache = g.new_cache(128, batch=2)
    out = {}
    for name, part in {"prefill": ids[:, :64], "chunk": ids[:, 64:95],
                       "step": ids[:, 95:]}.items():
        ops = attention_ops(lambda part=part: out.update(logits=g.extend(part.cuda(), cache)))
        assert "aten::_scaled_dot_product_flash_attention" in ops, (name, sorted(ops))
        for bad in ("repeat_interleave", "_math", "cudnn_attention"):
            assert not any(bad in o for o in ops), (name, bad, sorted(ops))
    want = m(ids).logits[:, -1]
    err = (out["logits"].float().cpu() - want).norm() / want.norm()
    assert err < 3e-2  # bf16 weights and activations against float32


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_bf16_decode_step_of_a_large_batch_runs_flash_in_chunks(kv_heads):
    """Past flash's split-keys limit a decode step is fed to flash a few sequences at a time;
    the result equals the float32 CPU model's within bf16 rounding."""
    from engine.fast.sdpa import flash_split_blocks

    torch.manual_seed(4)
    batch = flash_split_blocks(torch.device("cuda")) // kv_heads * 2 + 1  # three calls
    m = tiny("decoder", d_model=256, n_heads=4, n_kv_heads=kv_heads, d_ff=128, positions="rope",
             norm="rmsnorm", norm_position="pre", bias=False, max_len=128)
    ids = torch.randint(3, 61, (batch, 24))
    g = on_cuda(m).to(torch.bfloat16)
    cache = g.new_cache(32, batch=batch)
    g.extend(ids[:, :23].cuda(), cache)
    out = {}
    ops = attention_ops(lambda: out.update(logits=g.extend(ids[:, 23:].cuda(), cache)))
    assert "aten::_scaled_dot_product_flash_attention" in ops, sorted(ops)
    assert not any("repeat_interleave" in o or "cudnn_attention" in o for o in ops)
    want = m(ids).logits[:, -1]
    err = (out["logits"].float().cpu() - want).norm() / want.norm()
    assert err < 3e-2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_masked_gqa_groups_queries_instead_of_widening_kv(dtype):
    """A sliding window (a mask tensor) under MQA: memory-efficient attention on grouped
    queries, no repeat_interleave of K/V, same result as the CPU."""
    torch.manual_seed(3)
    m = tiny("decoder", d_model=256, n_heads=4, n_kv_heads=1, d_ff=128, positions="rope",
             window=(5, 5), norm="rmsnorm", norm_position="pre", bias=False, max_len=128)
    ids = torch.randint(3, 61, (2, 40))
    g = on_cuda(m).to(dtype)
    out = {}
    ops = attention_ops(lambda: out.update(logits=g(ids.cuda()).logits))
    assert "aten::_scaled_dot_product_efficient_attention" in ops, sorted(ops)
    assert not any("repeat_interleave" in o for o in ops), sorted(ops)
    want = m(ids).logits
    err = (out["logits"].float().cpu() - want).norm() / want.norm()
    assert err < (1e-5 if dtype == torch.float32 else 3e-2)
