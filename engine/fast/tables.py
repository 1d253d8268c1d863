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
        table = build(size)
        _TABLES[key] = table
    return table
