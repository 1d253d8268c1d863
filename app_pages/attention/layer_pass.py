"""One pass over every layer of a long input, run once per text in the background and shared
by every session that opens the same text.

The first view of a long input runs only the layers up to the chosen one (its pass stops
there). A reader then asks for another layer, the model view, the metrics or the rollout, and
each of those needs every layer. So right after the first view, one background pass runs
through all of them (engine.replay.stream_layers). It keeps, per layer:

- each layer's queries and keys, so that any head of any layer is then one q·kᵀ and a
  softmax (engine.replay.maps_from_qk), exact and about 0.1 s at 2,048 tokens, instead of a
  new pass up to that layer;
- the residual stream entering each layer, and the last one's output: the contributions of
  layer k then run layer k alone, an ablation runs from its first switched-off head's layer
  (AttendOptions.resume), and the logit lens reads the streams directly;
- the model view's thumbnails (each block's max), the head metrics, and the rollout's input
  (the head-mean map, in blocks past passes.ROLLOUT_EXACT_MAX tokens), all by one
  passes.LayerReducer;
- the model's outputs (a decoder's next-token table), so that no second pass over the whole
  model is run for them.

A view that needs a layer the pass has not reached yet waits for it with a progress bar
("layer 5 of 18"). Passes are kept least recently used first, within PASS_BUDGET_MB of
queries, keys and streams. A pass too big for that budget keeps the streams alone (about a
third of it: another layer is then that layer's own pass, from its stream), and past that
only its thumbnails and metrics: layer switches then run a pass up to the layer.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

import engine
from app_pages.attention.passes import LayerReducer
from app_pages.shared.result_cache import mib_setting
from engine.core.block_key import BlockKey, kind_of
from engine.replay import LayerQK, stream_layers

THUMB = 64  # thumbnails: at most 64 × 64 blocks per head
ENV_VAR = "ATTENTION_STUDIO_PASS_MB"
DEFAULT_PASS_MB = 768  # two 2,048-token Gemma passes (18 layers × 15 MB of q, k and stream)


def pass_budget(environ=os.environ) -> int:
    """The passes' budget in bytes of queries and keys, from ATTENTION_STUDIO_PASS_MB."""
    return mib_setting(ENV_VAR, DEFAULT_PASS_MB, environ)


@dataclasses.dataclass
class LongPass:
    """What one background pass has produced so far (read under `cond`)."""

    keys: list[str]  # every layer of the kind, in order
    n_tokens: int
    keep_qk: bool  # False when the queries and keys would not fit the budget
    keep_stream: bool = True  # False when not even the streams would
    done: list[str] = dataclasses.field(default_factory=list)
    qk: dict[str, LayerQK] = dataclasses.field(default_factory=dict)  # (q, k), no stream
    streams: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # [T, d]
    reduced: LayerReducer | None = None  # thumbnails, metrics, rollout input, per layer
    outputs: dict = dataclasses.field(default_factory=dict)  # next-token top-k / embedding
    final_stream: np.ndarray | None = None  # [T, d]: the last layer's output (logit lens)
    ended: bool = False  # outputs and final_stream are set (an encoder's outputs may be {})
    error: str | None = None
    seconds: float = 0.0
    cond: threading.Condition = dataclasses.field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        if self.reduced is None:
            self.reduced = LayerReducer(kind_of(self.keys[0]) if self.keys else "", THUMB)

    @property
    def finished(self) -> bool:
        return self.error is not None or len(self.done) == len(self.keys)

    @property
    def nbytes(self) -> int:
        final = self.final_stream.nbytes if self.final_stream is not None else 0
        return (sum(v.nbytes for v in self.qk.values()) + self.reduced.nbytes + final
                + sum(a.nbytes for a in self.streams.values()))

    def take(self, key: str, w: np.ndarray, qk: LayerQK) -> None:
        """One layer's maps [H, T, T] and q/k: reduce them, keep q/k, tell the waiters."""
        self.reduced(key, w)  # only this pass's thread appends; readers wait for the layer
        with self.cond:
            if self.keep_qk:
                self.qk[key] = dataclasses.replace(qk, stream=None)
            if self.keep_stream and qk.stream is not None:
                self.streams[key] = qk.stream
            self.done.append(key)
            self.cond.notify_all()

    def wait_end(self) -> None:
        """Block until the pass has set its outputs and last stream (just after its last
        layer), or failed."""
        with self.cond:
            while not self.ended and self.error is None:
                self.cond.wait(0.1)
        if self.error is not None:
            raise RuntimeError(self.error)

    def wait(self, n_layers: int, on_progress: Callable[[int, int], None] | None = None,
             timeout: float = 900.0) -> None:
        """Block until the first `n_layers` layers are in (or the pass failed)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.done) < n_layers and self.error is None:
                if on_progress:
                    on_progress(len(self.done), len(self.keys))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the pass over {len(self.keys)} layers took over "
                                       f"{timeout:.0f} s")
                self.cond.wait(min(left, 0.25))
        if self.error is not None and len(self.done) < n_layers:
            raise RuntimeError(self.error)


_passes: OrderedDict[tuple, LongPass] = OrderedDict()
_lock = threading.Lock()


def _evict(budget: int) -> None:
    """Drop finished passes, least recently used first, until the rest fit `budget`."""
    while sum(p.nbytes for p in _passes.values()) > budget:
        victim = next((k for k, p in _passes.items() if p.finished), None)
        if victim is None:
            return
        del _passes[victim]


def long_pass(name: str, device: str, text: str, kind: str,
              generated_ids: tuple[int, ...] = ()) -> LongPass:
    """The pass over `text`'s layers of `kind`: started here if no session started it."""
    key = (name, device, text, kind, generated_ids)
    with _lock:
        found = _passes.get(key)
        if found is not None and found.error is None:
            _passes.move_to_end(key)
            return found
        model = engine.load(name, device)
        cfg = model.config
        keys = [k for k in model.block_keys() if k.startswith(kind + ".")]
        t = len(model.codec.encode(text).ids) + len(generated_ids)
        # Past the budget the pass keeps only the streams (a layer is then one layer's pass
        # from its stream, not one q·kᵀ), and past that only the reductions.
        stream_bytes = 4 * t * cfg.d_model * (len(keys) + 1)
        qk_bytes = 4 * t * cfg.head_dim * (cfg.n_heads + cfg.kv_heads) * len(keys)
        # the reductions count too: a pass over budget is evicted as soon as it finishes
        # (MiniLM at 512 tokens: 11 MiB of thumbnails and rollout input, 5 MiB of streams)
        reduced = len(keys) * LayerReducer.layer_bytes(t, cfg.n_heads, THUMB)
        budget = pass_budget()
        p = LongPass(keys=keys, n_tokens=t,
                     keep_qk=qk_bytes + stream_bytes + reduced <= budget,
                     keep_stream=stream_bytes + reduced <= budget)
        _passes[key] = p
        _evict(budget)

    def run() -> None:
        start = time.perf_counter()
        try:
            found: dict = {}
            stream_layers(model, text, kind, p.take, generated_ids=generated_ids,
                          outputs=found)
            with p.cond:
                stream = found.pop("stream", None)
                p.final_stream = stream if p.keep_stream else None
                p.outputs = found
                p.ended = True
                p.cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - the waiting views show it
            with p.cond:
                p.error = f"{type(exc).__name__}: {exc}"
                p.cond.notify_all()
        p.seconds = time.perf_counter() - start
        with _lock:
            _evict(pass_budget())

    threading.Thread(target=run, name=f"long-pass {name}", daemon=True).start()
    return p


def layer_index(key: str) -> int:
    return BlockKey.parse(key).layer


def clear() -> None:
    with _lock:
        _passes.clear()


def find_pass(name: str, device: str, text: str, kind: str,
              generated_ids: tuple[int, ...] = ()) -> LongPass | None:
    """The pass over this text if one was started (by any session), without starting one."""
    with _lock:
        return _passes.get((name, device, text, kind, generated_ids))
