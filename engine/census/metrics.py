"""Per-head numbers of one text's attention maps, in numpy: the Head metrics tab's
definitions (viz/metrics.py), restated here because the engine may not import viz.
`tests/engine/test_census_metrics.py` checks both agree on random maps.

Every metric is a mean over the real query rows of one head's map A [Tq, Tk], cropped to
the text's real tokens (padding never counts):
- entropy: −Σ_k A log A in nats (0 = one key, log Tk = uniform; Clark et al., 2019).
- distance: Σ_k A[q, k]·|q − k|, the mean attention distance in positions.
- prev_token: A[q, q − 1] over q ≥ 1, the previous-token share.
- first_token: A[q, 0] over q ≥ 1, the first-token ("attention sink") share (Xiao et al.,
  2023); query 0 is left out because under a causal mask it can only look at itself.
- self: A[q, q], the share a token keeps for itself.
distance, prev_token and self are defined for self-attention only (NaN for cross attention).
"""

from __future__ import annotations

import numpy as np

METRICS = ("entropy", "distance", "prev_token", "first_token", "self")


def text_head_metrics(weights: np.ndarray, n_real: int | None = None,
                      self_attention: bool = True) -> dict[str, np.ndarray]:
    """Every metric for every head of one block, for one text.

    Shapes: weights [H, Tq, Tk] (a record's padded map) → {metric: [H] float64}; NaN where
    a metric is undefined (cross attention). `n_real` crops queries and keys to the text's
    first n_real positions (right padding excluded).
    """
    a = np.asarray(weights, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"expected one block's maps [H, Tq, Tk], got shape {a.shape}")
    if n_real is not None:
        a = a[:, :n_real, :n_real]  # [H, n, n]
    n_heads, t_q, t_k = a.shape
    # 0·log 0 = 0: a masked (exactly zero) key adds nothing to the entropy.
    safe = np.where(a > 0, a, 1.0)
    entropy = -(a * np.log(safe)).sum(-1).mean(-1)
    # A single-token text has no q ≥ 1: its only row (q = 0) stands in, as in viz.
    rows = slice(1, None) if t_q > 1 else slice(None)
    out = {"entropy": entropy, "first_token": a[:, rows, 0].mean(-1)}
    if not self_attention:
        nan = np.full(n_heads, np.nan)
        out.update(distance=nan, prev_token=nan.copy(), self=nan.copy())
        return {m: out[m] for m in METRICS}
    gap = np.abs(np.arange(t_q)[:, None] - np.arange(t_k)[None, :])  # [Tq, Tk]
    out["distance"] = (a * gap).sum(-1).mean(-1)
    q = np.arange(1, t_q)
    out["prev_token"] = a[:, q, q - 1].mean(-1) if t_q > 1 else np.zeros(n_heads)
    out["self"] = np.diagonal(a, axis1=1, axis2=2).mean(-1)
    return {m: out[m] for m in METRICS}
