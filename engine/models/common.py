"""Shared pieces of the model families: finding a weights package and copying a name map
into a model with shape checks that name the file and tensor that disagree."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from engine.errors import ModelNotInstalled


def package_dir(module: str, name: str, command: str) -> Path:
    """Directory of an installed weights package, or ModelNotInstalled."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(name, command)
    return Path(list(spec.submodule_search_locations)[0])


def copy_weights(model: nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy `tensors` (named in our model's terms) into `model`, checking every shape and
    that every parameter is covered. `source` names the file in error messages."""
    params = dict(model.state_dict())
    missing = [k for k in params if k not in tensors]
    # Tied weights appear once in the file; the tie covers the other name.
    missing = [k for k in missing if not (k == "lm_head.weight" and model.cfg.tie_embeddings)]
    if missing:
        raise ValueError(f"{source}: no tensor for {missing[:5]}{' …' if len(missing) > 5 else ''}")
    unknown = [k for k in tensors if k not in params]
    if unknown:
        raise ValueError(f"{source}: tensors not in the model: {unknown[:5]}")
    with torch.no_grad():
        for name, value in tensors.items():
            if params[name].shape != value.shape:
                raise ValueError(
                    f"{source}: tensor for {name} has shape {tuple(value.shape)}, "
                    f"the model expects {tuple(params[name].shape)}"
                )
            params[name].copy_(value)
