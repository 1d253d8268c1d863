"""How the Attention page reads a long input's layers (encoder or decoder self-attention,
more than viz LONG_INPUT tokens): from the shared background pass (layer_pass) when it
has the layer, else by a pass that stops after that layer. Also the all-layer summary the model
view, the metrics and the rollout read, from that same pass; and the passes that start
half-way from the streams it kept (a layer's contributions, an ablation) and the logit lens
read off them.

Results are kept in the process-wide byte-bounded cache (shared.result_cache), like every
record, so a second session opening the same text and layer gets them at once.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import streamlit as st

import engine
from app_pages.attention.layer_pass import LongPass, find_pass, layer_index, long_pass
from app_pages.shared import result_cache
from app_pages.shared.i18n import COMMON_TEXT, tr
from app_pages.shared.models import attend
from app_pages.shared.result_cache import byte_cached
from engine.core.block_key import BlockKey, kind_of
from engine.replay import lens_from_streams, maps_from_qk
from viz.aggregate import rollout_layers

SELF_KINDS = ("encoder.self", "decoder.self")


def replayable(model: engine.LoadedModel, kind: str, generate: int) -> bool:
    """Whether this page state reads its layers from the background pass."""
    return model.kind in ("encoder", "decoder") and kind in SELF_KINDS and not generate


@byte_cached("replayed layer", keep=lambda rec: rec is not None)  # None: not there yet
def replayed_layer(name: str, device: str, text: str, kind: str,
                   key: str) -> engine.AttentionRecord | None:
    """Block `key`'s record recomputed from the background pass's q and k, or None when no
    pass holds that layer (not started, not there yet, or evicted)."""
    p = find_pass(name, device, text, kind)
    if p is not None and key in p.qk:
        first = template(name, device, text)
        return replayed_record(engine.load(name, device), first, p, key)
    return _from_stream(name, device, text, kind, key, layers=[key], outputs=False)


def template(name: str, device: str, text: str) -> engine.AttentionRecord:
    """A record of `text` with no maps (tokens, labels, notices): a pass of no layers."""
    return attend(name, device, text, layers=[], outputs=False)


def replayed_meta(meta: dict, key: str, qk: bool = False) -> dict:
    """The template's meta, saying what the replayed record holds and where it came from."""
    settings = dict(meta.get("settings", {}), layers=[key], outputs=False)
    if qk:
        settings.update(scores=True, qk=True)
    return dict(meta, settings=settings,
                replayed=f"maps recomputed from the background pass's q and k of {key}")


def replayed_record(model: engine.LoadedModel, first: engine.AttentionRecord, p: LongPass,
                    key: str) -> engine.AttentionRecord:
    """Block `key`'s record rebuilt from the pass's queries and keys: the template `first`
    with that layer's maps."""
    w = maps_from_qk(model, key, p.qk[key])
    return dataclasses.replace(first, maps={key: w}, scores={}, q={}, k={}, norm={}, flow={},
                               meta=replayed_meta(first.meta, key))


def wait_for_layer(name: str, device: str, text: str, kind: str, key: str) -> None:
    """While the background pass runs, wait for it to reach `key`, with a bar: a second pass
    would reach it no sooner, and would share the cores. Returns at once when no pass runs
    or it keeps neither queries and keys nor streams."""
    p = find_pass(name, device, text, kind)
    if p is not None and p.keep_stream and p.error is None and not p.finished:
        wait_with_bar(p, layer_index(key) + 1)


def wait_with_bar(p, n_layers: int) -> None:
    """Wait for the pass's first n_layers layers under a bar "layer k of n". A rerun the
    reader asks for meanwhile is raised at once (the pass goes on in the background), unlike
    the engine bar's, which holds it until its own pass is over."""
    slot = st.empty()

    def show(done: int, total: int) -> None:
        slot.progress(done / max(total, 1), text=tr(COMMON_TEXT, "layer_of", k=done, n=total))

    try:
        p.wait(n_layers, show)
    finally:
        slot.empty()


def pass_outputs(name: str, device: str, text: str, kind: str) -> dict:
    """The model's outputs for a long input (the next-token table), from the background
    pass: started here if need be, waited for with a bar."""
    p = long_pass(name, device, text, kind)
    wait_with_bar(p, len(p.keys))
    p.wait_end()
    return p.outputs


def layer_record(name: str, device: str, text: str, kind: str,
                 key: str) -> engine.AttentionRecord:
    """One layer's record of a long input: replayed if the pass has it, else a pass that
    stops after that layer (or, while the pass runs, the pass once it reaches the layer)."""
    wait_for_layer(name, device, text, kind, key)
    rec = replayed_layer(name, device, text, kind, key)
    if rec is not None:
        return rec
    return attend(name, device, text, layers=[key], outputs=False)


def start_pass(name: str, device: str, text: str, kind: str) -> None:
    """Start the background pass over every layer (once per text, for every session)."""
    long_pass(name, device, text, kind)


@byte_cached("long summary")
def pass_summary(name: str, device: str, text: str, kind: str) -> dict:
    """Every layer's thumbnails (max per block), head metrics and rollout, from the pass
    (waiting for it, with the engine's progress callback if one is set)."""
    p = long_pass(name, device, text, kind)
    wait_with_bar(p, len(p.keys))
    r = p.reduced
    return dict(thumbs=np.stack(r.thumbs), block=r.block, rows=list(r.rows),
                rollout=rollout_layers(r.means) if r.means else None,
                rollout_block=r.rollout_block)


@byte_cached("replayed q·k", keep=lambda rec: rec is not None)
def _replayed_qk(name: str, device: str, text: str, kind: str,
                 key: str) -> engine.AttentionRecord | None:
    p = find_pass(name, device, text, kind)
    if p is None or key not in p.qk:  # the streams alone: one layer's pass from its stream
        return _from_stream(name, device, text, kind, key, scores=True, qk=True,
                            layers=[key], outputs=False)
    model = engine.load(name, device)
    qk = p.qk[key]
    weights, scores = maps_from_qk(model, key, qk, scores=True)
    g = qk.q.shape[0] // qk.k.shape[0]
    first = template(name, device, text)
    return dataclasses.replace(first, maps={key: weights}, scores={key: scores},
                               q={key: qk.q}, k={key: np.repeat(qk.k, g, axis=0)},
                               norm={}, flow={}, meta=replayed_meta(first.meta, key, qk=True))


def qk_record(name: str, device: str, text: str, kind: str, key: str,
              **base) -> engine.AttentionRecord:
    """Block `key`'s weights, scores, q and k (the Q·K tab): from the background pass for a
    long input it covers, else a pass that stops after that layer."""
    if replayable(engine.load(name, device), kind, base.get("generate", 0)):
        wait_for_layer(name, device, text, kind, key)
        rec = _replayed_qk(name, device, text, kind, key)
        if rec is not None:
            return rec
    return attend(name, device, text, scores=True, qk=True, layers=[key], outputs=False,
                  **base)


def resumed_at(name: str, device: str, text: str, kind: str, key: str, cached: bool = True,
               **options) -> engine.AttentionRecord | None:
    """`attend(text, **options)` started at block `key`'s layer from the stream the
    background pass kept there (the pass is started if need be, and waited for up to that
    layer), so the layers below are not run again; None when the pass keeps no streams (it
    would not fit its budget) or failed. `cached=False`: the record is not kept (a caller
    that keeps what it derives from it)."""
    p = long_pass(name, device, text, kind)
    if not p.keep_stream:
        return None
    wait_with_bar(p, layer_index(key) + 1)
    return (_resumed if cached else _from_stream)(name, device, text, kind, key, **options)


def _from_stream(name: str, device: str, text: str, kind: str, key: str,
                 **options) -> engine.AttentionRecord | None:
    """`attend(text, **options)` from the stream the pass kept at `key`, or None. Uncached:
    replayed_layer and _replayed_qk cache what they return, _resumed for everyone else (one
    cache entry per record, not two)."""
    p = find_pass(name, device, text, kind)
    stream = None if p is None else p.streams.get(key)
    if stream is None:
        return None
    return engine.load(name, device).attend(text, resume=(layer_index(key), stream), **options)


_resumed = byte_cached("resumed pass", keep=lambda rec: rec is not None)(_from_stream)


def ablated(name: str, device: str, text: str, kind: str, key: str,
            heads_off: dict[str, list[int]], **base) -> engine.AttentionRecord:
    """The record with `heads_off` switched off, with its outputs and, for a long input,
    block `key`'s map. Where the background pass covers the text, the pass resumes at the
    lowest layer with a head off (the layers below it are the intact pass's), else it runs
    every layer."""
    model = engine.load(name, device)
    first = min(layer_index(k) for k in heads_off)
    if replayable(model, kind, base.get("generate", 0)) and all(
            kind_of(k) == kind for k in heads_off):
        # A head switched off at layer k changes what layer k writes, never where it looks:
        # the maps of layers 0..first are the intact ones, so they are neither run nor recorded.
        layers = [key] if layer_index(key) > first else []
        # not kept: ablation_summary keeps the few numbers it shows (the map alone is 1 GB
        # at 8,000 tokens, and evicted the cache's other results)
        rec = resumed_at(name, device, text, kind, str(BlockKey(kind, first)), cached=False,
                         layers=layers, heads_off=heads_off)
        if rec is not None:
            return rec
    return attend.uncached(name, device, text, layers=[key], heads_off=heads_off, **base)


def pass_lens(name: str, device: str, text: str, kind: str,
              position: int) -> list[list[tuple[str, float]]] | None:
    """The logit lens at `position` from the background pass's streams (waiting for the
    whole pass), or None when it keeps none."""
    p = long_pass(name, device, text, kind)
    if not p.keep_stream:
        return None
    wait_with_bar(p, len(p.keys))
    p.wait_end()
    return _pass_lens(name, device, text, kind, position)


@byte_cached("pass lens", keep=lambda rows: rows is not None)
def _pass_lens(name: str, device: str, text: str, kind: str,
               position: int) -> list[list[tuple[str, float]]] | None:
    p = find_pass(name, device, text, kind)
    if p is None or p.final_stream is None or any(k not in p.streams for k in p.keys):
        return None
    return lens_from_streams(engine.load(name, device), [p.streams[k] for k in p.keys],
                             p.final_stream, position)


@byte_cached("ablation summary")
def ablation_summary(name: str, device: str, text: str, kind: str, key: str,
                     heads_off: dict[str, list[int]], **base) -> tuple[dict, dict]:
    """What the Ablation tab shows of a long input: the outputs with `heads_off`, and block
    `key`'s mean |Δ weight| per head against the intact map ({} when `key` is at or below every
    head off). A few numbers are cached, not the record, whose map alone is 1 GB at 8,000
    tokens: it would never fit the cache, and every rerun would run the ablation again."""
    off = ablated(name, device, text, kind, key, heads_off, **base)
    if key not in off:
        return off.outputs, {}
    if replayable(engine.load(name, device), kind, base.get("generate", 0)):
        intact = layer_record(name, device, text, kind, key)
    else:  # the page's own call for such a record (the same cache entry)
        intact = attend(name, device, text, layers=[key], outputs=True, **base)
    return off.outputs, {key: np.abs(off[key] - intact[key]).mean(axis=(1, 2))}


# A long input's tabs keep about this many layer-sized results at once: the layer's maps (1),
# its contributions (2.25: weights, norms, flow), the Q·K tab's record (2+: weights, scores,
# q and k), and the smaller rest. With room for 4, an 8,000-token Gemma page at 4 GiB still
# computed its contributions again on every visit (bench_browser --long --tokens 8000).
LAYERS_A_PAGE_KEEPS = 8


def crowded_by(layer_bytes: int) -> str | None:
    """Whether one layer's record of `layer_bytes` leaves the page room in the shared result
    cache: None, "not_kept" (it exceeds the whole budget: computed again on every call) or
    "crowds" (the page's other results and it push each other out)."""
    if not result_cache.keeps(layer_bytes):
        return "not_kept"
    if LAYERS_A_PAGE_KEEPS * layer_bytes > result_cache.CACHE.max_bytes:
        return "crowds"
    return None


def budget_for(layer_bytes: int) -> int:
    """A budget (bytes, a power of two MiB) that keeps a page's results of such layers."""
    return 2 ** math.ceil(math.log2(max(LAYERS_A_PAGE_KEEPS * layer_bytes, result_cache.MB)))
