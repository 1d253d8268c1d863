"""Reading safetensors files safely: a truncated or corrupt file is a ValueError naming it."""

from __future__ import annotations

from pathlib import Path

import torch


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; a truncated or corrupt file → ValueError naming it."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError and others
        raise ValueError(f"cannot read weights file {path}: {exc}") from exc
