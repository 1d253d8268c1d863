"""Per-head summary numbers of attention maps, in numpy (their layers × heads figure
is viz.figures.metrics).

Metrics (every one a mean over query rows of one head's map A [Tq, Tk]):
- entropy: −Σ_k A log A in nats; 0 = one key, log(Tk) = uniform (cf. Clark et al., 2019,
  "What Does BERT Look At?").
- distance: Σ_k A[q, k]·|q − k|, mean attention distance in positions.
- prev_token: A[q, q−1] over q >= 1, the previous-token share.
- first_token: A[q, 0] over q >= 1, the first-token ("attention sink") share
  (Xiao et al., 2023); query 0 is left out because under a causal mask it must look at 0.
- self: A[q, q], the share a token keeps for itself.
distance, prev_token and self are defined for self-attention only (None for cross attention).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

METRICS = ("entropy", "distance", "prev_token", "first_token", "self")
METRIC_TITLES = {
    "entropy": "entropy (nats)",
    "distance": "mean attention distance (positions)",
    "prev_token": "previous-token share",
    "first_token": "first-token (sink) share",
    "self": "self share",
}
_KEY = re.compile(r"^(?P<block>.+)\.(?P<layer>\d+)$")


def split_key(key: str) -> tuple[str, int]:
    """'decoder.cross.3' -> ('decoder.cross', 3)."""
    m = _KEY.match(key)
    if not m:
        raise ValueError(f"record key {key!r} is not '<block>.<layer>'")
    return m["block"], int(m["layer"])


def head_metric_arrays(
    weights: np.ndarray, n_real: int | None = None, self_attention: bool | None = None
) -> dict[str, np.ndarray | None]:
    """All metrics for every head of one layer.

    Shapes: weights [H, Tq, Tk] -> {metric: [H] float32, or None where undefined}.
    n_real crops queries and keys to the first n_real positions (padding excluded).
    self_attention defaults to Tq == Tk.
    """
    a = np.asarray(weights, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"expected [H, Tq, Tk], got shape {a.shape}")
    if n_real is not None:
        a = a[:, :n_real, :n_real]
    _, tq, tk = a.shape
    self_attention = (tq == tk) if self_attention is None else self_attention
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(a > 0, a * np.log(a), 0.0)
    out: dict[str, np.ndarray | None] = {"entropy": (-plogp.sum(-1)).mean(-1)}
    rows = slice(1, None) if tq > 1 else slice(None)
    out["first_token"] = a[:, rows, 0].mean(-1)
    if self_attention:
        q = np.arange(tq)[:, None]
        kk = np.arange(tk)[None, :]
        out["distance"] = (a * np.abs(q - kk)).sum(-1).mean(-1)
        out["prev_token"] = (a[:, np.arange(1, tq), np.arange(tq - 1)].mean(-1)
                             if tq > 1 else np.zeros(a.shape[0]))
        out["self"] = np.diagonal(a, axis1=1, axis2=2).mean(-1)
    else:
        out.update(distance=None, prev_token=None, self=None)
    return {m: (None if v is None else v.astype(np.float32)) for m, v in out.items()}


def head_metrics(
    attn: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    n_real: int | None = None,
    block: str = "decoder.self",
) -> list[dict]:
    """Tidy table, one row per head: block, layer, head and every metric.

    Shapes: attn {"encoder.self.0": [H, Tq, Tk], ...} (a record's arrays) or a list of
    [H, Tq, Tk] per layer (then named `block`). Returns list[dict]; pandas.DataFrame(rows)
    gives a table.
    """
    items = (attn.items() if isinstance(attn, Mapping)
             else ((f"{block}.{i}", a) for i, a in enumerate(attn)))
    rows = []
    for key, a in items:
        blk, layer = split_key(key)
        vals = head_metric_arrays(a, n_real=n_real, self_attention="cross" not in blk)
        for h in range(np.shape(a)[0]):
            row = {"block": blk, "layer": layer, "head": h}
            row.update({m: (None if vals[m] is None else float(vals[m][h])) for m in METRICS})
            rows.append(row)
    return rows


def metrics_grid(rows: Sequence[dict], metric: str, block: str | None = None) -> np.ndarray:
    """Layers × heads array of one metric. Shape: [L, H] float32 (NaN where undefined)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    block = block or rows[0]["block"]
    sel = [r for r in rows if r["block"] == block]
    if not sel:
        raise ValueError(f"no rows for block {block!r}")
    n_l = max(r["layer"] for r in sel) + 1
    n_h = max(r["head"] for r in sel) + 1
    grid = np.full((n_l, n_h), np.nan, dtype=np.float32)
    for r in sel:
        if r[metric] is not None:
            grid[r["layer"], r["head"]] = r[metric]
    return grid


__all__ = [
    "METRICS", "head_metric_arrays", "head_metrics", "metrics_grid",
    "split_key",
]
