"""Scaled dot-product attention that returns its weights (Vaswani et al., 2017, §3.2).

    Attention(Q, K, V) = softmax(Q Kᵀ · scale + bias, masked) V

One function serves self- and cross-attention, MHA, GQA and MQA. Notation:

    B batch · H query heads · Hkv K/V heads · G = H / Hkv query heads per K/V head
    Tq queries · Tk keys · D head dimension

Head sharing under GQA (H = 8, Hkv = 2, G = 4): query heads 0-3 read K/V head 0, query
heads 4-7 read K/V head 1. Neither path below copies K/V to H heads: the explicit path
views q as [B, Hkv, G, Tq, D] and broadcasts k over G; the fused path passes
`enable_gqa=True` to `scaled_dot_product_attention` (flash takes Hkv < H as it is), or, with a
mask tensor on CUDA, stacks each group's queries as [B, Hkv, G·Tq, D] (see `_fused`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ModelConfig
from engine.kv_cache import LayerCache
from engine.masks import MaskSpec
from engine.norms import make_norm
from engine.packed import PackedLinears
from engine.positions import alibi_bias, apply_rope, rope_cos_sin


@dataclass
class AttentionOutput:
    """What one attention call produced. Weights/scores are None on the fused path."""

    out: torch.Tensor  # [B, H, Tq, D]
    weights: torch.Tensor | None = None  # [B, H, Tq, Tk], post-softmax
    scores: torch.Tensor | None = None  # [B, H, Tq, Tk], pre-softmax, masked cells = -inf
    q: torch.Tensor | None = None  # [B, H, Tq, D] (after RoPE / q-norm)
    k: torch.Tensor | None = None  # [B, H, Tk, D] (shared heads expanded for display only)


def _fused(
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
            return _decode_step(q, k, v, scale)
        from torch.nn.attention.bias import CausalBias  # imported late: ~1 s at start-up

        if h == h_kv or attn_mask is None or isinstance(attn_mask, CausalBias):
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale,
                enable_gqa=h != h_kv,
            )
        g = h // h_kv
        mask = _group_mask(attn_mask, h_kv, g, t_q)
        q_grouped = q.reshape(b, h_kv, g * t_q, d)  # [B, Hkv, G·Tq, D]
        out = F.scaled_dot_product_attention(q_grouped, k, v, attn_mask=mask, scale=scale)
        return out.reshape(b, h, t_q, d)  # [B, Hkv, G·Tq, D] → [B, H, Tq, D]
    finally:
        if cudnn:
            torch.backends.cuda.enable_cudnn_sdp(True)


@functools.cache
def _flash_split_blocks(device: torch.device) -> int:
    """Below this many (batch, head) blocks PyTorch's flash kernel splits a decode step's keys
    across multiprocessors; at or above, it runs one 128-query tile per block with a single real
    query row (its heuristic: 80% of the multiprocessors)."""
    return math.ceil(0.8 * torch.cuda.get_device_properties(device).multi_processor_count) - 1


def _decode_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
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
    per_call = max(1, _flash_split_blocks(q.device) // (h if h == h_kv else h_kv))
    if b <= per_call:
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=h != h_kv)
    return torch.cat([
        F.scaled_dot_product_attention(q[i : i + per_call], k[i : i + per_call],
                                       v[i : i + per_call], scale=scale, enable_gqa=h != h_kv)
        for i in range(0, b, per_call)
    ])


def _group_mask(mask: torch.Tensor, h_kv: int, g: int, t_q: int) -> torch.Tensor:
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


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    need_weights: bool = True,
    is_causal: bool = False,
    keep_scores: bool = True,
) -> AttentionOutput:
    """Attention of q over k, v.

    Shapes: q [B, H, Tq, D]; k, v [B, Hkv, Tk, D] with H % Hkv == 0;
    mask bool broadcastable to [B, H, Tq, Tk] (True = may attend);
    bias float broadcastable to [B, H, Tq, Tk] (ALiBi). `is_causal` is a fast-path hint
    for the fused kernel only and must agree with `mask` when both are given.
    `keep_scores=False`: the weights may overwrite the scores (one [B, H, Tq, Tk] tensor
    instead of two; `scores` is then None).

    A query whose every key is masked gets zero weights and a zero output (not NaN).
    """
    b, h, t_q, d = q.shape
    h_kv, t_k = k.shape[1], k.shape[2]
    if h % h_kv:
        raise ValueError(f"{h} query heads cannot share {h_kv} K/V heads evenly")
    scale = d**-0.5 if scale is None else scale
    if not need_weights and is_causal and mask is None and bias is None and t_q <= t_k:
        # `is_causal` aligns the diagonal bottom-right: query i sits at key position
        # Tk - Tq + i. That covers a causal prefill (Tq = Tk), one decode step (Tq = 1: every
        # key so far, no mask at all) and a prefill chunk after a cache (1 < Tq < Tk), which
        # SDPA runs on the same flash kernel through `causal_lower_right` (its own is_causal
        # aligns top-left). None of these builds a [Tq, Tk] mask or widens K/V to H heads.
        if t_q == t_k:
            out = _fused(q, k, v, is_causal=True, scale=scale)
        elif t_q == 1:
            out = _fused(q, k, v, scale=scale)
        else:
            from torch.nn.attention.bias import causal_lower_right  # ~1 s import, only here

            out = _fused(q, k, v, attn_mask=causal_lower_right(t_q, t_k), scale=scale)
        return AttentionOutput(out=out)
    if is_causal and mask is None:
        mask = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril(t_k - t_q)
    row_has_key = None if mask is None else mask.any(dim=-1, keepdim=True)  # [.., Tq, 1]

    if not need_weights:
        attn_mask = mask
        if bias is not None:
            attn_mask = bias.to(q.dtype)
            if mask is not None:
                attn_mask = attn_mask.masked_fill(~mask, float("-inf"))
        out = _fused(q, k, v, attn_mask=attn_mask, scale=scale)
        if row_has_key is not None:
            out = out.masked_fill(~row_has_key, 0.0)
        return AttentionOutput(out=out)

    g = h // h_kv
    # The G query heads that share a K/V head are adjacent, so [B, H, Tq, D] reads as
    # [B, Hkv, G·Tq, D]: one batched GEMM per K/V head, K/V never broadcast or copied.
    q_grouped = q if g == 1 else q.reshape(b, h_kv, g * t_q, d)
    scores = (q_grouped @ k.transpose(-1, -2)).view(b, h, t_q, t_k)
    scores.mul_(scale)  # after the product, as the reference implementations scale
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
    return AttentionOutput(out=out, weights=weights, scores=scores)


QUERY_BLOCK = 128  # query rows per block of the recorded path: a block's scores stay in cache


def _key_span(spec: MaskSpec, s: int, e: int, t_k: int) -> tuple[int, int]:
    """Keys [lo, hi) that queries s .. e-1 may see at all under the causal and window parts
    of `spec` (query i sits at absolute position spec.offset + i, key j at j)."""
    lo, hi = 0, t_k
    if spec.causal:
        hi = min(hi, spec.offset + e)
    if spec.window is not None:
        lo = max(0, spec.offset + s - spec.window + 1)
        if not spec.causal:
            hi = min(hi, spec.offset + e - 1 + spec.window)
    return lo, max(lo, hi)


def _block_spec(spec: MaskSpec, s: int, lo: int, hi: int) -> MaskSpec:
    """`spec` for queries from s on against keys lo .. hi-1 only."""
    return MaskSpec(causal=spec.causal, window=spec.window, offset=spec.offset + s - lo,
                    key_is_real=None if spec.key_is_real is None else spec.key_is_real[:, lo:hi],
                    keep_keys=None if spec.keep_keys is None else spec.keep_keys[lo:hi])


def _block_of(t: torch.Tensor, s: int, e: int, lo: int, hi: int) -> torch.Tensor:
    """Rows s..e-1, columns lo..hi-1 of a tensor broadcastable to [.., Tq, Tk]."""
    rows = slice(s, e) if t.shape[-2] > 1 else slice(None)
    cols = slice(lo, hi) if t.shape[-1] > 1 else slice(None)
    return t[..., rows, cols]


def blocked_attention(q, k, v, spec: MaskSpec, scale: float, rows: int = QUERY_BLOCK,
                      bias: torch.Tensor | None = None, need_weights: bool = True,
                      want_scores: bool = False) -> AttentionOutput:
    """`attention` in blocks of `rows` queries, each reading only the keys its rows may see
    (`_key_span`): a causal map costs half the products of a dense one, a sliding window
    O(T·w), and every block's scores stay in cache. Recorded maps are [B, H, Tq, Tk] and
    exactly 0 (scores -inf) outside each block's span, as the dense path gives them.

        causal, rows = 2:   q 0-1 read keys 0-1 · q 2-3 read keys 0-3 · q 4-5 read keys 0-5
        window w = 2:       q 4-5 read keys 3-5 only

    Shapes: q [B, H, Tq, D]; k, v [B, Hkv, Tk, D] → out [B, H, Tq, D].
    """
    b, h, t_q, _ = q.shape
    t_k = k.shape[2]
    out = torch.empty_like(q)  # every block writes its rows
    weights = q.new_zeros(b, h, t_q, t_k) if need_weights else None
    scores = q.new_full((b, h, t_q, t_k), float("-inf")) if want_scores else None
    for s in range(0, t_q, rows):
        e = min(s + rows, t_q)
        lo, hi = _key_span(spec, s, e, t_k)
        if hi == lo:  # no key visible to these queries: zero output and weights
            out[:, :, s:e] = 0
            continue
        part = attention(q[:, :, s:e], k[:, :, lo:hi], v[:, :, lo:hi],
                         mask=_block_spec(spec, s, lo, hi).dense(e - s, hi - lo, q.device),
                         bias=None if bias is None else _block_of(bias, s, e, lo, hi),
                         scale=scale, need_weights=need_weights, keep_scores=want_scores)
        out[:, :, s:e] = part.out
        if weights is not None:
            weights[:, :, s:e, lo:hi] = part.weights
        if scores is not None:
            scores[:, :, s:e, lo:hi] = part.scores
    return AttentionOutput(out=out, weights=weights, scores=scores)


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


def _local_pays(spec: MaskSpec, t_q: int, t_k: int, device: torch.device) -> bool:
    """A causal sliding window over a long prefill: query blocks beat one dense T×T call.
    Measured (`bench/bench_blocks.py`, w = 512): at 4w tokens the blocks take 0.56× the dense
    call's time on this CPU but 1.7× on an H200, where they win from 16w on (0.47×); so the
    CPU switches above 2w and CUDA above 8w."""
    longer_than = (2 if device.type == "cpu" else 8) * (spec.window or 0)
    return (spec.window is not None and spec.causal and spec.offset == 0 and t_q == t_k
            and t_q > longer_than)


def _blocks_pay(spec: MaskSpec, t_q: int, device: torch.device) -> bool:
    """Whether a recorded map is cheaper in query blocks: on the CPU, for a causal or windowed
    map (partly structural zeros, whose products the blocks skip) of more than one block.
    Unmasked, one dense call is faster; on a GPU the blocks' extra kernel launches cost more
    than the skipped products (bench/README.md)."""
    return (device.type == "cpu" and t_q > QUERY_BLOCK
            and (spec.causal or spec.window is not None))


class Attention(nn.Module):
    """Multi-head attention with H query heads and Hkv K/V heads, RoPE/ALiBi, q/k norm, cache."""

    def __init__(self, cfg: ModelConfig, layer_index: int, cross: bool = False):
        super().__init__()
        self.cfg = cfg
        self.cross = cross
        self.n_heads, self.n_kv_heads, self.d_head = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.rope_base = cfg.layer_rope_base(layer_index)
        self.window = None if cross else cfg.layer_window(layer_index)
        d_q, d_kv = self.n_heads * self.d_head, self.n_kv_heads * self.d_head
        self.q_proj = nn.Linear(cfg.d_model, d_q, bias=cfg.bias)
        self.k_proj = nn.Linear(cfg.d_model, d_kv, bias=cfg.bias)
        self.v_proj = nn.Linear(cfg.d_model, d_kv, bias=cfg.bias)
        self.o_proj = nn.Linear(d_q, cfg.d_model, bias=cfg.bias)
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
            cos, sin = rope_table(offset, k.shape[2], self.d_head, self.rope_base, k)
            k = apply_rope(k, cos, sin)
        return k, v

    def forward(
        self,
        x: torch.Tensor,
        mask: MaskSpec,
        memory: torch.Tensor | None = None,
        cache: LayerCache | None = None,
        capture: Capture = NO_CAPTURE,
        heads_off: list[int] | None = None,
    ) -> tuple[torch.Tensor, AttentionOutput | None]:
        """x [B, Tq, d_model]; memory [B, Tk, d_model] for cross-attention. Returns
        ([B, Tq, d_model], the AttentionOutput when anything was captured)."""
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
            cos, sin = rope_table(offset, t_q, self.d_head, self.rope_base, q)
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

        t_k = k.shape[2]
        window = mask.window if mask.window is not None else self.window
        spec = MaskSpec(
            causal=mask.causal,
            window=window,
            key_is_real=mask.key_is_real,
            keep_keys=mask.keep_keys,
            offset=offset,
        )
        bias = None
        if self.cfg.positions == "alibi" and not self.cross:
            bias = alibi_bias(self.n_heads, t_q, t_k, offset, device=x.device)[None]
        # Plain causal attention over the cache's keys plus the new ones needs no mask tensor:
        # a prefill (offset 0), a prefill chunk or one decode step (offset = Tk - Tq) are all
        # the bottom-right-aligned causal pattern that `attention(is_causal=True)` means.
        plain_causal = spec.causal and spec.window is None and spec.key_is_real is None
        plain_causal = plain_causal and spec.keep_keys is None
        causal_tail = plain_causal and spec.offset == t_k - t_q
        need_weights = capture.weights or capture.scores
        if need_weights and _blocks_pay(spec, t_q, x.device):
            result = blocked_attention(q, k, v, spec, self.cfg.scale, bias=bias,
                                       want_scores=capture.scores)
        elif not need_weights and bias is None and _local_pays(spec, t_q, t_k, x.device):
            # Query blocks of `window` rows, each over at most 2w - 1 keys: O(T·w).
            result = blocked_attention(q, k, v, spec, self.cfg.scale, rows=spec.window,
                                       need_weights=False)
        else:
            dense = None if causal_tail else spec.dense(t_q, t_k, x.device)
            result = attention(
                q, k, v, mask=dense, bias=bias, scale=self.cfg.scale,
                need_weights=need_weights, is_causal=causal_tail, keep_scores=capture.scores,
            )
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
