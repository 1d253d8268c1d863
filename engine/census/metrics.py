"""Per-head numbers of one text's attention maps, in torch: the Head metrics tab's
definitions (viz/metrics.py, in numpy), restated here because the engine may not import viz,
and fast enough for a long input's every layer (about 0.07 s for 4 heads of 2,041 tokens
against viz's 0.6 s): the census and the long-input pass read them from here.
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
import torch

METRICS = ("entropy", "distance", "prev_token", "first_token", "self")


@torch.inference_mode()
def text_head_metrics(weights: np.ndarray | torch.Tensor, n_real: int | None = None,
                      self_attention: bool = True) -> dict[str, np.ndarray]:
    """Every metric for every head of one block, for one text.

    Shapes: weights [H, Tq, Tk] (a record's padded map) → {metric: [H] float64}; NaN where
    a metric is undefined (cross attention). `n_real` crops queries and keys to the text's
    first n_real positions (right padding excluded).
    """
    a = torch.as_tensor(weights)
    if a.ndim != 3:
        raise ValueError(f"expected one block's maps [H, Tq, Tk], got shape {tuple(a.shape)}")
    if n_real is not None:
        a = a[:, :n_real, :n_real]  # [H, n, n]
    a = a.float()
    n_heads, t_q, t_k = a.shape
    # Row sums a block of queries at a time: the temporaries stay a few MB, not [H, Tq, Tk].
    block = max(1, (1 << 20) // max(1, n_heads * t_k))
    pos_k = torch.arange(t_k, device=a.device, dtype=torch.float32)
    ent = torch.empty(n_heads, t_q, device=a.device)
    dist = torch.empty(n_heads, t_q, device=a.device)
    for i in range(0, t_q, block):
        rows_a = a[:, i:i + block]  # [H, r, Tk]
        # 0·log 0 = 0 (xlogy): a masked (exactly zero) key adds nothing to the entropy.
        ent[:, i:i + block] = -torch.special.xlogy(rows_a, rows_a).sum(-1)
        if self_attention:  # |q − k| for these rows, exact below 2**24
            gap = (torch.arange(i, i + rows_a.shape[1], device=a.device,
                                dtype=torch.float32)[:, None]
                   - pos_k[None, :]).abs()
            dist[:, i:i + block] = torch.einsum("hqk,qk->hq", rows_a, gap)
    # A single-token text has no q ≥ 1: its only row (q = 0) stands in, as in viz.
    rows = slice(1, None) if t_q > 1 else slice(None)
    out = {"entropy": ent.double().mean(-1), "first_token": a[:, rows, 0].double().mean(-1)}
    if not self_attention:
        nan = torch.full((n_heads,), float("nan"), dtype=torch.float64)
        out.update(distance=nan, prev_token=nan.clone(), self=nan.clone())
        return {m: out[m].cpu().numpy() for m in METRICS}
    out["distance"] = dist.double().mean(-1)
    q = torch.arange(1, t_q, device=a.device)
    out["prev_token"] = (a[:, q, q - 1].double().mean(-1) if t_q > 1
                         else torch.zeros(n_heads, dtype=torch.float64))
    out["self"] = torch.diagonal(a, dim1=1, dim2=2).double().mean(-1)
    return {m: out[m].cpu().numpy() for m in METRICS}
