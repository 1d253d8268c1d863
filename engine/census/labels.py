"""A head's `type` from its census means: the first rule that holds, in this order.

| type | rule (means over the corpus; induction from the probe) |
|---|---|
| induction | induction ≥ 0.30 (the probe ran) |
| previous-token | prev_token_mean ≥ 0.50 |
| sink | first_token_mean ≥ 0.50 |
| self | self_mean ≥ 0.50 |
| local | distance_mean ≤ 2.0 positions |
| broad | entropy_mean ≥ 0.70 × entropy_uniform (uniform attention's entropy) |
| mixed | none of the above |

`entropy_uniform` is the mean over texts of the entropy uniform attention over the keys a
query may see would have: log n for a text of n tokens without a causal mask, the mean of
log(q + 1) over queries q = 0 … n − 1 under one (sliding windows are not modelled: texts of
the census are short against them). A ratio, because entropy grows with the length: 2 nats is
broad at 10 tokens and sharp at 500.

Why these numbers: a share of one half means the head puts more weight on that one key than
on all the others together; random heads score about 1/T on the probe (T = 101), the
induction heads of Olsson et al. 0.3-0.9. Cross-attention heads have no distance,
previous-token or self share: only sink, broad and mixed apply.
"""

from __future__ import annotations

import math

import numpy as np

INDUCTION = 0.30
PREV_TOKEN = 0.50
SINK = 0.50
SELF = 0.50
LOCAL_DISTANCE = 2.0
BROAD_ENTROPY = 0.70
TYPES = ("induction", "previous-token", "sink", "self", "local", "broad", "mixed")
THRESHOLDS = {"induction": INDUCTION, "prev_token_mean": PREV_TOKEN,
              "first_token_mean": SINK, "self_mean": SELF,
              "distance_mean_max": LOCAL_DISTANCE, "entropy_over_uniform": BROAD_ENTROPY}


def uniform_entropy(n_tokens: int, causal: bool) -> float:
    """Mean over queries of the entropy of uniform attention over the keys it may see."""
    if not causal:
        return math.log(n_tokens)
    return math.lgamma(n_tokens + 1) / n_tokens  # mean of log(q + 1), q = 0 … n − 1


def label(row: dict) -> str:
    """The `type` of one head from its heads.parquet values (NaN = undefined)."""
    def at_least(name: str, threshold: float) -> bool:
        value = row.get(name)
        return value is not None and not np.isnan(value) and value >= threshold

    if at_least("induction", INDUCTION):
        return "induction"
    if at_least("prev_token_mean", PREV_TOKEN):
        return "previous-token"
    if at_least("first_token_mean", SINK):
        return "sink"
    if at_least("self_mean", SELF):
        return "self"
    distance = row.get("distance_mean")
    if distance is not None and not np.isnan(distance) and distance <= LOCAL_DISTANCE:
        return "local"
    uniform = row.get("entropy_uniform") or 0.0
    if uniform > 0 and row["entropy_mean"] >= BROAD_ENTROPY * uniform:
        return "broad"
    return "mixed"
