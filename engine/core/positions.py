"""Positional encodings: sinusoidal (Vaswani et al., 2017) and learned ones are added to the
embeddings; RoPE (Su et al., 2021, "RoFormer") rotates q and k; ALiBi (Press et al., 2022) and
T5's bucketed relative bias (Raffel et al., 2020) are added to the scores."""

from __future__ import annotations

import math

import torch

from engine.core.config import RopeScaling
from engine.fast.tables import grown_table


def sinusoidal_table(length: int, d_model: int, base: float = 10_000.0,
                     halves: bool = False) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(...); with `halves` (Marian)
    the sines fill the first d/2 columns and the cosines the rest. Shape [length, d_model]."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / base ** (i / d_model)  # [length, ceil(d/2)]
    table = torch.zeros(length, d_model, dtype=torch.float64)
    sin_cols, cos_cols = ((slice(0, d_model // 2), slice(d_model // 2, None)) if halves
                          else (slice(0, None, 2), slice(1, None, 2)))
    table[:, sin_cols] = torch.sin(angle)[:, : table[:, sin_cols].shape[1]]
    table[:, cos_cols] = torch.cos(angle)[:, : table[:, cos_cols].shape[1]]
    return table.float()


def rope_frequencies(d_head: int, base: float, scaling: RopeScaling | None = None,
                     length: int = 0) -> torch.Tensor:
    """θ_i = base^(-2i/d), i < d/2, rescaled by `scaling` for a text of `length` positions.
    Shape [d_head/2]. In float32 and in transformers' (and Meta's) order of operations: the
    checkpoints were trained with these rounded angles (float64 ones move maps by 1e-4)."""
    exponent = torch.arange(0, d_head, 2, dtype=torch.int64).float() / d_head
    kind = None if scaling is None else scaling.kind
    if kind == "dynamic" and length > scaling.original_max_len:
        f = scaling.factor  # NTK-aware: a larger base for a longer text, all in float32
        grow = (f * torch.tensor(length) / scaling.original_max_len) - (f - 1)
        base = base * grow ** (d_head / (d_head - 2))
    inv = 1.0 / (base ** exponent)
    if kind == "linear":
        inv = inv / scaling.factor
    elif kind == "llama3":
        low_wavelen = scaling.original_max_len / scaling.low_freq_factor
        high_wavelen = scaling.original_max_len / scaling.high_freq_factor
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wavelen, inv / scaling.factor, inv)
        smooth = ((scaling.original_max_len / wavelen - scaling.low_freq_factor)
                  / (scaling.high_freq_factor - scaling.low_freq_factor))
        smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        inv = torch.where(medium, smoothed, scaled)
    return inv


def rope_cos_sin(positions: torch.Tensor, d_head: int, base: float,
                 scaling: RopeScaling | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position × frequency (float32), halves repeated. Shapes [T, d_head]."""
    length = int(positions.max()) + 1 if positions.numel() else 0
    angle = positions.float()[:, None] * rope_frequencies(d_head, base, scaling, length)[None]
    angle = torch.cat([angle, angle], dim=-1)
    return angle.cos(), angle.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+d/2}) by pos·θ_i ("rotate half", GPT-NeoX/Llama/Gemma):
    x · cos + cat(-x₂, x₁) · sin. Shapes: x [..., T, D]; cos, sin [T, D] (or broadcastable)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos.to(x.dtype) + torch.cat([-x2, x1], dim=-1) * sin.to(x.dtype)


def rope_table(start: int, length: int, d_head: int, base: float, like: torch.Tensor,
               scaling: RopeScaling | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE cos and sin [length, D] for positions start .. start+length-1, in `like`'s dtype
    and on its device; computed on the CPU (CPU and GPU rotate by the same angles) and kept
    by `engine.fast.tables`. Dynamic scaling depends on the text's length, so its key does."""
    end = start + length
    longer = scaling is not None and scaling.kind == "dynamic" and end > scaling.original_max_len
    key = (d_head, float(base), scaling, end if longer else None, like.device, like.dtype)

    def build(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = rope_frequencies(d_head, base, scaling, end)  # of a text of `end` positions
        angle = torch.arange(size).float()[:, None] * freqs[None]
        angle = torch.cat([angle, angle], dim=-1)
        return angle.cos().to(like.device, like.dtype), angle.sin().to(like.device, like.dtype)

    cos, sin = grown_table(key, end, build)
    return cos[start:end], sin[start:end]


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Geometric slopes 2^(-8/n), 2^(-16/n), ...; for 8 heads 1/2 … 1/256. Other head counts:
    the closest lower power of two's slopes, then every other one of the next (the paper's)."""

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
    """-slope_h · |i - j| added to the scores (a decoder's causal mask hides the future half,
    leaving the paper's -slope·(i - j)). Shape [H, Tq, Tk]."""
    q_pos = torch.arange(t_q, device=device)[:, None] + offset
    k_pos = torch.arange(t_k, device=device)[None, :]
    distance = (q_pos - k_pos).abs().float()
    return -alibi_slopes(n_heads).to(device)[:, None, None] * distance[None]


def relative_buckets(t_q: int, t_k: int, offset: int, bidirectional: bool, n_buckets: int,
                     max_distance: int, device=None) -> torch.Tensor:
    """T5's bucket of each (query, key) distance, as its `_relative_position_bucket` computes
    it: exact small distances, then log-wider buckets up to `max_distance`; an encoder's later
    keys get buckets of their own, a decoder sees only the past. Shape [Tq, Tk] int64."""
    q_pos = torch.arange(offset, offset + t_q, device=device)[:, None]
    rel = torch.arange(t_k, device=device)[None, :] - q_pos  # key - query
    buckets = torch.zeros_like(rel)
    if bidirectional:
        n_buckets //= 2
        buckets += (rel > 0).long() * n_buckets
        rel = rel.abs()
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    exact = n_buckets // 2
    large = exact + (torch.log(rel.float() / exact) / math.log(max_distance / exact)
                     * (n_buckets - exact)).long()
    large = torch.min(large, torch.full_like(large, n_buckets - 1))
    return buckets + torch.where(rel < exact, rel, large)
