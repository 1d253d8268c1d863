"""A long input's maps, recomputed from one pass's queries and keys.

Showing layer k of a 2,048-token text means running layers 0..k (Gemma 3 270M: about 0.5 s
a layer on this 2-core CPU), and each layer's maps weigh H·T² floats (64 MB for Gemma's 4
heads). One pass instead keeps every layer's post-RoPE queries and keys: 8 MB of q and 2 MB
of k a Gemma layer, because K/V heads are stored once and not per query head. A head's map
is then one product q·kᵀ and a softmax, computed by the same `engine.core.attention` route
the pass takes, so it is the pass's own map (tests/engine/test_replay.py holds it to 1e-6).

Scope: self-attention of an encoder or a decoder over one unpadded text, under the model's
own masks (causal, its sliding windows, ALiBi or T5 biases, soft-capping). Cross-attention,
knock-outs and padding keep going through `LoadedModel.attend`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import torch

from engine.api import LayerProgress, LoadedModel, current_progress, per_block
from engine.core.attention import attention
from engine.core.block_key import BlockKey, kind_of
from engine.core.positions import alibi_bias
from engine.core.transformer import Request
from engine.fast import blocked


@dataclass(frozen=True)
class LayerQK:
    """One layer's queries and keys, as its attention saw them (after RoPE and q/k norms),
    and the residual stream entering the layer: a pass can resume there
    (AttendOptions.resume) instead of running the layers below again."""

    q: np.ndarray  # [H, T, D] float32
    k: np.ndarray  # [Hkv, T, D] float32: shared K/V heads once, not per query head
    stream: np.ndarray | None = None  # [T, d_model] float32

    @property
    def nbytes(self) -> int:
        return int(self.q.nbytes + self.k.nbytes
                   + (self.stream.nbytes if self.stream is not None else 0))


OnLayer = Callable[[str, np.ndarray, LayerQK], None]  # (block key, [H, T, T] weights, q/k)


class _LayerSink(dict):
    """The record dict a pass fills: each self-attention block of `kind` goes to `on_layer`
    as numpy (weights, q/k and the stream that entered it), and is then dropped."""

    def __init__(self, kind: str, n_kv: int, on_layer: OnLayer):
        super().__init__()
        self.kind, self.n_kv, self.on_layer = kind, n_kv, on_layer
        self.entering: dict[int, np.ndarray] = {}  # layer index → [T, d], set by a hook

    def watch(self, layers) -> list:
        """Hooks on every block of the stack keeping the stream that enters it."""
        def keep(i):
            return lambda _m, args: self.entering.__setitem__(i, _np32(args[0][0]))
        return [block.register_forward_pre_hook(keep(i)) for i, block in enumerate(layers)]

    def __setitem__(self, key, out) -> None:
        if kind_of(key) != self.kind or out.weights is None or out.q is None:
            return
        g = out.q.shape[1] // self.n_kv  # the display copy repeats each K head g times
        qk = LayerQK(q=_np32(out.q[0]), k=_np32(out.k[0, ::g]),
                     stream=self.entering.pop(BlockKey.parse(key).layer, None))
        self.on_layer(key, _np32(out.weights[0]), qk)


def _np32(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().contiguous().numpy()


def _stack(model: LoadedModel, kind: str):
    if model.kind not in ("encoder", "decoder") or kind not in ("encoder.self", "decoder.self"):
        raise ValueError(f"replay covers an encoder's or a decoder's self-attention, not "
                         f"{model.kind} {kind!r}")
    t = model.transformer
    return t.encoder if model.kind == "encoder" else t.decoder


def stream_layers(model: LoadedModel, text: str, kind: str, on_layer: OnLayer,
                  generated_ids: Sequence[int] = (),
                  progress: LayerProgress | None = None,
                  outputs: dict | None = None) -> list[str]:
    """One pass over `text` (then `generated_ids`), handing every layer of `kind` to
    `on_layer(key, weights, qk)` in order, each dropped after; returns the keys. `outputs`,
    if given, receives what `LoadedModel.attend` reports from the same pass (a decoder's
    next-token top-k, an encoder's embedding), so no second pass is needed for them, and
    under "stream" the last layer's output stream (before the final norm): with every
    layer's entering stream (qk.stream), the stream after each layer, as the logit lens
    reads it.

    Shapes: weights float32 [H, T, T]; qk.q [H, T, D], qk.k [Hkv, T, D], qk.stream and
    outputs["stream"] [T, d_model].
    """
    stack = _stack(model, kind)
    keys = [k for k in model.block_keys() if kind_of(k) == kind]
    ids = list(model.codec.encode(text).ids) + [int(i) for i in generated_ids]
    x = torch.tensor([ids], device=model.device)  # [1, T]
    sink = _LayerSink(kind, model.config.kv_heads, on_layer)
    report = current_progress(progress)
    last: list[torch.Tensor] = []
    hooks = sink.watch(stack.layers) + [stack.layers[-1].register_forward_hook(
        lambda _m, _a, out: last.append(out[0]))]
    try:
        with torch.inference_mode(), per_block(stack.layers, len(stack.layers), report):
            req = Request(record=keys, qk=True)
            if model.kind == "encoder":
                hidden = model.transformer.encode(x, req=req, record=sink)
            else:
                hidden = model.transformer.decode(x, req=req, record=sink)
            if outputs is not None:
                model._outputs(model.transformer, SimpleNamespace(hidden=hidden), None,
                               [outputs], top_k=10)
                outputs["stream"] = _np32(last[-1][0])
    finally:
        for h in hooks:
            h.remove()
    return keys


def maps_from_qk(model: LoadedModel, key: str, qk: LayerQK,
                 heads: Sequence[int] | None = None, scores: bool = False):
    """The maps of block `key` for `heads` (default: all), from that layer's queries and keys;
    with `scores`, also the pre-softmax scores (masked cells -inf), as (weights, scores).

    Shapes: qk.q [H, T, D], qk.k [Hkv, T, D] -> float32 [len(heads), T, T] (each).
    """
    bk = BlockKey.parse(key)
    stack = _stack(model, bk.kind)
    cfg = model.config
    attn = stack.layers[bk.layer].self_attn
    h_all, t, _ = qk.q.shape
    g = h_all // qk.k.shape[0]
    heads = list(range(h_all)) if heads is None else [int(h) for h in heads]
    side = "decoder" if bk.kind == "decoder.self" else "encoder"
    spec = model.transformer._self_spec(side, Request(), None, t, text_side=True)
    spec = replace(spec, window=attn.window, offset=0)
    bias_all = stack.position_bias(t, t, 0, model.device)  # T5: [1, H, T, T] or None
    if cfg.positions == "alibi":
        bias_all = alibi_bias(h_all, t, t, 0, device=model.device)[None]
    out = np.empty((len(heads), t, t), dtype=np.float32)
    pre = np.empty((len(heads), t, t), dtype=np.float32) if scores else None
    with torch.inference_mode():
        k_all = torch.from_numpy(np.ascontiguousarray(qk.k)).to(model.device)
        for i, h in enumerate(heads):
            q = torch.from_numpy(np.ascontiguousarray(qk.q[h])).to(model.device)[None, None]
            k = k_all[h // g][None, None]  # [1, 1, T, D]
            v = k  # the output is not wanted; any V of K's shape will do
            bias = None if bias_all is None else bias_all[:, h:h + 1]
            found = blocked.faster(attention, q, k, v, spec, cfg.scale, bias, True, scores,
                                   cfg.attn_softcap)
            if found is None:
                r = attention(q, k, v, mask=spec.dense(t, t, model.device), bias=bias,
                              scale=cfg.scale, need_weights=True, keep_scores=scores,
                              softcap=cfg.attn_softcap)
                found = (r.out, r.weights, r.scores)
            out[i] = found[1][0, 0].float().cpu().numpy()
            if pre is not None:
                pre[i] = found[2][0, 0].float().cpu().numpy()
    return (out, pre) if scores else out


def lens_from_streams(model: LoadedModel, entering: Sequence[np.ndarray], last: np.ndarray,
                      position: int, top_k: int = 10) -> list[list[tuple[str, float]]]:
    """The logit lens at `position` of a decoder from a pass's streams: `entering` every
    layer's entering stream (qk.stream, in order) and `last` the last layer's output
    (outputs["stream"] of stream_layers); layer l's output is layer l + 1's input.

    Shapes: entering L arrays [T, d_model], last [T, d_model] → L rows of top_k pairs.
    """
    if model.kind != "decoder":
        raise ValueError(f"the logit lens reads a decoder's next-token predictions; "
                         f"{model.name} is an {model.kind}")
    t = last.shape[0]
    if not -t <= position < t:
        raise ValueError(f"lens position {position} is outside the text's {t} tokens")
    i, dtype = position % t, next(model.transformer.parameters()).dtype
    rows = [torch.from_numpy(np.ascontiguousarray(a[i:i + 1])).to(model.device, dtype)
            for a in [*entering[1:], last]]  # [1, d] each: the lens reads one position
    return model.lens(model.transformer, rows, 0, top_k)
