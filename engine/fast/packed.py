"""Linear layers that read the same input, run as one matrix product.

q, k and v all project the same x; so do GeGLU's gate and up. One product over their
concatenated weights computes the same numbers with one kernel instead of two or three, which
is what a short input pays for on a GPU (on an H200 a 16-token MiniLM pass is kernel launches,
not arithmetic: bench/README.md). The modules keep their own weights, so loaders, state dicts
and K/V-head conversion are untouched; the concatenation is a copy, taken at the first use
without autograd and taken again whenever any of the weights changes (a load, `.to()`, an
in-place update), which the key below notices.

Only on CUDA: on the CPU the products themselves dominate, one product saved nothing measurable
(bench/README.md), and the copy would cost memory (260 MB for Gemma 3 270M's float32 weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def packable(linears: list[nn.Linear]) -> bool:
    """Whether a change to these weights can be noticed: a model built under
    `torch.inference_mode` has inference tensors, which keep no version counter."""
    return not any(p.is_inference() for lin in linears for p in (lin.weight, lin.bias)
                   if p is not None)


class PackedLinears:
    """The concatenated weight and bias of `linears`, kept until one of them changes."""

    def __init__(self) -> None:
        self._state: tuple[tuple, tuple[torch.Tensor, torch.Tensor | None]] | None = None

    @staticmethod
    def _key(linears: list[nn.Linear]) -> tuple:
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for lin in linears
                     for p in (lin.weight, lin.bias) if p is not None)

    def get(self, linears: list[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = self._key(linears)
        state = self._state  # one read: another thread may replace it meanwhile
        if state is None or state[0] != key:
            with torch.no_grad():
                weight = torch.cat([lin.weight for lin in linears])
                bias = (None if linears[0].bias is None
                        else torch.cat([lin.bias for lin in linears]))
            state = (key, (weight, bias))
            self._state = state
        return state[1]

    def __call__(self, x: torch.Tensor, linears: list[nn.Linear]) -> list[torch.Tensor]:
        """Each linear's output, from one product on CUDA; under autograd (so that gradients
        reach their own weights) and on the CPU, the linears one by one."""
        if torch.is_grad_enabled() or x.device.type != "cuda" or not packable(linears):
            return [lin(x) for lin in linears]
        out = F.linear(x, *self.get(linears))
        return list(out.split([lin.out_features for lin in linears], dim=-1))
