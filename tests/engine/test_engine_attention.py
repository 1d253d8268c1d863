"""The attention function: its properties on both the explicit and the fused path."""

import pytest
import torch

from engine.core.attention import attention
from engine.core.masks import MaskSpec, causal_mask, keep_keys_mask, window_mask

torch.manual_seed(0)


def qkv(b=2, h=4, h_kv=4, t_q=6, t_k=6, d=8):
    return torch.randn(b, h, t_q, d), torch.randn(b, h_kv, t_k, d), torch.randn(b, h_kv, t_k, d)


def naive(q, k, v, mask=None, bias=None, scale=None):
    """Textbook attention with K/V repeated to full width, fully masked rows → 0."""
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    scores = q @ k.transpose(-1, -2) * (scale or q.shape[-1] ** -0.5)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, -1).nan_to_num(0.0)
    return w @ v, w


def test_rows_sum_to_one_and_masked_entries_are_exactly_zero():
    q, k, v = qkv()
    mask = causal_mask(6, 6)[None, None] & keep_keys_mask(6, [2])[None, None, None]
    w = attention(q, k, v, mask=mask).weights
    rows = w.sum(-1)
    assert torch.allclose(rows[..., :2], torch.ones_like(rows[..., :2]), atol=1e-6)
    assert torch.allclose(rows[..., 3:], torch.ones_like(rows[..., 3:]), atol=1e-6)
    assert (w[~mask.expand_as(w)] == 0).all()  # exactly zero, not tiny


def test_fully_masked_row_gives_zeros_not_nan_on_both_paths():
    q, k, v = qkv()
    mask = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    mask[..., 3, :] = False
    explicit = attention(q, k, v, mask=mask)
    fused = attention(q, k, v, mask=mask, need_weights=False)
    for out in (explicit.out, fused.out):
        assert not out.isnan().any()
        assert (out[:, :, 3] == 0).all()
    assert (explicit.weights[:, :, 3] == 0).all()


def test_causal_is_lower_triangular():
    q, k, v = qkv()
    w = attention(q, k, v, is_causal=True).weights
    assert (w.triu(1) == 0).all()
    lower = torch.ones(6, 6, dtype=torch.bool).tril()
    assert (w[..., lower] > 0).all()


@pytest.mark.parametrize("window", [1, 2, 3, 5])
def test_window_keeps_at_most_window_keys(window):
    q, k, v = qkv(t_q=9, t_k=9)
    mask = window_mask(9, 9, window)[None, None]
    w = attention(q, k, v, mask=mask).weights
    assert ((w > 0).sum(-1) <= window).all()
    assert ((w > 0).sum(-1)[..., window - 1:] == window).all()


@pytest.mark.parametrize("h_kv", [4, 2, 1])
def test_explicit_and_fused_paths_agree(h_kv):
    q, k, v = qkv(h_kv=h_kv, t_q=5, t_k=7)
    mask = torch.rand(2, 1, 5, 7) > 0.3
    bias = torch.randn(4, 5, 7)
    a = attention(q, k, v, mask=mask, bias=bias)
    b = attention(q, k, v, mask=mask, bias=bias, need_weights=False)
    assert torch.allclose(a.out, b.out, atol=1e-5)


@pytest.mark.parametrize("h_kv", [4, 2, 1])
def test_grouped_heads_equal_mha_with_repeated_kv(h_kv):
    """n_kv_heads == n_heads is MHA; fewer K/V heads equal MHA whose K/V are repeated."""
    q, k, v = qkv(h_kv=h_kv)
    mask = causal_mask(6, 6)[None, None]
    got = attention(q, k, v, mask=mask)
    want_out, want_w = naive(q, k, v, mask=mask)
    assert torch.allclose(got.out, want_out, atol=1e-6)
    assert torch.allclose(got.weights, want_w, atol=1e-6)


def test_mqa_equals_mha_with_one_shared_head():
    q, k, v = qkv(h_kv=1)
    shared = attention(q, k.expand(-1, 4, -1, -1), v.expand(-1, 4, -1, -1))
    mqa = attention(q, k, v)
    assert torch.allclose(shared.out, mqa.out, atol=1e-6)


def test_scores_mark_masked_cells_minus_infinity():
    q, k, v = qkv()
    mask = causal_mask(6, 6)[None, None]
    s = attention(q, k, v, mask=mask).scores
    assert torch.isneginf(s[..., 0, 1:]).all()
    assert torch.isfinite(s.tril()).all()


def test_mask_spec_combines_padding_causal_window_and_knockout():
    real = torch.tensor([[True, True, True, True, False]])
    spec = MaskSpec(causal=True, window=2, key_is_real=real, keep_keys=keep_keys_mask(5, [0]))
    m = spec.dense(5, 5)[0, 0]
    want = torch.tensor([
        [0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 0],
    ], dtype=torch.bool)
    assert torch.equal(m, want)


def test_knockout_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match="outside"):
        keep_keys_mask(4, [7])


@pytest.mark.parametrize("h_kv", [4, 2, 1])
@pytest.mark.parametrize("spec", [
    MaskSpec(),
    MaskSpec(causal=True),
    MaskSpec(causal=True, window=3),
    MaskSpec(window=3),
    MaskSpec(causal=True, offset=4),  # queries after 4 cached keys
    MaskSpec(causal=True, window=5, offset=4),
    MaskSpec(causal=True, keep_keys=keep_keys_mask(17, [0, 9]),
             key_is_real=torch.arange(17)[None].expand(2, 17) < torch.tensor([[17], [12]])),
], ids=["none", "causal", "window-causal", "window-both", "offset", "window-offset", "pad-ko"])
@pytest.mark.parametrize("need_weights", [True, False])
def test_blocked_attention_equals_one_dense_call(spec, h_kv, need_weights):
    """Query blocks that read only their visible keys give the dense result: the same output,
    the same weights, exactly 0 (scores exactly -inf) wherever the dense mask is False."""
    from engine.core.attention import blocked_attention

    t_k = 17
    t_q = t_k - spec.offset
    q, k, v = qkv(h_kv=h_kv, t_q=t_q, t_k=t_k)
    bias = torch.randn(1, 4, t_q, t_k)
    dense = spec.dense(t_q, t_k)
    ref = attention(q, k, v, mask=dense, bias=bias, need_weights=need_weights)
    for rows in (1, 3, 5, 64):
        got = blocked_attention(q, k, v, spec, q.shape[-1] ** -0.5, rows=rows, bias=bias,
                                need_weights=need_weights, want_scores=need_weights)
        torch.testing.assert_close(got.out, ref.out, atol=1e-6, rtol=1e-5)
        if not need_weights:
            assert got.weights is None
            continue
        torch.testing.assert_close(got.weights, ref.weights, atol=1e-6, rtol=1e-5)
        masked = torch.isinf(ref.scores)
        assert torch.equal(torch.isinf(got.scores), masked)
        assert (got.weights[masked] == 0).all()
        torch.testing.assert_close(got.scores[~masked], ref.scores[~masked])
