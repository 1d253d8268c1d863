"""Tables computed once and grown by doubling (RoPE's cos and sin per position).

A decode step slices a kept table instead of recomputing angles or copying from host memory,
which would stall the GPU queue. Removing this module changes only speed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_TABLES: dict[tuple, tuple[torch.Tensor, ...]] = {}


def grown_table(key: tuple, rows: int,
                build: Callable[[int], tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """The tensors `build(size)` made for `key` with at least `rows` rows, rebuilt at twice the
    size (at least 256) when too short."""
    table = _TABLES.get(key)
    if table is None or table[0].shape[0] < rows:
        size = max(rows, 256 if table is None else 2 * table[0].shape[0])
        # Built as ordinary tensors even inside an inference-mode pass: a table made there
        # would be an inference tensor, which a later pass under autograd (training) may not
        # save for backward.
        with torch.inference_mode(False), torch.no_grad():
            table = build(size)
        _TABLES[key] = table
    return table


def grown(buf: torch.Tensor | None, like: torch.Tensor, length: int, needed: int,
          capacity: int) -> torch.Tensor:
    """A KV-cache buffer [B, Hkv, C, D] with room for `needed` positions: `buf` itself, or a
    new one of max(capacity, needed, 2C) positions holding `buf`'s first `length`. Doubling
    makes a decode step write one slice instead of concatenating the whole history."""
    if buf is not None and needed <= buf.shape[2]:
        return buf
    size = max(capacity, needed, 0 if buf is None else 2 * buf.shape[2])
    new = like.new_empty(like.shape[0], like.shape[1], size, like.shape[3])
    if buf is not None:
        new[:, :, :length] = buf[:, :, :length]
    return new
