"""Fused attention: PyTorch's `scaled_dot_product_attention`, fed so that it never widens
K/V to all query heads. The same numbers as `engine.core.attention.attention`, without the
weights (fused kernels never form them); tests/engine/test_engine_attention.py proves equality.

    B batch · H query heads · Hkv K/V heads · G = H / Hkv · Tq queries · Tk keys · D head dim
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def fused_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """scaled_dot_product_attention of q [B, H, Tq, D] over k, v [B, Hkv, Tk, D], never
    widening K/V to H heads. Returns [B, H, Tq, D].

    Without a mask tensor, flash takes Hkv < H as it is (`enable_gqa`). With one, on CUDA, only
    the math kernel accepts `enable_gqa`, and it repeats K/V to H heads; there the G query heads
    that share a K/V head are stacked along the query axis instead (q → [B, Hkv, G·Tq, D], the
    mask following), so memory-efficient attention reads the Hkv heads directly. The CPU's
    kernel handles GQA with a mask itself.

    cuDNN's attention is left out on CUDA: it builds an execution plan for every new shape
    (~25 ms a call on an H200 with torch 2.11, bench/README.md), and a decode step brings a new
    key length every token, the app a new text length every call. (A flag flip, not the
    `sdpa_kernel` context manager, which costs ~100 µs a call.)
    """
    b, h, t_q, d = q.shape
    h_kv = k.shape[1]
    if q.device.type != "cuda":
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale, enable_gqa=h != h_kv
        )
    cudnn = torch.backends.cuda.cudnn_sdp_enabled()
    if cudnn:
        torch.backends.cuda.enable_cudnn_sdp(False)
    try:
        if (t_q == 1 and attn_mask is None and not is_causal
                and q.dtype in (torch.bfloat16, torch.float16)):
            return decode_step(q, k, v, scale)
        from torch.nn.attention.bias import CausalBias  # imported late: ~1 s at start-up

        if h == h_kv or attn_mask is None or isinstance(attn_mask, CausalBias):
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale,
                enable_gqa=h != h_kv,
            )
        g = h // h_kv
        mask = group_mask(attn_mask, h_kv, g, t_q)
        q_grouped = q.reshape(b, h_kv, g * t_q, d)  # [B, Hkv, G·Tq, D]
        out = F.scaled_dot_product_attention(q_grouped, k, v, attn_mask=mask, scale=scale)
        return out.reshape(b, h, t_q, d)  # [B, Hkv, G·Tq, D] → [B, H, Tq, D]
    finally:
        if cudnn:
            torch.backends.cuda.enable_cudnn_sdp(True)


def fused_masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           mask: torch.Tensor | None, bias: torch.Tensor | None, scale: float,
                           is_causal: bool = False) -> torch.Tensor:
    """What `engine.core.attention.attention` computes, without its weights: the same
    mask (bool, True = may attend), bias and scale, and a zero output for a query that sees no
    key. Shapes: q [B, H, Tq, D]; k, v [B, Hkv, Tk, D] → [B, H, Tq, D]."""
    t_q, t_k = q.shape[2], k.shape[2]
    if is_causal and mask is None and bias is None and t_q <= t_k:
        # `is_causal` aligns the diagonal bottom-right: query i sits at key position
        # Tk - Tq + i. That covers a causal prefill (Tq = Tk), one decode step (Tq = 1: every
        # key so far, no mask at all) and a prefill chunk after a cache (1 < Tq < Tk), which
        # SDPA runs on the same flash kernel through `causal_lower_right` (its own is_causal
        # aligns top-left). None of these builds a [Tq, Tk] mask or widens K/V to H heads.
        if t_q == t_k:
            return fused_attention(q, k, v, is_causal=True, scale=scale)
        if t_q == 1:
            return fused_attention(q, k, v, scale=scale)
        from torch.nn.attention.bias import causal_lower_right  # ~1 s import, only here

        return fused_attention(q, k, v, attn_mask=causal_lower_right(t_q, t_k), scale=scale)
    if is_causal and mask is None:
        mask = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril(t_k - t_q)
    attn_mask = mask
    if bias is not None:
        attn_mask = bias.to(q.dtype)
        if mask is not None:
            attn_mask = attn_mask.masked_fill(~mask, float("-inf"))
    out = fused_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    if mask is not None:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # softmax of all -inf
    return out


@functools.cache
def flash_split_blocks(device: torch.device) -> int:
    """Below this many (batch, head) blocks PyTorch's flash kernel splits a decode step's keys
    across multiprocessors; at or above, it runs one 128-query tile per block with a single real
    query row (its heuristic: 80% of the multiprocessors)."""
    return math.ceil(0.8 * torch.cuda.get_device_properties(device).multi_processor_count) - 1


def decode_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 scale: float | None) -> torch.Tensor:
    """One decode step (Tq = 1, every key visible) on flash, fed a few sequences at a time so
    that every call stays in flash's split-keys mode.

    Flash counts B·H blocks, or B·Hkv under GQA/MQA (it folds a group's G queries into one
    tile). With too many it stops splitting the keys and reads K/V at ~60% of copy bandwidth
    on an H200; split, it reads them at 80-100% (bench/README.md). The calls run one after
    another, each filling the GPU. Shapes: q [B, H, 1, D]; k, v [B, Hkv, Tk, D] → [B, H, 1, D].
    """
    b, h = q.shape[:2]
    h_kv = k.shape[1]
    per_call = max(1, flash_split_blocks(q.device) // (h if h == h_kv else h_kv))
    if b <= per_call:
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=h != h_kv)
    return torch.cat([
        F.scaled_dot_product_attention(q[i : i + per_call], k[i : i + per_call],
                                       v[i : i + per_call], scale=scale, enable_gqa=h != h_kv)
        for i in range(0, b, per_call)
    ])


def group_mask(mask: torch.Tensor, h_kv: int, g: int, t_q: int) -> torch.Tensor:
    """A mask broadcastable to [B, H, Tq, Tk] → the same for grouped queries:
    [B, 1 or Hkv, G·Tq, Tk], or [B, 1, 1, Tk] when no query changes it (padding)."""
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    mb, mh, mq, mk = mask.shape
    if mh == 1 and mq == 1:
        return mask
    if mh == 1:
        return mask[:, :, None].expand(mb, 1, g, t_q, mk).reshape(mb, 1, g * t_q, mk)
    return mask.expand(mb, h_kv * g, t_q, mk).reshape(mb, h_kv, g * t_q, mk)
