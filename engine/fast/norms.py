"""When PyTorch's fused RMSNorm computes exactly what `engine.core.norms.RMSNorm` promises."""

from __future__ import annotations

import torch


def fused_rms_norm_keeps_float32(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `F.rms_norm` computes what `RMSNorm` promises: mean, rsqrt and both multiplies
    in float32, one rounding at the end. True in float32 anywhere, and for half/bf16 on CUDA,
    whose fused kernel accumulates in float32 (bit-equal to the float32 formula on an H200 with
    torch 2.11, bench/README.md). Half/bf16 on the CPU keeps the explicit float32 path: older
    CPU versions of `rms_norm` may round to the input dtype before the weight multiply."""
    if x.dtype != weight.dtype:
        return False
    return x.dtype == torch.float32 or x.device.type == "cuda"
