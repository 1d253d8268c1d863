"""Triton kernels for `engine.decode.graph`: split-keys decode attention (flash-decoding), and
two small fusions of a decode step (RMSNorm of a few rows; RoPE plus the K/V cache write).

One decode step's attention reads every cached key once; at batch 1 under MQA that is a single
K/V head, too little work for one thread block per head. So the keys are cut into `splits`
parts, each part's softmax-weighted sum is computed by its own program (with its
log-sum-exp), and a second kernel combines the parts (Dao et al., 2023, "Flash-Decoding for
long-context inference").

What a fixed-shape (CUDA-graph) step needs and PyTorch's kernels do not offer together: the
number of valid keys is read from device memory, so one captured graph serves every length,
and only the valid keys are read (flash needs the length as a host integer; its variable-length
mode takes it from memory but then does not split the keys; the memory-efficient kernel takes a
mask over the whole buffer and, even with the keys cut into parts folded into its head axis,
read K/V at 8-51% of copy bandwidth: bench/README.md).
The G query heads that share a K/V head are the rows of one tile, so K/V are read once per
K/V head, never widened to H heads.

The small fusions exist because at batch 1 a decode step is matrix-vector products plus tens of
tiny kernels of a few µs each (bench/README.md); each replaces several of them.

Imported only on CUDA with Triton installed; `engine.decode.graph` is the caller, and its
PyTorch path (the CPU's) computes the same functions.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _partial_kernel(q_ptr, k_ptr, v_ptr, n_ptr, o_ptr, lse_ptr, q_stride_b, h_kv, cap, scale,
                    G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, SPLITS: tl.constexpr,
                    BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    """Program (b·Hkv + kv, split): attention of the G queries over its share of the keys.

    q [B, Hkv, G, D] (Hkv·G rows of D contiguous, batch stride q_stride_b); k, v [B·Hkv, cap,
    D]; n_ptr: number of valid keys (int64, device); o [B·Hkv, SPLITS, G, D] float32
    (normalised within the split); lse [B·Hkv, SPLITS, G].
    """
    bh = tl.program_id(0)
    split = tl.program_id(1)
    n = tl.load(n_ptr)
    # The valid keys (not the buffer) are divided, so every split has work at any length.
    per = tl.cdiv(tl.cdiv(n, SPLITS), BLOCK_N) * BLOCK_N
    start = split * per
    end = tl.minimum(start + per, n)

    rows = tl.arange(0, GP)
    dims = tl.arange(0, D)
    q_base = (bh // h_kv) * q_stride_b + (bh % h_kv) * G * D
    q = tl.load(q_ptr + q_base + rows[:, None] * D + dims[None, :],
                mask=rows[:, None] < G, other=0.0)
    kv_base = bh.to(tl.int64) * cap * D
    m = tl.full([GP], float("-inf"), tl.float32)
    l_sum = tl.zeros([GP], tl.float32)
    acc = tl.zeros([GP, D], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        keys = n0 + tl.arange(0, BLOCK_N)
        valid = keys < end
        offs = kv_base + keys[:, None].to(tl.int64) * D + dims[None, :]
        k = tl.load(k_ptr + offs, mask=valid[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale  # [GP, BLOCK_N], fp32
        s = tl.where(valid[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m - m_new)
        l_sum = l_sum * alpha + tl.sum(p, 1)
        v = tl.load(v_ptr + offs, mask=valid[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m = m_new
    empty = l_sum == 0.0  # a split past the last key: weight 0 in the combine
    out = acc / tl.where(empty, 1.0, l_sum)[:, None]
    lse = tl.where(empty, float("-inf"), m + tl.log(l_sum))
    part = (bh * SPLITS + split) * G
    tl.store(o_ptr + (part + rows[:, None]) * D + dims[None, :], out, mask=rows[:, None] < G)
    tl.store(lse_ptr + part + rows, lse, mask=rows < G)


@triton.jit
def _combine_kernel(o_ptr, lse_ptr, out_ptr, G: tl.constexpr, D: tl.constexpr,
                    SPLITS: tl.constexpr, SP: tl.constexpr):
    """Program (b·Hkv + kv, g): out = Σ_s exp(lse_s − lse) · o_s with lse = log Σ_s exp(lse_s)."""
    bh = tl.program_id(0)
    g = tl.program_id(1)
    s = tl.arange(0, SP)
    dims = tl.arange(0, D)
    lse = tl.load(lse_ptr + (bh * SPLITS + s) * G + g, mask=s < SPLITS, other=float("-inf"))
    w = tl.exp(lse - tl.max(lse, 0))  # split 0 always holds the first key: max is finite
    w = w / tl.sum(w, 0)
    o = tl.load(o_ptr + ((bh * SPLITS + s[:, None]) * G + g) * D + dims[None, :],
                mask=s[:, None] < SPLITS, other=0.0)
    out = tl.sum(o * w[:, None], 0)
    tl.store(out_ptr + (bh * G + g) * D + dims, out.to(out_ptr.dtype.element_ty))


def _precision(dtype: torch.dtype) -> str:
    """float32 products as PyTorch computes them: TF32 only where matmuls may use it."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_keys: torch.Tensor,
                     scale: float, splits: int, block_n: int = 64, num_warps: int = 4,
                     num_stages: int = 3) -> torch.Tensor:
    """q [B, Hkv, G, D] over the first `n_keys` (a device int64 [1]) of k, v [B, Hkv, cap, D]
    (contiguous) → [B, Hkv, G, D] in q's dtype. At least one key must be valid. q may be a
    view with a batch stride of its own (the query rows of a fused q/k/v projection)."""
    b, h_kv, g, d = q.shape
    cap = k.shape[2]
    if q.stride()[1:] != (g * d, d, 1):
        q = q.contiguous()
    parts = torch.empty(b * h_kv, splits, g, d, device=q.device, dtype=torch.float32)
    lse = torch.empty(b * h_kv, splits, g, device=q.device, dtype=torch.float32)
    _partial_kernel[(b * h_kv, splits)](
        q, k, v, n_keys, parts, lse, q.stride(0), h_kv, cap, scale, G=g,
        GP=max(16, triton.next_power_of_2(g)), D=d, SPLITS=splits, BLOCK_N=block_n,
        PRECISION=_precision(q.dtype), num_warps=num_warps, num_stages=num_stages)
    out = torch.empty(b, h_kv, g, d, device=q.device, dtype=q.dtype)
    _combine_kernel[(b * h_kv, g)](parts, lse, out, G=g, D=d, SPLITS=splits,
                                   SP=triton.next_power_of_2(splits), num_warps=4)
    return out


@triton.jit
def _rms_norm_kernel(x_ptr, w_ptr, out_ptr, n, eps, BLOCK: tl.constexpr):
    """One row per program: x / sqrt(mean(x²) + eps) · w in float32, one rounding at the end."""
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    keep = cols < n
    x = tl.load(x_ptr + row * n + cols, mask=keep, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=keep, other=0.0).to(tl.float32)
    y = x * tl.rsqrt(tl.sum(x * x, 0) / n + eps) * w
    tl.store(out_ptr + row * n + cols, y.to(out_ptr.dtype.element_ty), mask=keep)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """`engine.core.norms.RMSNorm` for a few rows: one program per row, the row in registers. For
    one row of 4096 PyTorch's fused kernel took ~6 µs on an H200 (profiled once while building
    this) and this one ~1.5 µs (`bench/bench_kv.py --profile-step`); a decode step has nine."""
    n = x.shape[-1]
    x = x.contiguous()
    out = torch.empty_like(x)
    block = triton.next_power_of_2(n)
    _rms_norm_kernel[(x.numel() // n,)](x, weight, out, n, eps, BLOCK=block,
                                        num_warps=max(1, min(16, block // 256)))
    return out


@triton.jit
def _rope_cache_kernel(qkv_ptr, table_ptr, pos_ptr, q_ptr, k_ptr, v_ptr, h, h_kv, cap,
                       D: tl.constexpr, ROPE: tl.constexpr):
    """Program (b, head) over one row of the fused q|k|v projection [B, H + 2·Hkv, D]: rotate
    q and k rows by RoPE at `pos` (rotate-half, table [capacity, 2, D] of cos|sin), then write q
    to q [B, H, D], k and v to the caches [B, Hkv, capacity, D] at `pos`."""
    b = tl.program_id(0)
    head = tl.program_id(1)
    pos = tl.load(pos_ptr)
    dims = tl.arange(0, D)
    row = qkv_ptr + (b * (h + 2 * h_kv) + head) * D
    x = tl.load(row + dims).to(tl.float32)
    if ROPE:
        if head < h + h_kv:
            cos = tl.load(table_ptr + pos * 2 * D + dims).to(tl.float32)
            sin = tl.load(table_ptr + pos * 2 * D + D + dims).to(tl.float32)
            partner = tl.load(row + (dims + D // 2) % D).to(tl.float32)  # x₂ | x₁
            x = x * cos + tl.where(dims < D // 2, -partner, partner) * sin
    y = x.to(q_ptr.dtype.element_ty)
    if head < h:
        tl.store(q_ptr + (b * h + head) * D + dims, y)
    else:
        kv_head = (head - h) % h_kv
        slot = ((b * h_kv + kv_head).to(tl.int64) * cap + pos) * D + dims
        if head < h + h_kv:
            tl.store(k_ptr + slot, y)
        else:
            tl.store(v_ptr + slot, y)


def rope_and_cache(qkv: torch.Tensor, table: torch.Tensor | None, pos: torch.Tensor,
                   k_cache: torch.Tensor, v_cache: torch.Tensor, h: int) -> torch.Tensor:
    """One kernel for what a decode step does between the q|k|v projection and attention:
    qkv [B, H + 2·Hkv, D] (contiguous) → RoPE on q and k (`table` [capacity, 2, D], or None for
    no positions), k and v written into the caches at `pos` (int64 [1]); returns q [B, H, D].
    Same function as `engine.core.positions.apply_rope` and `index_copy_`, rounded once (float32
    inside) instead of after each of apply_rope's three operations."""
    b, rows, d = qkv.shape
    h_kv = k_cache.shape[1]
    q = torch.empty(b, h, d, device=qkv.device, dtype=qkv.dtype)
    _rope_cache_kernel[(b, rows)](qkv, qkv if table is None else table, pos, q, k_cache, v_cache,
                                  h, h_kv, k_cache.shape[2], D=d, ROPE=table is not None,
                                  num_warps=1)
    return q
