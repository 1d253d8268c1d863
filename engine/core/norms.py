"""LayerNorm (Ba et al., 2016) and RMSNorm (Zhang & Sennrich, 2019) behind one factory."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.core.config import ModelConfig
from engine.fast.norms import fused_rms_norm_keeps_float32


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight, computed in float32. The weight is used as stored:
    loaders fold Gemma's "(1 + w)" into it (GGUF files already store 1 + w)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused_rms_norm_keeps_float32(x, self.weight):
            # One kernel instead of seven (cast, square, mean, add, rsqrt, two multiplies): a
            # decode step runs two or more norms per layer, each a launch of its own.
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * self.weight.float()).to(x.dtype)


def make_norm(cfg: ModelConfig, dim: int | None = None) -> nn.Module:
    dim = cfg.d_model if dim is None else dim
    if cfg.norm == "rmsnorm":
        return RMSNorm(dim, cfg.norm_eps)
    return nn.LayerNorm(dim, eps=cfg.norm_eps)
