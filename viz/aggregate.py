"""Aggregations over heads and layers.

Attention rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers"):
the residual connection is modelled by adding the identity, Ã_l = 0.5·A_l + 0.5·I (rows
renormalised), and attention to the inputs is the product Ã_L ··· Ã_1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FUSIONS = ("mean", "max", "min")


def mean_heads(weights: np.ndarray) -> np.ndarray:
    """Mean over heads. Shapes: [H, Tq, Tk] -> [Tq, Tk] float32.

    Summed in float64 a block of rows at a time: a float64 copy of the maps (2 GB for 4
    heads of 8,000 tokens) took 6 s, and even a float64 result page-faults 0.5 GB."""
    a = np.asarray(weights)
    out = np.empty(a.shape[1:], dtype=np.float32)
    rows = max(1, (1 << 22) // max(1, a.shape[-1]))  # 32 MB of float64 per block
    for i in range(0, a.shape[1], rows):
        out[i:i + rows] = a[:, i:i + rows].mean(axis=0, dtype=np.float64)
    return out


def fuse_heads(weights: np.ndarray, fusion: str = "mean") -> np.ndarray:
    """Combine heads by mean, max or min. Shapes: [H, T, T] (or [T, T]) -> [T, T] float64."""
    a = np.asarray(weights)
    if a.ndim == 2:
        return a.astype(np.float64)
    if fusion not in FUSIONS:
        raise ValueError(f"unknown head fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
    if fusion == "mean":  # summed in float64 without a float64 copy (see mean_heads)
        return a.mean(axis=0, dtype=np.float64)
    return getattr(a, fusion)(axis=0).astype(np.float64)  # max and min are exact


def block_stochastic(a: np.ndarray, b: int) -> np.ndarray:
    """A row-stochastic [T, T] map in blocks of b tokens: entry (I, J) is the attention the
    average query of block I pays to all keys of block J, so rows still sum to 1.

    Rollout in this space is exact when the map is constant within blocks, and approximate
    otherwise. Long inputs use it (app: past ROLLOUT_EXACT_MAX tokens), because a rollout of
    T × T maps costs T³ per layer.

    Shapes: a [T, T] -> [ceil(T/b), ceil(T/b)] float32.
    """
    a = np.asarray(a)
    t = a.shape[-1]
    n = -(-t // b)
    if n * b != t:  # a ragged last block: pad with zeros (they add nothing)
        pad = np.zeros((n * b, n * b), dtype=a.dtype)
        pad[:t, :t] = a
        a = pad
    # [n, n]: all of block I's rows, block J's keys, summed in float64
    sums = np.ascontiguousarray(a).reshape(n, b, n, b).sum(axis=(1, 3), dtype=np.float64)
    rows = np.minimum(b, t - np.arange(n) * b)  # real queries per block (the last is ragged)
    return (sums / rows[:, None]).astype(np.float32)


def rollout_layers(
    layers: Sequence[np.ndarray],
    *,
    fusion: str = "mean",
    residual: float = 0.5,
) -> np.ndarray:
    """Cumulative rollout after each layer.

    Shapes: layers: L arrays [H, T, T] (or [T, T]) -> [L, T, T] float32 where entry l is
    Ã_l ··· Ã_1 with Ã = (1 − residual)·A + residual·I, rows renormalised.
    residual=0 gives the plain product of attention maps.
    """
    if not layers:
        raise ValueError("rollout needs at least one layer")
    out = []
    joint = None
    for i, a in enumerate(layers):
        a = fuse_heads(a, fusion)
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"rollout needs self-attention maps; layer {i} is {a.shape}")
        a = (1.0 - residual) * a + residual * np.eye(a.shape[0])
        a = a / a.sum(axis=-1, keepdims=True)
        joint = a if joint is None else a @ joint  # [T, T]
        out.append(joint)
    return np.stack(out).astype(np.float32)


def rollout(layers: Sequence[np.ndarray], *, fusion: str = "mean", residual: float = 0.5
            ) -> np.ndarray:
    """Attention rollout through all layers. Shapes: L × [H, T, T] -> [T, T] float32."""
    return rollout_layers(layers, fusion=fusion, residual=residual)[-1]


__all__ = ["FUSIONS", "block_stochastic", "fuse_heads", "mean_heads", "rollout", "rollout_layers"]
