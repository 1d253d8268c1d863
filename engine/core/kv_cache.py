"""A KV cache that stores n_kv_heads (not n_heads) per layer, in buffers preallocated and
grown by doubling (`engine.fast.tables.grown`): a decode step writes one slice."""

from __future__ import annotations

import torch

from engine.fast.tables import grown


class LayerCache:
    """K and V of one attention layer: [B, Hkv, capacity, D] each, `length` of them filled."""

    def __init__(self, capacity: int = 256):
        self.capacity = capacity
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.length = 0

    def allocate(self, batch: int, n_kv_heads: int, d_head: int, dtype: torch.dtype,
                 device: torch.device | str) -> None:
        """Reserve [B, Hkv, capacity, D] for K and for V now rather than at the first append,
        so that the memory is taken (and can be measured) before any token arrives."""
        shape = (batch, n_kv_heads, self.capacity, d_head)
        self.k = torch.empty(shape, dtype=dtype, device=device)
        self.v = torch.empty(shape, dtype=dtype, device=device)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add [B, Hkv, t, D] and return views of every key and value so far."""
        if self.k is not None and (self.k.shape[:2], self.k.shape[3]) != (k.shape[:2], k.shape[3]):
            raise ValueError(
                f"the cache holds [batch, kv heads, *, d_head] = {tuple(self.k.shape[:2])} and "
                f"{self.k.shape[3]}, but keys of shape {tuple(k.shape)} arrived")
        needed = self.length + k.shape[2]
        self.k = grown(self.k, k, self.length, needed, self.capacity)
        self.v = grown(self.v, v, self.length, needed, self.capacity)
        self.k[:, :, self.length : needed] = k
        self.v[:, :, self.length : needed] = v
        self.length = needed
        return self.view()

    def view(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    @property
    def bytes_used(self) -> int:
        """Bytes of the filled part (what the formula counts)."""
        if self.k is None:
            return 0
        per_token = self.k[:, :, :1].numel() * self.k.element_size()
        return 2 * per_token * self.length

    @property
    def bytes_allocated(self) -> int:
        if self.k is None:
            return 0
        return 2 * self.k.numel() * self.k.element_size()


class KVCache:
    """One LayerCache per decoder layer for self-attention, and one per layer for the
    cross-attention K/V of the encoder memory (computed once per sequence)."""

    def __init__(self, n_layers: int, capacity: int = 256, cross: bool = False):
        self.self_attn = [LayerCache(capacity) for _ in range(n_layers)]
        self.cross_attn = [LayerCache(capacity) for _ in range(n_layers)] if cross else None

    def allocate(self, batch: int, n_kv_heads: int, d_head: int, dtype: torch.dtype,
                 device: torch.device | str) -> KVCache:
        """Reserve every self-attention layer's K/V buffers now (see LayerCache.allocate)."""
        for c in self.self_attn:
            c.allocate(batch, n_kv_heads, d_head, dtype, device)
        return self

    @property
    def length(self) -> int:
        return self.self_attn[0].length

    @property
    def capacity(self) -> int:
        """Tokens per sequence the self-attention buffers hold before they must grow."""
        c = self.self_attn[0]
        return c.capacity if c.k is None else c.k.shape[2]

    @property
    def bytes_used(self) -> int:
        """Self-attention K/V bytes: 2 · layers · Hkv · D · bytes · tokens · batch."""
        return sum(c.bytes_used for c in self.self_attn)

    @property
    def bytes_allocated(self) -> int:
        total = sum(c.bytes_allocated for c in self.self_attn)
        if self.cross_attn:
            total += sum(c.bytes_allocated for c in self.cross_attn)
        return total
