"""Scaled dot-product attention that returns its weights (Vaswani et al., 2017, §3.2).

    Attention(Q, K, V) = softmax(Q Kᵀ · scale + bias, masked) V

One function serves self- and cross-attention, MHA, GQA and MQA. Notation: B batch · H query
heads · Hkv K/V heads · G = H / Hkv query heads per K/V head · Tq queries · Tk keys · D head dim.

Head sharing under GQA (H = 8, Hkv = 2, G = 4): query heads 0-3 read K/V head 0, query
heads 4-7 read K/V head 1. Neither path copies K/V to H heads: the explicit path views q as
[B, Hkv, G·Tq, D]; the fused one is `engine.fast.sdpa`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from engine.core.config import ModelConfig
from engine.core.kv_cache import LayerCache
from engine.core.masks import MaskSpec
from engine.core.norms import make_norm
from engine.core.positions import alibi_bias, apply_rope, rope_table
from engine.fast import blocked
from engine.fast.packed import PackedLinears
from engine.fast.sdpa import fused_masked_attention


@dataclass
class AttentionOutput:
    """What one attention call produced. Weights/scores are None on the fused path."""

    out: torch.Tensor  # [B, H, Tq, D]
    weights: torch.Tensor | None = None  # [B, H, Tq, Tk], post-softmax
    scores: torch.Tensor | None = None  # [B, H, Tq, Tk], pre-softmax, masked cells = -inf
    q: torch.Tensor | None = None  # [B, H, Tq, D] (after RoPE / q-norm)
    k: torch.Tensor | None = None  # [B, H, Tk, D] (shared heads expanded for display only)




def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None = None, bias: torch.Tensor | None = None,
              scale: float | None = None, need_weights: bool = True, is_causal: bool = False,
              keep_scores: bool = True, softcap: float | None = None) -> AttentionOutput:
    """Attention of q over k, v; a query whose every key is masked gets zero weights and a
    zero output (not NaN).

    Shapes: q [B, H, Tq, D]; k, v [B, Hkv, Tk, D] with H % Hkv == 0; mask bool broadcastable
    to [B, H, Tq, Tk] (True = may attend); bias float broadcastable to it (ALiBi, T5).
    `is_causal`: a hint for the fused kernel (must agree with `mask`). `keep_scores=False`:
    the weights may overwrite the scores (then None). `softcap` (Gemma 2): scaled scores
    become cap · tanh(scores / cap) before bias and mask, which no fused kernel does."""
    b, h, t_q, d = q.shape
    h_kv, t_k = k.shape[1], k.shape[2]
    if h % h_kv:
        raise ValueError(f"{h} query heads cannot share {h_kv} K/V heads evenly")
    scale = d**-0.5 if scale is None else scale
    if not need_weights and softcap is None:  # same numbers, never a [Tq, Tk] weight matrix
        return AttentionOutput(out=fused_masked_attention(q, k, v, mask, bias, scale, is_causal))
    if is_causal and mask is None:
        mask = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril(t_k - t_q)
    row_has_key = None if mask is None else mask.any(dim=-1, keepdim=True)  # [.., Tq, 1]

    g = h // h_kv
    # The G query heads that share a K/V head are adjacent, so [B, H, Tq, D] reads as
    # [B, Hkv, G·Tq, D]: one batched GEMM per K/V head, K/V never broadcast or copied.
    q_grouped = q if g == 1 else q.reshape(b, h_kv, g * t_q, d)
    scores = (q_grouped @ k.transpose(-1, -2)).view(b, h, t_q, t_k)
    scores.mul_(scale)  # after the product, as the reference implementations scale
    if softcap is not None:
        scores.div_(softcap).tanh_().mul_(softcap)
    if bias is not None:
        scores.add_(bias)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    if keep_scores or scores.dtype != torch.float32:
        weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    else:  # in place: a fresh T×T tensor costs page faults as well as its bytes
        weights, scores = torch.softmax(scores, dim=-1, out=scores), None
    if row_has_key is not None and not bool(row_has_key.all()):
        weights.masked_fill_(~row_has_key, 0.0)  # softmax of all -inf is NaN
    w_grouped = weights if g == 1 else weights.view(b, h_kv, g * t_q, t_k)
    out = (w_grouped @ v).view(b, h, t_q, d)
    if not need_weights:
        return AttentionOutput(out=out)
    return AttentionOutput(out=out, weights=weights, scores=scores)


def blocked_attention(q, k, v, spec: MaskSpec, scale: float, rows: int = blocked.QUERY_BLOCK,
                      bias: torch.Tensor | None = None, need_weights: bool = True,
                      want_scores: bool = False, softcap: float | None = None) -> AttentionOutput:
    """`attention` in blocks of `rows` queries, each over only the keys `spec` lets its rows
    see: the same maps, fewer products under a causal or windowed mask (`engine.fast.blocked`).
    Shapes: q [B, H, Tq, D]; k, v [B, Hkv, Tk, D] → out [B, H, Tq, D]."""
    return AttentionOutput(*blocked.blocked(attention, q, k, v, spec, scale, rows, bias,
                                            need_weights, want_scores, softcap))


@dataclass(frozen=True)
class Capture:
    """What a block should hand back besides its output."""

    weights: bool = False
    scores: bool = False
    qk: bool = False

    @property
    def any(self) -> bool:
        return self.weights or self.scores or self.qk


NO_CAPTURE = Capture()




class Attention(nn.Module):
    """Multi-head attention with H query heads and Hkv K/V heads, RoPE/ALiBi, q/k norm, cache."""

    def __init__(self, cfg: ModelConfig, layer_index: int, cross: bool = False):
        super().__init__()
        self.cfg, self.cross = cfg, cross
        self.n_heads, self.n_kv_heads, self.d_head = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.rope_base = cfg.layer_rope_base(layer_index)
        self.rope_scaling = cfg.layer_rope_scaling(layer_index)
        self.window = None if cross else cfg.layer_window(layer_index)
        d_q, d_kv = self.n_heads * self.d_head, self.n_kv_heads * self.d_head
        qkv_bias = cfg.has_bias("qkv")
        self.q_proj = nn.Linear(cfg.d_model, d_q, bias=qkv_bias)
        self.k_proj = nn.Linear(cfg.d_model, d_kv, bias=qkv_bias)
        self.v_proj = nn.Linear(cfg.d_model, d_kv, bias=qkv_bias)
        self.o_proj = nn.Linear(d_q, cfg.d_model, bias=cfg.has_bias("o"))
        self.q_norm = make_norm(cfg, self.d_head) if cfg.qk_norm else None
        self.k_norm = make_norm(cfg, self.d_head) if cfg.qk_norm else None
        self.packed = PackedLinears()  # q|k|v (self-attention) or k|v (cross) in one product

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, n, self.d_head).transpose(1, 2)  # [B, n, T, D]

    def qkv_linears(self) -> list[nn.Linear]:
        """The projections one product computes: q, k, v of x (self-attention)."""
        return [self.q_proj, self.k_proj, self.v_proj]

    def _keys_values(self, k: torch.Tensor, v: torch.Tensor,
                     offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected keys and values [B, Tk, Hkv·D] → heads, k-norm and RoPE applied."""
        k = self._heads(k, self.n_kv_heads)  # [B, Hkv, Tk, D]
        v = self._heads(v, self.n_kv_heads)
        if self.k_norm is not None:
            k = self.k_norm(k)
        if self.cfg.positions == "rope" and not self.cross:
            cos, sin = rope_table(offset, k.shape[2], self.d_head, self.rope_base, k,
                                  self.rope_scaling)
            k = apply_rope(k, cos, sin)
        return k, v

    def forward(self, x: torch.Tensor, mask: MaskSpec, memory: torch.Tensor | None = None,
                cache: LayerCache | None = None, capture: Capture = NO_CAPTURE,
                heads_off: list[int] | None = None, bias: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, AttentionOutput | None]:
        """x [B, Tq, d_model]; memory [B, Tk, d_model] for cross-attention; bias [1, H, Tq, Tk]
        (T5's relative positions). Returns ([B, Tq, d_model], the AttentionOutput when
        anything was captured)."""
        b, t_q, _ = x.shape
        offset = 0 if self.cross or cache is None else cache.length
        if self.cross:
            q_flat = self.q_proj(x)
        else:
            q_flat, k_flat, v_flat = self.packed(x, self.qkv_linears())
        q = self._heads(q_flat, self.n_heads)  # [B, H, Tq, D]
        if self.q_norm is not None:
            q = self.q_norm(q)
        if self.cfg.positions == "rope" and not self.cross:
            cos, sin = rope_table(offset, t_q, self.d_head, self.rope_base, q, self.rope_scaling)
            q = apply_rope(q, cos, sin)

        if self.cross:
            if cache is not None and cache.length:
                k, v = cache.view()  # encoder memory projected once per sequence
            else:
                k, v = self._keys_values(*self.packed(memory, [self.k_proj, self.v_proj]), 0)
                if cache is not None:
                    cache.append(k, v)
        else:
            k, v = self._keys_values(k_flat, v_flat, offset)
            if cache is not None:
                k, v = cache.append(k, v)  # every key so far, [B, Hkv, offset+Tq, D]

        window = mask.window if mask.window is not None else self.window
        spec = replace(mask, window=window, offset=offset)
        if self.cfg.positions == "alibi" and not self.cross:
            bias = alibi_bias(self.n_heads, t_q, k.shape[2], offset, device=x.device)[None]
        softcap, need_weights = self.cfg.attn_softcap, capture.weights or capture.scores
        found = blocked.faster(attention, q, k, v, spec, self.cfg.scale, bias, need_weights,
                               capture.scores, softcap)
        if found is None:  # the textbook call: the whole mask as one tensor
            result = attention(q, k, v, mask=spec.dense(t_q, k.shape[2], x.device), bias=bias,
                               scale=self.cfg.scale, need_weights=need_weights,
                               keep_scores=capture.scores, softcap=softcap)
        else:  # the same maps by a route that skips masked work (engine.fast.blocked)
            result = AttentionOutput(*found)
        out = result.out  # [B, H, Tq, D]
        if heads_off:
            keep = torch.ones(self.n_heads, device=out.device, dtype=out.dtype)
            keep[list(heads_off)] = 0
            out = out * keep[None, :, None, None]
        out = self.o_proj(out.transpose(1, 2).reshape(b, t_q, self.n_heads * self.d_head))
        if not capture.any:
            return out, None
        if capture.qk:
            g = self.n_heads // self.n_kv_heads
            result.q = q
            result.k = k.repeat_interleave(g, dim=1)  # for display: one K per query head
        if not capture.scores:
            result.scores = None
        if not capture.weights:
            result.weights = None
        return out, result
