"""Positional encodings: sinusoidal (Vaswani et al., 2017), learned, RoPE (Su et al., 2021,
"RoFormer") and ALiBi (Press et al., 2022, "Train Short, Test Long").

Sinusoidal and learned encodings are added to the embeddings; RoPE rotates q and k inside
attention; ALiBi adds a per-head linear distance penalty to the scores.
"""

from __future__ import annotations

import math

import torch


def sinusoidal_table(length: int, d_model: int, base: float = 10_000.0) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(...). Shape [length, d_model]."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / base ** (i / d_model)  # [length, ceil(d/2)]
    table = torch.zeros(length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table.float()


def rope_frequencies(d_head: int, base: float) -> torch.Tensor:
    """θ_i = base^(-2i/d) for i in 0..d/2-1. Shape [d_head/2]."""
    return base ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)


def rope_cos_sin(
    positions: torch.Tensor, d_head: int, base: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position × frequency, halves repeated. Shapes [T, d_head]."""
    angle = positions.double()[:, None] * rope_frequencies(d_head, base)[None, :]
    angle = torch.cat([angle, angle], dim=-1)
    return angle.cos().float(), angle.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+d/2}) by angle pos·θ_i ("rotate half", as in GPT-NeoX/Gemma):

        out = x · cos + cat(-x₂, x₁) · sin        (x₁, x₂ the two halves of the last axis)

    Computed as one multiply and two in-place multiply-adds on the halves of `out`, three
    kernels instead of the five that negating, concatenating and a third multiply take (a
    decode step rotates q and k in every layer). Shapes: x [..., T, D]; cos, sin [T, D] (or
    broadcastable to x).
    """
    half = x.shape[-1] // 2
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1)
    out[..., half:].addcmul_(x[..., :half], sin[..., half:])
    return out


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Geometric slopes 2^(-8/n), 2^(-16/n), ...; for 8 heads 1/2 … 1/256.

    For a head count that is not a power of two, the paper's recipe: take the slopes of the
    closest lower power of two, then every other slope of the next power of two.
    """

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = power_of_two(n_heads)
    else:
        low = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(low) + power_of_two(2 * low)[0::2][: n_heads - low]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(n_heads: int, t_q: int, t_k: int, offset: int = 0, device=None) -> torch.Tensor:
    """-slope_h · |i - j| added to the scores. Shape [H, Tq, Tk].

    The symmetric distance serves encoders; under a causal mask the future half is masked
    anyway, so decoders get the paper's -slope·(i - j).
    """
    q_pos = torch.arange(t_q, device=device)[:, None] + offset
    k_pos = torch.arange(t_k, device=device)[None, :]
    distance = (q_pos - k_pos).abs().float()
    return -alibi_slopes(n_heads).to(device)[:, None, None] * distance[None]


_ROPE_TABLES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def rope_table(
    start: int, length: int, d_head: int, base: float, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE cos and sin [length, D] for positions start .. start+length-1, in `like`'s dtype
    and on its device.

    The table is computed once on the CPU in float64 (CPU and GPU rotate by the same angles),
    kept per (D, base, device, dtype) and grown by doubling: a decode step slices it instead
    of recomputing angles or copying from host memory, which would stall the GPU queue.
    """
    key = (d_head, float(base), like.device, like.dtype)
    end = start + length
    table = _ROPE_TABLES.get(key)
    if table is None or table[0].shape[0] < end:
        size = max(end, 256 if table is None else 2 * table[0].shape[0])
        cos, sin = rope_cos_sin(torch.arange(size), d_head, base)  # [size, D] float32
        table = (cos.to(like.device, like.dtype), sin.to(like.device, like.dtype))
        _ROPE_TABLES[key] = table
    return table[0][start:end], table[1][start:end]
