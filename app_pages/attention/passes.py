"""The cached passes some Attention tabs run besides the page's own record: a long input's
all-layer summary (each layer reduced to a thumbnail, head metrics and a rollout input as it
arrives), greedy decoding with heads off, and the KV cache measured step by step. The passes
themselves are engine calls (engine.analysis); this module only reduces and caches."""

from __future__ import annotations

import numpy as np

import engine
from app_pages.shared.models import attend
from app_pages.shared.result_cache import byte_cached
from engine.analysis import greedy_text_heads_off, kv_bytes_per_step, stream_layer_maps
from engine.census.metrics import METRICS, text_head_metrics
from engine.contributions import flow_across_layers
from engine.core.block_key import BlockKey, kind_of
from viz.aggregate import block_stochastic, mean_heads, rollout_layers
from viz.figures.long_input import block_reduce, block_size
from viz.metrics import split_key

FULL_HEATMAP_MAX = 512  # up to here the full map is drawn (zoom/pan in the browser)
WINDOW_MAX = 256  # the zoom window of a longer map
ROLLOUT_MAX = 512  # flow across layers is a T×T product per layer: skipped above this
ROLLOUT_EXACT_MAX = 1024  # rollout is exact up to here, then in blocks of ≤ 512 × 512 cells
ROLLOUT_BLOCKS = 512
MEASURE_STEPS = 32  # greedy steps run to read the real KV cache (the formula covers the rest)


class LayerReducer:
    """Keeps, of each layer's map of one block kind, only what the all-layer views need: a
    thumbnail (each block's max), the head metrics and the head-mean map for rollout (exact up
    to ROLLOUT_EXACT_MAX tokens, then in blocks of ROLLOUT_BLOCKS). The engine hands over one
    layer's [H, T, T] map at a time and drops it after, so a 2,048-token pass over 18 layers
    holds one layer's map instead of all of them (about 1.2 GB). The long-input background
    pass (layer_pass) reduces its layers with one of these too."""

    def __init__(self, kind: str, thumb: int):
        self.kind, self.thumb = kind, thumb
        self.thumbs: list[np.ndarray] = []
        self.rows: list[dict] = []
        self.means: list[np.ndarray] = []
        self.block = 1  # the thumbnails' block side
        self.rollout_block = 1

    def __call__(self, key: str, w: np.ndarray) -> None:
        tq, tk = w.shape[1:]  # w: [H, Tq, Tk]
        self.block = max(block_size(tq, self.thumb), block_size(tk, self.thumb))
        self.thumbs.append(block_reduce(w, self.block, how="max"))  # a sink survives
        self.rows += metric_rows(key, w, self_attention=kind_of(key) != "decoder.cross")
        if kind_of(key) != "decoder.cross" and tq == tk:
            mean = mean_heads(w)
            if tq > ROLLOUT_EXACT_MAX:
                self.rollout_block = block_size(tq, ROLLOUT_BLOCKS)
                mean = block_stochastic(mean, self.rollout_block)
            self.means.append(mean)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.means) + sum(a.nbytes for a in self.thumbs)

    @staticmethod
    def layer_bytes(t: int, heads: int, thumb: int) -> int:
        """What one self-attention layer of T tokens adds to `nbytes` (float32): its
        thumbnails [H, ⌈T/b⌉, ⌈T/b⌉] and its rollout input, [T, T] up to ROLLOUT_EXACT_MAX
        tokens, then one cell per block of ROLLOUT_BLOCKS."""
        side = -(-t // block_size(t, thumb))
        mean = t if t <= ROLLOUT_EXACT_MAX else -(-t // block_size(t, ROLLOUT_BLOCKS))
        return 4 * (heads * side * side + mean * mean)


def metric_rows(key: str, w: np.ndarray, self_attention: bool = True) -> list[dict]:
    """The Head metrics tab's rows (viz.metrics.head_metrics' layout: None where undefined)
    for one layer's maps [H, Tq, Tk], computed by the engine's torch version of the same
    definitions (engine.census.metrics; about 10× faster on a long input's maps)."""
    block, layer = split_key(key)
    values = text_head_metrics(w, self_attention=self_attention)
    return [{"block": block, "layer": layer, "head": h,
             **{m: None if np.isnan(values[m][h]) else float(values[m][h]) for m in METRICS}}
            for h in range(w.shape[0])]


@byte_cached("long summary (encoder-decoder)")
def long_summary(name: str, device: str, text: str, kind: str, target: str | None,
                 generate: int, thumb: int = 64) -> dict:
    """For a long input: one pass over every layer of `kind`, kept only as thumbnails
    (each block's max, ≤ thumb² blocks), head metrics and the rollout (in blocks past
    ROLLOUT_EXACT_MAX tokens)."""
    model = engine.load(name, device)
    reducer = LayerReducer(kind, thumb)
    generated: list[int] = []
    if generate and model.kind in ("encoder", "decoder"):  # the tokens the page's record holds
        first = next(k for k in model.block_keys() if kind_of(k) == kind)
        generated = attend(name, device, text, target=target, generate=generate,
                           layers=[first]).outputs.get("generated_ids", [])
    stream_layer_maps(model, text, kind, reducer, target=target, generated_ids=generated,
                      generate_n=generate)
    roll = rollout_layers(reducer.means) if reducer.means else None
    return dict(thumbs=np.stack(reducer.thumbs), block=reducer.block, rows=reducer.rows,
                rollout=roll, rollout_block=reducer.rollout_block)


@byte_cached("greedy text")
def greedy_text(name: str, device: str, text: str, heads_off: tuple, n: int) -> str:
    """Greedy decode of an encoder-decoder, at most n tokens, with (key, head) pairs off."""
    return greedy_text_heads_off(engine.load(name, device), text, heads_off, n)


@byte_cached("measured KV bytes")
def measured_kv_bytes(name: str, device: str, text: str, n: int) -> list[int]:
    """KV-cache bytes (cache.bytes_used) after each of n greedy decoding steps."""
    return kv_bytes_per_step(engine.load(name, device), text, n)


# ----------------------------------------------------------------------------- Contributions

@byte_cached("flow through layers")
def flow_through_layers(name: str, device: str, text: str, kind: str, layer: int,
                        target: str | None, generate: int) -> np.ndarray:
    """Flow across layers 0..layer of one self-attention stack, [T, T] (row i: the share with
    which each input token reaches position i). One maps-only pass records those layers'
    contributions and stops after `layer`; only the [T, T] product is cached."""
    keys = [str(BlockKey(kind, i)) for i in range(layer + 1)]
    rec = engine.load(name, device).attend(text, target=target, generate=generate, layers=keys,
                                           contributions=True, outputs=False)
    return flow_across_layers([rec[f"flow.{k}"] for k in keys]).astype(np.float32)
