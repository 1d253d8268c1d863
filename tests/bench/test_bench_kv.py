"""The KV-cache benchmark's claims at tiny scale on the CPU: the cache holds exactly the formula's
bytes for MHA, GQA and MQA; cached, chunked and batched decoding equal uncached decoding; and
the benchmark (eager and graph-decode paths) and its plots run end to end (no timing asserted)."""

import json

import pytest
import torch
import torch.nn.functional as F

from bench import bench_kv
from engine.core.config import ModelConfig
from engine.core.transformer import Transformer, init_weights
from engine.decode.greedy import generate
from engine.fast.sdpa import group_mask

VARIANTS = {"MHA": 4, "GQA-2": 2, "MQA": 1}


def decoder(kv_heads: int, **kw) -> Transformer:
    cfg = ModelConfig(arch="decoder", vocab_size=61, d_model=32, n_heads=4, n_kv_heads=kv_heads,
                      d_ff=64, n_decoder_layers=2, positions="rope", norm="rmsnorm",
                      norm_position="pre", bias=False, max_len=128, **kw)
    return init_weights(Transformer(cfg), seed=kv_heads).eval()


@pytest.mark.parametrize("variant,kv_heads", VARIANTS.items())
def test_kv_cache_bytes_equal_the_formula(variant, kv_heads):
    m = decoder(kv_heads)
    assert m.cfg.variant == variant
    batch, capacity = 3, 20
    cache = m.new_cache(capacity, batch=batch)  # allocated now, before any token
    formula = 2 * m.cfg.n_decoder_layers * kv_heads * m.cfg.head_dim * 4 * capacity * batch
    assert bench_kv.storage_bytes(cache) == formula == cache.bytes_allocated
    assert bench_kv.kv_formula(m.cfg, 4, capacity, batch) == formula
    generate(m, torch.randint(3, 61, (batch, 12)), 9, cache=cache)  # feeds 12 + 8 tokens
    assert cache.length == capacity and cache.capacity == capacity  # it never grew
    assert bench_kv.storage_bytes(cache) == formula
    assert cache.bytes_used == m.cfg.kv_cache_bytes_per_token(4) * capacity * batch
    assert all(c.k.shape[1] == kv_heads for c in cache.self_attn)  # Hkv heads, not H


@pytest.mark.parametrize("kv_heads", VARIANTS.values())
def test_cached_chunked_and_batched_decoding_equal_uncached(kv_heads):
    m = decoder(kv_heads)
    ids = torch.randint(3, 61, (3, 11))
    uncached = generate(m, ids, 8, use_cache=False)
    assert torch.equal(generate(m, ids, 8), uncached)
    cache = m.new_cache(11 + 8, batch=3)
    assert torch.equal(generate(m, ids, 8, cache=cache, prefill_chunk=4), uncached)
    one_by_one = torch.cat([generate(m, ids[i : i + 1], 8) for i in range(3)])
    assert torch.equal(one_by_one, uncached)
    # Chunked prefill computes the same logits as one pass.
    full = m(ids).logits[:, -1]
    chunked = m.extend(ids, m.new_cache(16), chunk=3)
    assert torch.allclose(chunked, full, atol=1e-5)


def test_batched_generate_stops_rows_at_eos_with_padding():
    m = decoder(2)
    ids = torch.randint(3, 61, (3, 6), generator=torch.Generator().manual_seed(5))
    free = generate(m, ids, 6)  # no EOS: every row runs 6 tokens
    eos = int(free[0, -1])  # a token row 0 makes (first, maybe, earlier than its last)
    out = generate(m, ids, 6, eos_id=eos)
    ends = []
    for row in free:  # each row: its own tokens up to its first EOS, then pad_id
        hit = (row == eos).nonzero()
        ends.append(int(hit[0]) + 1 if len(hit) else len(row))
    assert out.shape[1] == max(ends)  # stops once every row has produced EOS
    for row, end in enumerate(ends):
        assert torch.equal(out[row, :end], free[row, :end])
        assert (out[row, end:] == m.cfg.pad_id).all()


@pytest.mark.parametrize("shape", ["causal", "padding", "per_head", "window_2d"])
def test_grouped_queries_equal_enable_gqa(shape):
    """The CUDA fused path's query grouping (q → [B, Hkv, G·Tq, D], mask regrouped) is the
    same function as SDPA's enable_gqa; checked here on the CPU."""
    torch.manual_seed(0)
    b, h, h_kv, t_q, t_k, d = 2, 8, 2, 5, 9, 16
    q, k, v = torch.randn(b, h, t_q, d), torch.randn(b, h_kv, t_k, d), torch.randn(b, h_kv, t_k, d)
    mask = {
        "causal": torch.ones(t_q, t_k, dtype=torch.bool).tril(t_k - t_q)[None, None],
        "padding": torch.tensor([[True] * 7 + [False] * 2, [True] * 9])[:, None, None, :],
        "per_head": torch.randn(1, h, t_q, t_k),
        "window_2d": torch.ones(t_q, t_k, dtype=torch.bool).tril(4).triu(2),
    }[shape]
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    g = h // h_kv
    got = F.scaled_dot_product_attention(q.reshape(b, h_kv, g * t_q, d), k, v,
                                         attn_mask=group_mask(mask, h_kv, g, t_q))
    assert torch.allclose(got.view(b, h, t_q, d), want, atol=1e-6)


def test_decode_step_in_batch_chunks_equals_one_call(monkeypatch):
    """The CUDA decode step feeds flash a few sequences per call (to keep it splitting the
    keys); the chunks together are the same function as one call. Checked on the CPU."""
    from engine.fast import sdpa as A

    monkeypatch.setattr(A, "flash_split_blocks", lambda device: 5)
    torch.manual_seed(1)
    for h_kv in (8, 2, 1):  # per call: 1, 2 and 5 sequences of the 7
        q = torch.randn(7, 8, 1, 16)
        k, v = torch.randn(7, h_kv, 40, 16)[:, :, :33], torch.randn(7, h_kv, 40, 16)[:, :, :33]
        want = F.scaled_dot_product_attention(q, k, v, scale=0.3, enable_gqa=True)
        assert torch.allclose(A.decode_step(q, k, v, 0.3), want, atol=1e-6)


def test_benchmark_and_plots_run_end_to_end(tmp_path):
    result = bench_kv.main(["--scale", "tiny", "--device", "cpu", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "kv_cpu.json").read_text())
    assert saved["meta"]["device_name"] and saved["meta"]["torch"] == torch.__version__
    points = saved["points"]
    assert {p["variant"] for p in points} == {"MHA", "GQA-2", "MQA"}
    assert all(p["status"] == "ok" and p["kv_agree"] for p in points)
    assert all(p["kv_bytes_allocator"] == p["kv_bytes_formula"] > 0 for p in points)
    # Decoding continued through engine.decode.graph on the same cache (eager on the CPU).
    assert all(p["graph_decode_ms"] > 0 and p["graph_decode_splits"] == 1 for p in points)
    assert all(not p["notes"] for p in points)  # nothing failed, the cache never grew
    assert (tmp_path / "kv_cpu.csv").read_text().startswith("device_name,date,torch")
    assert result["headline"]["MHA"]["speedup_vs_MHA"] == 1.0

    pytest.importorskip("plotly")
    from bench import plot_results

    written = plot_results.main(["--results", str(tmp_path), "--out", str(tmp_path), "--no-png"])
    figures = json.loads((tmp_path / "kv_figures_cpu.json").read_text())
    assert set(figures) == {"latency", "memory", "bandwidth"} and written
