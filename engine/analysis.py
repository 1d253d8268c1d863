"""Pass-level helpers the Attention page needs besides `LoadedModel.attend`: every layer's map
of one block kind streamed to a callback (so a long input never holds all its maps at once),
greedy decoding with heads switched off, and the KV cache measured after each greedy step.

Inputs are text and plain Python values; outputs are numpy arrays, strings and ints (float32
[H, Tq, Tk] maps, as an AttentionRecord holds them), so the app never touches a tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from engine.api import LayerProgress, LoadedModel, current_progress, per_block
from engine.core.block_key import kind_of
from engine.core.transformer import Request
from engine.decode.greedy import generate

OnMap = Callable[[str, np.ndarray], None]  # (block key, float32 [H, Tq, Tk])


class _MapSink(dict):
    """The record dict a forward pass fills (`record[key] = AttentionOutput`): each map of
    the chosen block kind goes to `on_map` as numpy and is then dropped, so only one layer's
    [H, Tq, Tk] map is alive at a time."""

    def __init__(self, kind: str, on_map: OnMap):
        super().__init__()
        self.kind, self.on_map = kind, on_map

    def __setitem__(self, key, out) -> None:
        if kind_of(key) != self.kind or out.weights is None:
            return
        self.on_map(key, out.weights[0].float().cpu().numpy())  # [H, Tq, Tk]


def stream_layer_maps(model: LoadedModel, text: str, kind: str, on_map: OnMap,
                      target: str | None = None, generated_ids: Sequence[int] = (),
                      generate_n: int = 0,
                      progress: LayerProgress | None = None) -> list[str]:
    """Run `text` once and hand every layer's map of block kind `kind` to `on_map(key, map)`,
    in layer order; returns the keys handed over. `progress(done, total)` after each block of
    the pass, as in `LoadedModel.attend` (default: the one engine.api.reporting_progress set).

    Encoders and decoders run one recording pass over `text`'s ids followed by
    `generated_ids` (the greedy tokens a record with generate=N holds, so the maps match it).
    Encoder-decoders read at most a few hundred tokens: they go through `attend` (with
    `target`, or `generate_n` greedy tokens when there is none).

    Shapes: each map float32 [H, Tq, Tk].
    """
    keys = [k for k in model.block_keys() if kind_of(k) == kind]
    if not keys:
        raise ValueError(f"{model.name} has no {kind!r} blocks")
    if model.kind in ("encoder", "decoder"):
        ids = list(model.codec.encode(text).ids) + [int(i) for i in generated_ids]
        x = torch.tensor([ids], device=model.device)  # [1, T]
        sink = _MapSink(kind, on_map)
        stack = model.transformer.encoder if model.kind == "encoder" else model.transformer.decoder
        report = current_progress(progress)
        with (torch.inference_mode(),
              per_block(stack.layers, len(stack.layers), report)):
            req = Request(record=keys)
            if model.kind == "encoder":
                model.transformer.encode(x, req=req, record=sink)
            else:
                model.transformer.decode(x, req=req, record=sink)
    else:
        rec = model.attend(text, target=target, generate=generate_n, layers=keys,
                           progress=progress)
        for k in keys:
            on_map(k, rec[k])
    return keys


def _heads_off(pairs: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """(block key, head) pairs → {block key: [heads]}."""
    off: dict[str, list[int]] = {}
    for key, head in pairs:
        off.setdefault(str(key), []).append(int(head))
    return off


def greedy_text_heads_off(model: LoadedModel, text: str,
                          heads_off: Iterable[tuple[str, int]], n: int) -> str:
    """An encoder-decoder's greedy decode of `text`, at most `n` tokens (the end token left
    out), with the given (block key, head) pairs switched off."""
    if model.kind != "encoder-decoder":
        raise ValueError(f"{model.name} is not an encoder-decoder")
    cfg = model.config
    ids = torch.tensor([model.codec.encode(text).ids], device=model.device)  # [1, S]
    new = generate(model.transformer, ids, n, eos_id=cfg.eos_id,
                   req=Request(record=(), heads_off=_heads_off(heads_off)))
    out = new[0].tolist()
    if out and out[-1] == cfg.eos_id:
        out = out[:-1]
    return (model.target_codec or model.codec).decode(out)


def kv_bytes_per_step(model: LoadedModel, text: str, n: int) -> list[int]:
    """KV-cache bytes (`cache.bytes_used`) after each of `n` greedy decoding steps of `text`
    (step 0 includes the prefill); no end token stops it early."""
    ids = torch.tensor([model.codec.encode(text).ids], device=model.device)  # [1, S]
    sizes: list[int] = []
    generate(model.transformer, ids, n, eos_id=None,
             on_step=lambda step, cache: sizes.append(int(cache.bytes_used)))
    return sizes
