"""Shared pieces of the model families: a registry entry, finding a weights package, renaming a
checkpoint's tensors by pattern, and copying a name map into a model with shape checks that
name the file and tensor that disagree."""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.core.config import ModelConfig
from engine.errors import ModelNotInstalled


@dataclass(frozen=True)
class ModelEntry:
    """A registered model, defined by its family's module. Its facts (layers, heads, K/V heads,
    positions) come from `config()`, read from the checkpoint's own metadata when installed."""

    name: str
    kind: str  # encoder | decoder | encoder-decoder (known even when the weights are not)
    summary: str
    install: str | None  # None: ships with the repository
    is_installed: Callable[[], bool]
    build: Callable  # (device, progress, dtype) → LoadedModel
    config: Callable[[], ModelConfig]

    @functools.cached_property
    def facts(self) -> dict | None:
        """layers, heads, kv_heads, positions from the config; None when not installed."""
        if not self.is_installed():
            return None
        try:
            return config_facts(self.config())
        except (OSError, ValueError, KeyError, ImportError, AttributeError):
            return None  # a damaged or half-installed package: facts unknown

    @property
    def layers(self) -> str:
        return self.facts["layers"] if self.facts else "?"

    @property
    def heads(self) -> int | str:
        return self.facts["heads"] if self.facts else "?"

    @property
    def kv_heads(self) -> int | str:
        return self.facts["kv_heads"] if self.facts else "?"

    @property
    def positions(self) -> str:
        return self.facts["positions"] if self.facts else "?"


def config_facts(cfg: ModelConfig) -> dict:
    """What `python -m engine models` shows of a config."""
    if cfg.arch == "encoder-decoder":
        layers = f"{cfg.n_encoder_layers}+{cfg.n_decoder_layers}"
    else:
        layers = str(cfg.n_encoder_layers or cfg.n_decoder_layers)
    positions = cfg.positions
    windows = {cfg.layer_window(i) for i in range(cfg.n_layers_total)} - {None}
    if windows:
        positions += f", sliding window {'/'.join(str(w) for w in sorted(windows))}"
    return {"kind": cfg.arch, "layers": layers, "heads": cfg.n_heads,
            "kv_heads": cfg.kv_heads, "positions": positions}


def module_present(*modules: str) -> Callable[[], bool]:
    return lambda: all(importlib.util.find_spec(m) is not None for m in modules)


def package_dir(module: str, name: str, command: str) -> Path:
    """Directory of an installed weights package, or ModelNotInstalled."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(name, command)
    return Path(list(spec.submodule_search_locations)[0])


Rules = list[tuple[str, str]]  # (regex over their name, our name with \\1 … groups)


def rename(tensors: Mapping[str, torch.Tensor], rules: Rules, ignore: tuple[str, ...] = (),
           ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Their tensor names → ours by the first rule whose regex matches the whole name; names
    matching an `ignore` regex (heads the engine does not run) are dropped first. Returns (ours,
    {our name: their name}) for messages. A name no rule covers is a ValueError naming it."""
    compiled = [(re.compile(p), r) for p, r in rules]
    skip = [re.compile(p) for p in ignore]
    out, theirs = {}, {}
    for name, t in tensors.items():
        if any(p.fullmatch(name) for p in skip):
            continue
        for pattern, repl in compiled:
            m = pattern.fullmatch(name)
            if m:
                ours = m.expand(repl)
                out[ours], theirs[ours] = t, name
                break
        else:
            raise ValueError(f"tensor {name!r} is not one this family knows")
    return out, theirs


def take(tensors: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    """tensors[name], or a ValueError naming the missing tensor."""
    if name not in tensors:
        raise ValueError(f"no tensor {name!r}")
    return tensors[name]


def check_weights(model: nn.Module, tensors: Mapping[str, torch.Tensor], source: str,
                  theirs: Mapping[str, str] | None = None) -> dict[str, torch.Tensor]:
    """Check that `tensors` (named in our model's terms) cover every parameter of `model` with
    the right shapes; returns the model's state dict. `source` names the file in error
    messages, `theirs` the checkpoint's own name of each tensor."""
    theirs = theirs or {}
    params = dict(model.state_dict())
    missing = [k for k in params if k not in tensors]
    # Tied weights appear once in the file; the tie covers the other name.
    missing = [k for k in missing if not (k == "lm_head.weight" and model.cfg.tie_embeddings)]
    if missing:
        raise ValueError(f"{source}: no tensor for {missing[:5]}{' …' if len(missing) > 5 else ''}")
    unknown = [theirs.get(k, k) for k in tensors if k not in params]
    if unknown:
        raise ValueError(f"{source}: tensors not in the model: {unknown[:5]}")
    for name, value in tensors.items():
        if params[name].shape != value.shape:
            label = f"{theirs[name]} (our {name})" if name in theirs else name
            raise ValueError(
                f"{source}: tensor {label} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(params[name].shape)}"
            )
    return params


def copy_weights(model: nn.Module, tensors: Mapping[str, torch.Tensor], source: str,
                 theirs: Mapping[str, str] | None = None) -> None:
    """Copy `tensors` (named in our model's terms) into `model`, checked by `check_weights`."""
    params = check_weights(model, tensors, source, theirs)
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value)


def model_holding(cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], source: str,
                  ) -> nn.Module:
    """The Transformer of `cfg` whose parameters are `tensors` themselves (checked as
    `copy_weights` checks them): built on the meta device, so that no random initialisation
    runs and no second copy of the weights is ever allocated (peak memory ≈ one model)."""
    from engine.core.positions import sinusoidal_table
    from engine.core.transformer import Transformer

    with torch.device("meta"):
        model = Transformer(cfg)
    check_weights(model, tensors, source)
    model.load_state_dict({k: v.contiguous() for k, v in tensors.items()}, strict=False,
                          assign=True)
    if cfg.tie_embeddings and model.lm_head is not None:
        model.lm_head.weight = model.decoder.embed.tokens.weight  # the tie, re-made
    for stack in (model.encoder, model.decoder):  # buffers computed, not stored
        if stack is not None and hasattr(stack.embed, "sinusoid"):
            stack.embed.sinusoid = sinusoidal_table(cfg.max_len, cfg.d_model,
                                                    halves=cfg.sinusoid_halves)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"{source}: no tensor for {left[:5]}")
    return model
