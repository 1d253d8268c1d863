"""Attention in blocks of query rows: the same maps as one dense call, in less time where a
mask makes most of the map structural zeros (causal, sliding window).

Each block of `rows` queries reads only the keys its rows may see, so a causal map costs half
the products of a dense one, a sliding window O(T·w), and every block's scores stay in cache.
The maps come back [B, H, Tq, Tk], exactly 0 (scores -inf) outside each block's span, as the
dense path gives them.

    causal, rows = 2:   q 0-1 read keys 0-1 · q 2-3 read keys 0-3 · q 4-5 read keys 0-5
    window w = 2:       q 4-5 read keys 3-5 only

`in_query_blocks` knows nothing of masks or models: the caller says which keys a block of
queries may see (`span`) and runs the textbook attention on that block (`run`). `faster`, for
`engine.core.attention`, picks the route: blocks, or the fused kernel's own causal mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

QUERY_BLOCK = 128  # query rows per block of the recorded path: a block's scores stay in cache

Span = Callable[[int, int], tuple[int, int]]  # queries [s, e) → keys [lo, hi) they may see
# run(s, e, lo, hi) → (out [B, H, e-s, D], weights or None, scores or None) of that block
Run = Callable[[int, int, int, int], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]


def in_query_blocks(q: torch.Tensor, t_k: int, span: Span, run: Run, rows: int = QUERY_BLOCK,
                    need_weights: bool = True, want_scores: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Attention of q [B, H, Tq, D] over Tk keys, one block of `rows` queries at a time.
    Returns out [B, H, Tq, D] and, if asked, weights and scores [B, H, Tq, Tk]."""
    b, h, t_q, _ = q.shape
    out = torch.empty_like(q)  # every block writes its rows
    weights = q.new_zeros(b, h, t_q, t_k) if need_weights else None
    scores = q.new_full((b, h, t_q, t_k), float("-inf")) if want_scores else None
    for s in range(0, t_q, rows):
        e = min(s + rows, t_q)
        lo, hi = span(s, e)
        if hi == lo:  # no key visible to these queries: zero output and weights
            out[:, :, s:e] = 0
            continue
        part_out, part_weights, part_scores = run(s, e, lo, hi)
        out[:, :, s:e] = part_out
        if weights is not None:
            weights[:, :, s:e, lo:hi] = part_weights
        if scores is not None:
            scores[:, :, s:e, lo:hi] = part_scores
    return out, weights, scores


def block_of(t: torch.Tensor, s: int, e: int, lo: int, hi: int) -> torch.Tensor:
    """Rows s..e-1, columns lo..hi-1 of a tensor broadcastable to [.., Tq, Tk]."""
    rows = slice(s, e) if t.shape[-2] > 1 else slice(None)
    cols = slice(lo, hi) if t.shape[-1] > 1 else slice(None)
    return t[..., rows, cols]


def window_blocks_pay(causal: bool, window: int | None, offset: int, t_q: int, t_k: int,
                      device: torch.device) -> bool:
    """A causal sliding window over a long prefill, without recorded maps: blocks of `window`
    rows beat one dense T×T call. Measured (`bench/bench_blocks.py`, w = 512): at 4w tokens the
    blocks take 0.56× the dense call's time on this CPU but 1.7× on an H200, where they win
    from 16w on (0.47×); so the CPU switches above 2w and CUDA above 8w."""
    longer_than = (2 if device.type == "cpu" else 8) * (window or 0)
    return window is not None and causal and offset == 0 and t_q == t_k and t_q > longer_than


def window_rows(window: int, device: torch.device) -> int:
    """Query rows per block of a windowed pass without recorded maps. A block of r rows
    reads r + w - 1 keys, of which each row sees w: smaller blocks waste fewer products, down
    to where the calls' overhead shows. On this CPU, w = 512 (`bench/bench_blocks.py
    --lengths 2048 8000 --repeats 5`, bench/results/blocks_window_rows_cpu.json): 512 rows
    52 ms at 2,048 tokens and 285 ms at 8,000; 128 rows 42 and 173 ms. On a GPU every block
    is a kernel launch: w rows, as measured there."""
    if device.type != "cpu":
        return window
    return max(min(QUERY_BLOCK, window), window // 4)  # a small window: blocks of w rows


def record_blocks_pay(causal: bool, window: int | None, t_q: int, device: torch.device) -> bool:
    """Whether a recorded map is cheaper in query blocks: on the CPU, for a causal or windowed
    map (partly structural zeros, whose products the blocks skip) of more than one block.
    Unmasked, one dense call is faster; on a GPU the blocks' extra kernel launches cost more
    than the skipped products (bench/README.md)."""
    return device.type == "cpu" and t_q > QUERY_BLOCK and (causal or window is not None)


def key_span(spec, s: int, e: int, t_k: int) -> tuple[int, int]:
    """Keys [lo, hi) that queries s .. e-1 may see at all under a MaskSpec's causal and window
    parts (query i sits at absolute position offset + i, key j at j)."""
    lo, hi = 0, t_k
    if spec.causal:
        hi = min(hi, spec.offset + e)
    if spec.window is not None:
        lo = max(0, spec.offset + s - spec.window + 1)
        if not spec.causal:
            hi = min(hi, spec.offset + e - 1 + spec.window)
    return lo, max(lo, hi)


def block_spec(spec, s: int, lo: int, hi: int):
    """A MaskSpec for queries from s on against keys lo .. hi-1 only."""
    return replace(spec, offset=spec.offset + s - lo,
                   key_is_real=None if spec.key_is_real is None else spec.key_is_real[:, lo:hi],
                   keep_keys=None if spec.keep_keys is None else spec.keep_keys[lo:hi])


def blocked(attend, q, k, v, spec, scale: float, rows: int, bias, need_weights: bool,
            want_scores: bool, softcap) -> tuple:
    """`attend` (engine.core.attention.attention) in blocks of `rows` queries, each over the
    keys `spec` lets it see. Returns (out, weights or None, scores or None)."""
    t_k = k.shape[2]

    def run(s, e, lo, hi):
        part = attend(q[:, :, s:e], k[:, :, lo:hi], v[:, :, lo:hi],
                      mask=block_spec(spec, s, lo, hi).dense(e - s, hi - lo, q.device),
                      bias=None if bias is None else block_of(bias, s, e, lo, hi),
                      scale=scale, need_weights=need_weights, keep_scores=want_scores,
                      softcap=softcap)
        return part.out, part.weights, part.scores

    return in_query_blocks(q, t_k, lambda s, e: key_span(spec, s, e, t_k), run, rows,
                           need_weights, want_scores)


def faster(attend, q, k, v, spec, scale: float, bias, need_weights: bool, want_scores: bool,
           softcap) -> tuple | None:
    """(out, weights, scores) of `attend` under `spec` by a route that skips masked work, or
    None when the one dense call is the fastest there is.

    Plain causal attention over a cache's keys plus the new ones needs no mask tensor: a
    prefill (offset 0), a prefill chunk or one decode step (offset = Tk - Tq) are all the
    bottom-right-aligned causal pattern that `attend(is_causal=True)` means."""
    t_q, t_k = q.shape[2], k.shape[2]
    if need_weights and record_blocks_pay(spec.causal, spec.window, t_q, q.device):
        return blocked(attend, q, k, v, spec, scale, QUERY_BLOCK, bias, True, want_scores,
                       softcap)
    if not need_weights and bias is None and window_blocks_pay(
            spec.causal, spec.window, spec.offset, t_q, t_k, q.device):
        # Query blocks of r rows, each over at most r + w - 1 keys: O(T·w).
        return blocked(attend, q, k, v, spec, scale, window_rows(spec.window, q.device), None,
                       False, False, softcap)
    plain = spec.causal and spec.window is None and spec.key_is_real is None
    if plain and spec.keep_keys is None and spec.offset == t_k - t_q:
        r = attend(q, k, v, bias=bias, scale=scale, need_weights=need_weights, is_causal=True,
                   keep_scores=want_scores, softcap=softcap)
        return r.out, r.weights, r.scores
    return None
