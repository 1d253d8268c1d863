"""MHA → GQA/MQA conversion of trained weights (Ainslie et al., 2023, "GQA", §2.1): the K and
V projections of the query heads in one group are mean-pooled into the group's single head.

Expanding (fewer K/V heads → more, by copying each K/V head to every query head of its
group) reproduces the model exactly; it lets an MQA model be shown in MHA form.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.core.transformer import Transformer


def _regroup(weight: torch.Tensor, h_old: int, h_new: int, d_head: int) -> torch.Tensor:
    """Rows of a K or V projection ([h_old·D, ...]) → [h_new·D, ...]."""
    w = weight.reshape(h_old, d_head, *weight.shape[1:])  # [h_old, D, ...]
    if h_new < h_old:
        w = w.reshape(h_new, h_old // h_new, d_head, *weight.shape[1:]).mean(dim=1)
    else:
        w = w.repeat_interleave(h_new // h_old, dim=0)
    return w.reshape(h_new * d_head, *weight.shape[1:])


def allowed_kv_heads(n_heads: int, n_kv_heads: int) -> list[int]:
    """Pooling to any divisor of the current K/V heads, or copying back to full MHA."""
    pool = [g for g in range(1, n_kv_heads + 1) if n_kv_heads % g == 0]
    return sorted(set(pool + [n_heads]))


def convert_kv_heads(model: Transformer, n_kv_heads: int) -> Transformer:
    """A copy of `model` with `n_kv_heads` K/V heads in every attention layer."""
    cfg = model.cfg
    allowed = allowed_kv_heads(cfg.n_heads, cfg.kv_heads)
    if n_kv_heads not in allowed:
        raise ValueError(
            f"{cfg.name} has {cfg.n_heads} query heads and {cfg.kv_heads} K/V heads: "
            f"kv_heads must be one of {allowed}"
        )
    if n_kv_heads == cfg.kv_heads:
        return model
    new = Transformer(cfg.with_(n_kv_heads=n_kv_heads))
    state = {}
    for name, value in model.state_dict().items():
        if any(f".{p}." in name for p in ("k_proj", "v_proj")):
            value = _regroup(value, cfg.kv_heads, n_kv_heads, cfg.head_dim)
        state[name] = value
    new.load_state_dict(state)
    param = next(model.parameters())
    return new.to(device=param.device, dtype=param.dtype).eval()


def count_parameters(model: nn.Module) -> int:
    """Parameters, counting tied weights once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
