"""Positional encodings: known values, ALiBi slopes, RoPE's relative-position property."""

import math

import pytest
import torch

from engine.core.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    rope_cos_sin,
    sinusoidal_table,
)


def test_sinusoidal_known_values():
    pe = sinusoidal_table(50, 8)
    assert pe[0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert pe[1, 0].item() == pytest.approx(math.sin(1.0), abs=1e-7)
    assert pe[1, 1].item() == pytest.approx(math.cos(1.0), abs=1e-7)
    # PE[pos, 2i] = sin(pos / 10000^(2i/d)): pos 7, i = 1, d = 8 → 7 / 10
    assert pe[7, 2].item() == pytest.approx(math.sin(7 / 10000 ** (2 / 8)), abs=1e-7)
    assert pe[7, 3].item() == pytest.approx(math.cos(7 / 10000 ** (2 / 8)), abs=1e-7)


def test_alibi_slopes_for_eight_heads_are_half_to_1_over_256():
    assert alibi_slopes(8).tolist() == [1 / 2**i for i in range(1, 9)]


def test_alibi_slopes_for_non_power_of_two_follow_the_paper():
    # 12 heads: the 8 slopes of 8 heads, then every other slope of 16 heads.
    s16 = [2 ** (-0.5 * (i + 1)) for i in range(16)]
    want = [1 / 2**i for i in range(1, 9)] + s16[0::2][:4]
    assert alibi_slopes(12).tolist() == pytest.approx(want)


def test_alibi_bias_equals_a_naive_loop():
    bias = alibi_bias(4, 5, 5)
    slopes = alibi_slopes(4)
    for h in range(4):
        for i in range(5):
            for j in range(5):
                assert bias[h, i, j].item() == pytest.approx(-slopes[h].item() * abs(i - j))


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    d = 16
    q, k = torch.randn(1, 1, 1, d), torch.randn(1, 1, 1, d)

    def score(m: int, n: int) -> float:
        cos, sin = rope_cos_sin(torch.tensor([m, n]), d, 10_000.0)
        qr = apply_rope(q, cos[:1], sin[:1])
        kr = apply_rope(k, cos[1:], sin[1:])
        return (qr * kr).sum().item()

    assert score(5, 2) == pytest.approx(score(105, 102), abs=1e-4)
    assert score(9, 9) == pytest.approx(score(0, 0), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_rope_preserves_norm():
    x = torch.randn(1, 2, 7, 8)
    cos, sin = rope_cos_sin(torch.arange(7), 8, 10_000.0)
    assert torch.allclose(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_a_rope_table_made_in_inference_mode_serves_a_pass_under_autograd():
    """The RoPE table is kept across passes: one made during an inference-mode pass must
    still serve a later pass whose gradients are needed (training after the app ran)."""
    from tests.conftest import tiny

    first = tiny("decoder", positions="rope", d_model=24, n_heads=2, d_ff=48)
    with torch.inference_mode():
        first(torch.randint(3, 61, (1, 9)))
    second = tiny("decoder", positions="rope", d_model=24, n_heads=2, d_ff=48)
    second(torch.randint(3, 61, (1, 9))).logits.sum().backward()
    assert second.decoder.layers[0].self_attn.q_proj.weight.grad is not None
