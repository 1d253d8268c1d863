"""The self-attention worked example of `seeds/001_*.txt` §2 (after Raimi Karim's "Illustrated:
Self-Attention"), computed step by step, plus a two-head extension (Vaswani et al., 2017, §3.2.2).

    X [3, 4] ─┬─ · W_Q [4, 3] → Q ─┐
              ├─ · W_K [4, 3] → K ─┴─ Q Kᵀ → scores [3, 3] ─ (· 1/√d_k?) ─ softmax → weights
              └─ · W_V [4, 3] → V ──────────────────────────────────────── weights · V → outputs

The seed computes the exact softmax, then replaces it "for readability" by a hand-rounded
matrix [[0, .5, .5], [0, 1, 0], [0, .9, .1]] before forming the weighted values. This module
keeps the two paths apart: `weights`, `weighted_values`, `outputs` are exact; every key that
starts with `seed_` comes from the seed's rounded weights.

Multi-head part (not in the seed, whose §1 only describes it): two heads of d_head = 3.
Head 1 uses the single-head matrices (the seed's, or the caller's), head 2 the fixed
`SECOND_HEAD` matrices below; W^O [6, 4] maps the concatenation back to d_model = 4.
The heads are formed the way implementations do it: one projection X · [W_Q¹ | W_Q²] of
width 6, split into two blocks of 3 columns; head 1's block equals the single-head Q.
(Heads are counted from 1 here, as a reader counts them; arrays index them from 0.)

Pure torch, float64 (the seed prints float32; both agree to the printed digits).
"""

from __future__ import annotations

import math

import torch

DTYPE = torch.float64

# §2-1 and §2-2 of the seed.
SEED_X = [
    [1, 0, 1, 0],  # input 1
    [0, 2, 0, 2],  # input 2
    [1, 1, 1, 1],  # input 3
]
SEED_W_KEY = [[0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 1, 0]]
SEED_W_QUERY = [[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 1]]
SEED_W_VALUE = [[0, 2, 0], [0, 3, 0], [1, 0, 3], [1, 1, 0]]
# §2-5: the seed's hand-rounded softmax ("For readability, approximate the above as follows").
SEED_ROUNDED_WEIGHTS = [[0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.0, 0.9, 0.1]]

# Head 2 of the multi-head part: small integers chosen so that it looks elsewhere than
# head 1 (its query 1 attends to inputs 1 and 3; head 1's query 1 to inputs 2 and 3).
SECOND_HEAD = {
    "w_query": [[0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]],
    "w_key": [[1, 0, 0], [0, 0, 1], [0, 1, 1], [0, 0, 0]],
    "w_value": [[1, 0, 1], [0, 1, 0], [0, 0, 2], [1, 0, 0]],
}
# W^O [H·d_head = 6, d_model = 4]: head 1's three dimensions go to output dimensions 1-3,
# head 2's to dimensions 4, 1 and 2 — a plain mix that can be checked by hand.
SEED_W_OUT = [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
    [1, 0, 0, 0],
    [0, 1, 0, 0],
]

TOKENS = ["input 1", "input 2", "input 3"]


def as_matrix(value, name: str, default) -> torch.Tensor:
    """A 2-D float64 tensor from a tensor, array or nested list; `default` when None."""
    value = default if value is None else value
    if isinstance(value, torch.Tensor):
        t = value.detach().to(DTYPE)
    else:
        t = torch.tensor(value, dtype=DTYPE)  # copies: a read-only numpy array is fine
    if t.ndim != 2:
        raise ValueError(f"{name} must be a matrix, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} has an empty or non-finite cell: every cell needs a number")
    return t.clone()


def _same(a: torch.Tensor, b) -> bool:
    b = torch.as_tensor(b, dtype=DTYPE)
    return a.shape == b.shape and bool(torch.equal(a, b))


def attention_steps(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: bool
) -> dict[str, torch.Tensor | float]:
    """Scores, (scaled) softmax weights, weighted values and outputs of one head.

    Shapes: q [Tq, d_k], k [Tk, d_k], v [Tk, d_v] → scores, weights [Tq, Tk];
    weighted_values [Tk, Tq, d_v] (the seed's layout: value i weighted for query j);
    outputs [Tq, d_v].
    """
    d_k = k.shape[-1]
    factor = 1.0 / math.sqrt(d_k) if scale else 1.0
    scores = q @ k.T  # [Tq, Tk]
    scaled = scores * factor
    weights = torch.softmax(scaled, dim=-1)
    weighted = v[:, None] * weights.T[:, :, None]  # [Tk, Tq, d_v]
    return {
        "d_k": d_k,
        "scale_factor": factor,
        "scores": scores,
        "scaled_scores": scaled,
        "weights": weights,
        "weighted_values": weighted,
        "outputs": weighted.sum(dim=0),  # [Tq, d_v] = weights @ v
    }


def multi_head(
    x: torch.Tensor,
    w_query: torch.Tensor,
    w_key: torch.Tensor,
    w_value: torch.Tensor,
    w_out: torch.Tensor,
    n_heads: int,
    scale: bool = False,
) -> dict[str, torch.Tensor | int]:
    """Multi-head attention written out: project, split, attend per head, concatenate, W^O.

    Shapes: x [T, d_model]; w_query, w_key [d_model, H·d_k]; w_value [d_model, H·d_v];
    w_out [H·d_v, d_model_out]. Returns queries/keys/values [T, H·d] (before the split),
    head_* [H, T, d] and head_scores/head_weights [H, T, T], concat [T, H·d_v],
    outputs [T, d_model_out].
    """
    t = x.shape[0]
    for name, w in (("W_Q", w_query), ("W_K", w_key), ("W_V", w_value)):
        if w.shape[0] != x.shape[1]:
            raise ValueError(f"{name} has {w.shape[0]} rows but X has {x.shape[1]} columns")
        if w.shape[1] % n_heads:
            raise ValueError(f"{name} has {w.shape[1]} columns: not divisible by {n_heads} heads")
    if w_query.shape[1] != w_key.shape[1]:
        raise ValueError("W_Q and W_K need the same number of columns (d_k per head)")
    if w_out.shape[0] != w_value.shape[1]:
        raise ValueError(f"W^O has {w_out.shape[0]} rows but the heads give {w_value.shape[1]}")
    queries, keys, values = x @ w_query, x @ w_key, x @ w_value  # [T, H·d]

    def split(m: torch.Tensor) -> torch.Tensor:
        return m.view(t, n_heads, -1).transpose(0, 1)  # [H, T, d]

    hq, hk, hv = split(queries), split(keys), split(values)
    per_head = [attention_steps(hq[h], hk[h], hv[h], scale) for h in range(n_heads)]
    head_outputs = torch.stack([p["outputs"] for p in per_head])  # [H, T, d_v]
    concat = head_outputs.transpose(0, 1).reshape(t, -1)  # [T, H·d_v]
    return {
        "n_heads": n_heads,
        "w_query": w_query, "w_key": w_key, "w_value": w_value, "w_out": w_out,
        "queries": queries, "keys": keys, "values": values,
        "head_queries": hq, "head_keys": hk, "head_values": hv,
        "head_scores": torch.stack([p["scores"] for p in per_head]),
        "head_scaled_scores": torch.stack([p["scaled_scores"] for p in per_head]),
        "head_weights": torch.stack([p["weights"] for p in per_head]),
        "head_outputs": head_outputs,
        "concat": concat,
        "outputs": concat @ w_out,  # [T, d_model_out]
    }


def worked_example(
    x=None,
    w_query=None,
    w_key=None,
    w_value=None,
    scale: bool = False,
    second_head: dict | None = None,
    w_out=None,
) -> dict:
    """Every intermediate of the seed's self-attention example, for its inputs or the caller's.

    Exact path: x, w_query, w_key, w_value, queries, keys, values, scores, scaled_scores
    (= scores when `scale` is False, as in the seed), weights (exact softmax),
    weighted_values [Tk, Tq, d_v] (the seed's layout), outputs [Tq, d_v].

    Seed path (the seed's own numbers, whatever the inputs): seed_rounded_weights,
    seed_weighted_values (as printed in §2-6), seed_outputs (their sums over keys).
    `matches_seed` says whether the exact path ran on the seed's inputs, unscaled; only then
    is `seed_difference` = seed_outputs - outputs given (else None).

    `multi_head`: the two-head extension (see the module docstring); `second_head` may
    override head 2's {"w_query", "w_key", "w_value"} and `w_out` W^O.

    Shapes: x [T, d_model]; w_query, w_key [d_model, d_k]; w_value [d_model, d_v].
    Raises ValueError when the shapes disagree or a cell is not a finite number.
    """
    x = as_matrix(x, "X", SEED_X)
    w_query = as_matrix(w_query, "W_Q", SEED_W_QUERY)
    w_key = as_matrix(w_key, "W_K", SEED_W_KEY)
    w_value = as_matrix(w_value, "W_V", SEED_W_VALUE)
    for name, w in (("W_Q", w_query), ("W_K", w_key), ("W_V", w_value)):
        if w.shape[0] != x.shape[1]:
            raise ValueError(
                f"{name} has {w.shape[0]} rows but X has {x.shape[1]} columns (d_model)"
            )
    if w_query.shape[1] != w_key.shape[1]:
        raise ValueError(
            f"W_Q has {w_query.shape[1]} columns and W_K {w_key.shape[1]}: q·k needs the same d_k"
        )

    queries, keys, values = x @ w_query, x @ w_key, x @ w_value  # [T, d_k], [T, d_k], [T, d_v]
    steps = attention_steps(queries, keys, values, scale)

    seed_values = torch.as_tensor(SEED_X, dtype=DTYPE) @ torch.as_tensor(SEED_W_VALUE, dtype=DTYPE)
    rounded = torch.as_tensor(SEED_ROUNDED_WEIGHTS, dtype=DTYPE)
    seed_weighted = seed_values[:, None] * rounded.T[:, :, None]  # [Tk, Tq, d_v], as in §2-6
    seed_outputs = seed_weighted.sum(dim=0)
    matches = (
        not scale
        and _same(x, SEED_X)
        and _same(w_query, SEED_W_QUERY)
        and _same(w_key, SEED_W_KEY)
        and _same(w_value, SEED_W_VALUE)
    )

    second = dict(SECOND_HEAD, **(second_head or {}))
    h1 = {k: as_matrix(second[k], f"head 2 {k}", None) for k in ("w_query", "w_key", "w_value")}
    for k, w in h1.items():
        head1 = {"w_query": w_query, "w_key": w_key, "w_value": w_value}[k]
        if w.shape != head1.shape:
            raise ValueError(
                f"head 2 {k} is {tuple(w.shape)} but head 1's is {tuple(head1.shape)}: "
                "both heads need the same sizes to be split from one projection"
            )
    w_out = as_matrix(w_out, "W^O", SEED_W_OUT)
    mh = multi_head(
        x,
        torch.cat([w_query, h1["w_query"]], dim=1),  # [d_model, 2·d_k]
        torch.cat([w_key, h1["w_key"]], dim=1),
        torch.cat([w_value, h1["w_value"]], dim=1),
        w_out,
        n_heads=2,
        scale=scale,
    )

    return {
        "tokens": list(TOKENS[: x.shape[0]]) + [f"input {i + 1}" for i in range(3, x.shape[0])],
        "scale": scale,
        "x": x, "w_query": w_query, "w_key": w_key, "w_value": w_value,
        "queries": queries, "keys": keys, "values": values,
        **steps,
        "seed_rounded_weights": rounded,
        "seed_weighted_values": seed_weighted,
        "seed_outputs": seed_outputs,
        "matches_seed": matches,
        "seed_difference": (seed_outputs - steps["outputs"]) if matches else None,
        "multi_head": mh,
    }
