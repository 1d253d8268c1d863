"""What the Attention page chose and computed, as its tabs read it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import engine
from app_pages.shared.sidebar import Settings
from viz.style import Style


@dataclass(frozen=True)
class AttentionView:
    """What the page chose and computed, as the tabs read it."""

    name: str  # model name
    settings: Settings
    style: Style
    model: engine.LoadedModel
    cfg: engine.ModelConfig
    arch: str  # "encoder", "decoder" or "encoder-decoder"
    text: str
    base: dict  # attend() arguments every call of the page shares (target, generate)
    long: bool  # longer than viz.LONG_INPUT tokens: one layer recorded at a time
    kind: str  # block kind, e.g. "encoder.self"
    layer: int
    head: int
    key: str  # the chosen block, f"{kind}.{layer}"
    rec: engine.AttentionRecord
    weights: np.ndarray  # rec[key], [H, Tq, Tk]
    q_tok: list[str]
    k_tok: list[str]
    layer_maps: list[np.ndarray] | None  # every layer of `kind` (None for a long input)
    summary: Callable[[], dict]  # a long input's all-layer summary, computed on first use
    open_head: Callable[[int, int], None]  # switch the page to one head's map
    outputs: Callable[[], dict]  # the model's outputs for the text (a cached pass if `rec`'s
    # pass stopped early: see the page's `maps_only`)
