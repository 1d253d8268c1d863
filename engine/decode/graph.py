"""Greedy decoding with fixed shapes: one decode step of a decoder-only `Transformer` that a
CUDA graph can capture once and replay for every token.

Why: an eager decode step of the benchmark's 4-layer model launches 107-115 kernels from Python
(~1-1.6 ms of host time at batch 1, bench/README.md), so at batch 1, and under MQA at most
batches, the GPU waits for the CPU. A graph replays the whole step (every layer, the output
projection and the argmax) with one launch. Capture fixes every shape and pointer, so the step
here

- keeps its state on the device: the token to feed (`ids`) and its position (`pos`) are
  tensors that the step itself advances, so replay after replay decodes token after token;
- writes K/V into the engine's own preallocated `KVCache` by index (at `pos`) and attends over
  the valid prefix whose length it reads from device memory (`decode_attention`), never over a
  host-side slice;
- reads RoPE's cos/sin at `pos` from a table built once (`engine.core.attention.rope_table`).

Fewer kernels, same function (to float rounding): q, k and v come from one matmul over the
concatenated projection weights that the model's own pass also uses (`engine.fast.packed`; at batch
1 a matrix-vector product costs its bytes plus a fixed few µs, so three small products cost
more than one large one), as do GeGLU's gate and up; the residual adds ride on the output
projections; on CUDA a norm, and RoPE together with the K/V cache write, are one Triton kernel
each (`engine.decode.triton_kernels`).
The decoder holds the concatenated weights current when it was made: rebuild it after changing
the model's weights.

Decoder-only models with RoPE or no positions and full attention are supported (the Llama
family and the benchmark's models); windows, ALiBi, learned or sinusoidal positions are not.
On the CPU (and for head dimensions the kernels do not take) the same step runs in PyTorch
operations, eagerly: what the tests compare with `Transformer.generate`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.core.attention import Attention, rope_table
from engine.core.kv_cache import KVCache
from engine.core.norms import RMSNorm
from engine.core.positions import apply_rope
from engine.core.transformer import Block, Transformer


@functools.cache
def _triton_decode():
    """engine.decode.triton_kernels, or None where Triton is not installed."""
    try:
        from engine.decode import triton_kernels as triton_decode
    except ImportError:
        return None
    return triton_decode


def default_splits(blocks: int, device: torch.device) -> int:
    """Parts to cut the keys into: the power of two that brings (batch × K/V heads × parts)
    programs closest to one per multiprocessor from below, 1 to 128; 1 off CUDA. Measured on
    an H200 at 32k keys (bench/README.md): more parts than that read no faster, and each part
    writes a float32 partial output that the combine reads back."""
    if device.type != "cuda":
        return 1
    per_block = torch.cuda.get_device_properties(device).multi_processor_count // blocks
    return 1 << min(7, max(0, per_block.bit_length() - 1))


def _split_keys_kernels(q: torch.Tensor):
    """The Triton kernels where they run: CUDA, Triton installed, and a head dimension that
    is a power of two of at least 16 (a tile's width; its matrix product needs 16)."""
    d = q.shape[-1]
    if not q.is_cuda or d < 16 or d & (d - 1):
        return None
    return _triton_decode()


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_keys: torch.Tensor,
                     scale: float, splits: int = 1, valid: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """One decode step's attention with the number of valid keys in device memory.

    q [B, Hkv, G, D] (the G query heads sharing each K/V head, stacked as rows); k, v the
    whole cache buffers [B, Hkv, capacity, D]; n_keys int64 [1]: the first n_keys keys are
    valid. Returns [B, Hkv, G, D]. On CUDA with Triton: split-keys kernels that read only the
    valid keys (`engine.decode.triton_kernels`). Elsewhere: SDPA over the whole buffer with `valid`
    ([capacity] bool, computed from n_keys if not given) as the mask; no K/V head is widened on
    either path.
    """
    kernels = _split_keys_kernels(q)
    if kernels is not None:
        return kernels.decode_attention(q, k, v, n_keys, scale, splits)
    if valid is None:
        valid = torch.arange(k.shape[2], device=k.device) < n_keys
    return F.scaled_dot_product_attention(q, k, v, attn_mask=valid[None], scale=scale)


@dataclass
class _FusedLayer:
    """One block's concatenated projections: q|k|v, and gate|up for GeGLU (else None)."""

    qkv: tuple[torch.Tensor, torch.Tensor | None]
    gate_up: tuple[torch.Tensor, torch.Tensor | None] | None

    @classmethod
    def of(cls, block: Block) -> _FusedLayer:
        a, ffn = block.self_attn, block.ffn  # the packed weights the model's own pass uses
        gate_up = ffn.packed.get([ffn.gate, ffn.up]) if ffn.act == "geglu" else None
        return cls(a.packed.get(a.qkv_linears()), gate_up)


def check_supported(model: Transformer) -> None:
    """Raise ValueError for a model the fixed-shape step does not implement."""
    cfg = model.cfg
    if cfg.arch != "decoder":
        raise ValueError(f"graph decoding runs decoder-only models, not {cfg.arch!r}")
    if cfg.positions not in ("rope", "none"):
        raise ValueError(f"graph decoding supports RoPE or no positions, not {cfg.positions!r}")
    if any(cfg.layer_window(i) is not None for i in range(cfg.n_layers_total)):
        raise ValueError("graph decoding supports full attention only (no sliding windows)")
    # The fixed-shape step computes plain RoPE, unscaled scores and an uncapped head: refuse
    # what it would silently get wrong.
    if any(cfg.layer_rope_scaling(i) is not None for i in range(cfg.n_layers_total)):
        raise ValueError("graph decoding does not implement RoPE scaling (Llama 3.1 and "
                         "others): use generate(..., graph=False)")
    if cfg.attn_softcap is not None or cfg.logits_softcap is not None:
        raise ValueError("graph decoding does not implement soft-capping (Gemma 2): use "
                         "generate(..., graph=False)")
    if cfg.logits_bias:
        raise ValueError("graph decoding does not add a final logits bias")


class GraphDecoder:
    """Greedy decoding of `model` into `cache` (allocated: `model.new_cache(capacity, batch)`)
    one fixed-shape step at a time, eagerly or (CUDA) as one captured graph.

        dec = GraphDecoder(model, model.new_cache(T + n, batch=B))
        first = dec.prefill(ids).argmax(-1)   # the engine's own prefill into the cache
        dec.capture()                         # CUDA only; optional
        rest = dec.decode(n - 1)              # [B, n - 1]: equals generate(ids, n)[:, 1:]

    The cache stays the engine's: after `decode` its length counts the new tokens, and
    `model.extend` can continue from it (as long as it does not grow past its capacity, which
    would move its buffers away from the captured graph).
    """

    def __init__(self, model: Transformer, cache: KVCache, splits: int | None = None):
        check_supported(model)
        layer = cache.self_attn[0]
        if layer.k is None:
            raise ValueError("the cache must be allocated: model.new_cache(capacity, batch=B)")
        self.model, self.cache = model, cache
        cfg = model.cfg
        self.batch, self.capacity = layer.k.shape[0], layer.k.shape[2]
        device = layer.k.device
        self.splits = splits or default_splits(self.batch * cfg.kv_heads, device)
        # The Triton kernels where they run (CUDA, Triton, head dimension ≥ 16, a power of 2).
        self._kernels = _split_keys_kernels(layer.k[:1, :1, :1])
        self.layers = [_FusedLayer.of(b) for b in model.decoder.layers]
        # [capacity, 2, D] cos|sin per RoPE base: one gather per base and step.
        self.rope = {}
        if cfg.positions == "rope":
            for base in {a.self_attn.rope_base for a in model.decoder.layers}:
                cos, sin = rope_table(0, self.capacity, cfg.head_dim, base, layer.k)
                self.rope[base] = torch.stack([cos, sin], dim=1)
        self.ids = torch.zeros(self.batch, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        # tokens[:, p] is the token at position p that a step produced (p ≤ capacity).
        self.tokens = torch.zeros(self.batch, self.capacity + 1, dtype=torch.long, device=device)
        self._key_index = torch.arange(self.capacity, device=device)
        self.length = cache.length  # tokens in the cache (host-side bookkeeping)
        self.logits: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None

    # -- state ----------------------------------------------------------------------------
    def prefill(self, ids: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Feed ids [B, T] through the engine's prefill (`Transformer.extend`) into the cache and
        start decoding after them. Returns the last position's logits [B, vocab]."""
        logits = self.model.extend(ids, self.cache, chunk=chunk)
        self.start(logits.argmax(-1, keepdim=True))
        return logits

    def start(self, next_ids: torch.Tensor) -> None:
        """Decode on from whatever the cache holds, feeding next_ids [B, 1] first."""
        self.length = self.cache.length
        for layer in self.cache.self_attn:
            # The masked path reads the whole buffer: never-written slots (torch.empty) may
            # hold NaN, and a weight of 0 times NaN is NaN.
            layer.k[:, :, self.length :].zero_()
            layer.v[:, :, self.length :].zero_()
        self.ids.copy_(next_ids)
        self.pos.fill_(self.length)

    # -- one step -------------------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> torch.Tensor:
        """Feed `ids` at position `pos`, then set `ids` to the greedy next token and advance
        `pos`. Fixed shapes, no host synchronisation: capturable. Returns the logits
        [B, vocab]. Does not touch `length` (the host cannot see replays)."""
        m = self.model
        n_keys = self.pos + 1  # keys valid once this token's K/V are written
        valid = None if self._kernels else self._key_index < n_keys
        x = m.decoder.embed(self.ids)  # [B, 1, d_model]; positions are RoPE's or none
        for i, (block, fused) in enumerate(zip(m.decoder.layers, self.layers, strict=True)):
            attend = functools.partial(self._attend, block.self_attn, fused, i=i, n_keys=n_keys,
                                       valid=valid)
            x = _residual(block, x, self._norm(block.self_norm), block.self_post, attend,
                          block.self_attn.o_proj)
            if fused.gate_up is None:
                x, _ = block.sublayer(x, self._norm(block.ffn_norm), block.ffn_post, block.ffn)
            else:
                x = _residual(block, x, self._norm(block.ffn_norm), block.ffn_post,
                              functools.partial(_geglu, fused), block.ffn.down)
        h = x if m.decoder.norm is None else self._norm(m.decoder.norm)(x)
        logits = m.lm_head(h[:, -1])  # [B, vocab]
        nxt = logits.argmax(-1, keepdim=True)  # [B, 1]
        self.ids.copy_(nxt)
        self.tokens.index_copy_(1, n_keys, nxt)
        self.pos.add_(1)
        self.logits = logits
        return logits

    def _attend(self, attn: Attention, fused: _FusedLayer, h: torch.Tensor, i: int,
                n_keys: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Self-attention of one new token per row, before the output projection:
        h [B, 1, d_model] → [B, 1, H·D]."""
        b = h.shape[0]
        n_h, n_kv, d = attn.n_heads, attn.n_kv_heads, attn.d_head
        qkv = F.linear(h[:, 0], *fused.qkv).view(b, n_h + 2 * n_kv, d)
        layer = self.cache.self_attn[i]
        if self._kernels is not None and attn.q_norm is None:
            # RoPE on q and k and the K/V cache write in one kernel (reads the table at pos).
            q = self._kernels.rope_and_cache(qkv, self.rope.get(attn.rope_base), self.pos,
                                             layer.k, layer.v, n_h)
        else:
            q = self._rope_and_cache(attn, qkv, layer)
        q = q.view(b, n_kv, n_h // n_kv, d)  # [B, Hkv, G, D]: heads kv·G .. kv·G+G-1
        out = decode_attention(q, layer.k, layer.v, n_keys, attn.cfg.scale, self.splits, valid)
        return out.reshape(b, 1, n_h * d)

    def _rope_and_cache(self, attn: Attention, qkv: torch.Tensor, layer) -> torch.Tensor:
        """q/k norms and RoPE on q and k, K/V written into the cache at `pos`, in PyTorch
        operations: qkv [B, H + 2·Hkv, D] → q [B, H, D]."""
        n_h, n_kv = attn.n_heads, attn.n_kv_heads
        qk, v = qkv[:, : n_h + n_kv], qkv[:, n_h + n_kv :]  # [B, H + Hkv, D], [B, Hkv, D]
        if attn.q_norm is not None:
            qk = torch.cat([attn.q_norm(qk[:, :n_h]), attn.k_norm(qk[:, n_h:])], dim=1)
        if self.rope:
            cos_sin = self.rope[attn.rope_base].index_select(0, self.pos)  # [1, 2, D] at pos
            qk = apply_rope(qk, cos_sin[:, 0], cos_sin[:, 1])  # q and k in one rotation
        layer.k.index_copy_(2, self.pos, qk[:, n_h:, None])  # [B, Hkv, 1, D] at pos
        layer.v.index_copy_(2, self.pos, v[:, :, None])
        return qk[:, :n_h]

    def _norm(self, norm: nn.Module):
        """The norm as a function of x: the Triton kernel for an RMSNorm where the kernels
        run (a decode step's nine norms take ~15 µs at batch 1, `bench/bench_kv.py --profile-step`),
        else the module itself."""
        if self._kernels is None or not isinstance(norm, RMSNorm):
            return norm
        return lambda x: (self._kernels.rms_norm(x, norm.weight, norm.eps)
                          if x.dtype == norm.weight.dtype else norm(x))

    # -- many steps -----------------------------------------------------------------------
    def capture(self) -> None:
        """Record `step` as a CUDA graph; `decode` then replays it. The warm-up steps that
        capture needs (and that compile the Triton kernels) run for real, so the state they
        advance is put back: their K/V land in slots the next step overwrites."""
        ids, pos, tokens = self.ids.clone(), self.pos.clone(), self.tokens.clone()
        side = torch.cuda.Stream(self.ids.device)
        side.wait_stream(torch.cuda.current_stream(self.ids.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self.step()
                self.ids.copy_(ids)
                self.pos.copy_(pos)
        torch.cuda.current_stream(self.ids.device).wait_stream(side)
        self.tokens.copy_(tokens)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.step()
        self.graph = graph

    def advance(self) -> None:
        """One step: the graph's replay if captured, else `step` eagerly."""
        if self.graph is not None:
            self.graph.replay()
        else:
            self.step()

    def decode(self, n: int, on_step: Callable[[int], None] | None = None) -> torch.Tensor:
        """n greedy steps; returns the n tokens they produced [B, n]. `on_step(i)` runs after
        step i is queued (the host does not wait for the GPU between steps)."""
        if self.length + n > self.capacity:
            raise ValueError(f"{self.length} + {n} tokens exceed the cache's capacity "
                             f"{self.capacity}")
        for i in range(n):
            self.advance()
            if on_step is not None:
                on_step(i)
        self._sync_cache(self.length + n)
        return self.tokens[:, self.length - n + 1 : self.length + 1].clone()

    def _sync_cache(self, length: int) -> None:
        """Tell the engine's cache how many tokens it now holds."""
        self.length = length
        for layer in self.cache.self_attn:
            layer.length = length

    def generate(self, ids: torch.Tensor, n: int, chunk: int | None = None) -> torch.Tensor:
        """`Transformer.generate(ids, n)` (greedy, no EOS) through this decoder: [B, n]."""
        first = self.prefill(ids, chunk).argmax(-1, keepdim=True)
        return torch.cat([first, self.decode(n - 1)], dim=1)


def _geglu(fused: _FusedLayer, h: torch.Tensor) -> torch.Tensor:
    """GeGLU before the down projection, gate and up from one matmul: the same function as
    `FeedForward.forward` without `down`."""
    gate, up = F.linear(h, *fused.gate_up).chunk(2, dim=-1)
    return F.gelu(gate, approximate="tanh") * up


def _residual(block: Block, x: torch.Tensor, norm: nn.Module, post: nn.Module | None,
              inner, proj: nn.Linear) -> torch.Tensor:
    """One sublayer, x → x + proj(inner(norm(x))) (pre-norm), as `Block.sublayer` computes it.
    Without a post-norm or a bias the residual add rides on the projection's matmul, in place
    (`addmm_` into x: one kernel; out-of-place `addmm` first copies x, which is two again);
    otherwise `Block.sublayer` itself runs. x is the step's own residual stream, so writing
    into it is safe."""
    if not (block.pre and post is None and proj.bias is None):
        return block.sublayer(x, norm, post, lambda h: proj(inner(h)))[0]
    y = inner(norm(x))  # [B, 1, n]
    x[:, 0].addmm_(y[:, 0], proj.weight.t())
    return x
