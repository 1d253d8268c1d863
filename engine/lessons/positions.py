"""The Positions lesson's numbers, as numpy: the same functions the model runs
(engine.core.positions), evaluated on a grid a learner can change (d_model, length, base).

- sinusoidal encodings (Vaswani et al., 2017, §3.5);
- RoPE (Su et al., 2021, "RoFormer"): the per-pair angles, and q_m·k_n of one random q and
  k placed at every position, which depends on n − m alone;
- ALiBi (Press et al., 2022): per-head slopes and the distance bias;
- a trained model's learned position table (MiniLM's 512 × 384).

Everything returned is float32 numpy on the CPU (the page draws it and never sees a tensor).
"""

from __future__ import annotations

import numpy as np
import torch

from engine.core.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    rope_cos_sin,
    rope_frequencies,
    sinusoidal_table,
)


def sinusoidal(length: int, d_model: int, base: float = 10_000.0) -> np.ndarray:
    """PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(...).

    Shapes: -> [length, d_model] float32.
    """
    return sinusoidal_table(length, d_model, base).numpy()


def rope_thetas(d_head: int, base: float) -> np.ndarray:
    """θ_i = base^(-2i/d) of each rotated pair, as the model computes them.

    Shapes: -> [d_head / 2] float64.
    """
    return rope_frequencies(d_head, base).double().numpy()


def rope_angles(length: int, d_head: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of position × θ_i, halves repeated (column i and i + d/2 are pair i).

    Shapes: -> cos, sin [length, d_head] float32.
    """
    cos, sin = rope_cos_sin(torch.arange(length), d_head, base)
    return cos.numpy(), sin.numpy()


def rope_scores(length: int, d_head: int, base: float, seed: int = 0) -> np.ndarray:
    """q_m·k_n for one random q and one random k (standard normal, `seed`) rotated to every
    position m and n: constant along each diagonal, since RoPE makes the score a function
    of n − m.

    Shapes: -> [length (m), length (n)] float32.
    """
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(d_head, generator=g), torch.randn(d_head, generator=g)
    cos, sin = rope_cos_sin(torch.arange(length), d_head, base)  # [T, D] each
    q_rot = apply_rope(q.expand(1, 1, length, d_head), cos, sin)[0, 0]  # [T, D]
    k_rot = apply_rope(k.expand(1, 1, length, d_head), cos, sin)[0, 0]  # [T, D]
    return (q_rot @ k_rot.T).numpy().astype(np.float32)


def diagonal_spread(scores: np.ndarray) -> float:
    """Largest max − min of `scores` along one diagonal (0 when only n − m matters)."""
    t = scores.shape[0]
    return max(float(np.ptp(np.diagonal(scores, off))) for off in range(-t + 1, t))


def alibi(n_heads: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """ALiBi's slopes and the bias −slope_h · |i − j| it adds to head h's scores.

    Shapes: -> slopes [n_heads] float32, bias [n_heads, length, length] float32.
    """
    return alibi_slopes(n_heads).numpy(), alibi_bias(n_heads, length, length).numpy()


def learned_positions(transformer) -> np.ndarray:
    """The learned position table of a model's first stack (e.g. MiniLM's).

    Shapes: -> [max positions, d_model] float32. Raises ValueError for a model without one.
    """
    stack = transformer.encoder if transformer.encoder is not None else transformer.decoder
    table = getattr(stack.embed, "positions", None)
    if table is None or not hasattr(table, "weight"):
        raise ValueError(f"{transformer.cfg.name} has no learned position table")
    return table.weight.detach().float().cpu().numpy()
