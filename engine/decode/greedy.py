"""Greedy decoding: the one loop, for a batch, with a KV cache and EOS.

Every caller that continues a text (the API's `generate=N`, an encoder-decoder without a
target, the lessons, the benchmarks) decodes through `generate`; `graph=True` runs the same
decoding through the fixed-shape step of `engine.decode.graph`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.core.kv_cache import KVCache
from engine.core.transformer import Request, Transformer


@torch.no_grad()
def generate(model: Transformer, input_ids: torch.Tensor, max_new_tokens: int,
             eos_id: int | None = None, start_ids: torch.Tensor | None = None,
             use_cache: bool = True, req: Request | None = None,
             on_step: Callable[[int, KVCache | None], None] | None = None,
             input_is_real: torch.Tensor | None = None, cache: KVCache | None = None,
             prefill_chunk: int | None = None, graph: bool = False) -> torch.Tensor:
    """Greedy decoding of a batch. Decoder-only: continues input_ids [B, T] (rows of equal
    length, no padding). Encoder-decoder: encodes input_ids (`input_is_real` [B, S] marks
    source padding) and decodes from start_ids [B, t0] (default BOS). Returns the new ids
    [B, n]; once a row has produced `eos_id` its later ids are `pad_id`, and decoding stops
    when every row has. `use_cache=False` recomputes the whole prefix every step (the
    reference the cached path is tested against). `cache` (e.g. from
    `model.new_cache(capacity, batch)`) is used instead of a fresh one; `prefill_chunk` feeds
    the prompt in chunks (see `Transformer.extend`). `on_step(step, cache)` runs after each
    new token; step 0 includes the prefill. `graph=True` decodes through
    `engine.decode.graph` (one fixed-shape step, captured as a CUDA graph on a GPU): the same
    tokens, for the decoder-only models it supports (no `use_cache=False`, `cache`, `req` or
    `on_step`)."""
    if model.lm_head is None:
        raise ValueError("an encoder-only model cannot generate text")
    if graph:
        if not use_cache or cache is not None or req is not None or on_step is not None:
            raise ValueError("graph decoding takes no use_cache=False, cache, req or on_step")
        return _generate_fixed_shape(model, input_ids, max_new_tokens, eos_id, prefill_chunk)
    req = req or Request(record=())
    cfg = model.cfg
    b = input_ids.shape[0]
    memory, memory_is_real = None, None
    if cfg.arch == "encoder-decoder":
        memory = model.encode(input_ids, input_is_real, req=req)
        memory_is_real = input_is_real
        if start_ids is None:
            start_ids = torch.full((b, 1), cfg.bos_id, device=input_ids.device)
        prefix = start_ids
    else:
        if input_is_real is not None:
            raise ValueError("a decoder-only batch must have rows of equal length")
        prefix = input_ids
    if use_cache and cache is None:
        cache = model.new_cache(prefix.shape[1] + max_new_tokens)
    if not use_cache:
        cache = None
    finished = None if eos_id is None else torch.zeros(b, dtype=torch.bool,
                                                        device=input_ids.device)
    new: list[torch.Tensor] = []
    step_input = prefix
    for step in range(max_new_tokens):
        if cache is None:
            step_input = torch.cat([prefix, *new], dim=1) if new else prefix
            h = model.decode(step_input, memory=memory, memory_is_real=memory_is_real, req=req)
            logits = model.lm_head(h[:, -1])
        else:
            logits = model.extend(step_input, cache, memory, memory_is_real, req,
                                  chunk=prefill_chunk if step == 0 else None)
        next_id = logits.argmax(-1, keepdim=True)  # [B, 1]
        if finished is not None:
            next_id = next_id.masked_fill(finished[:, None], cfg.pad_id)
            finished |= next_id[:, 0] == eos_id
        new.append(next_id)
        if on_step is not None:
            on_step(step, cache)
        if finished is not None and bool(finished.all()):
            break
        step_input = next_id
    return torch.cat(new, dim=1) if new else prefix[:, :0]


def _generate_fixed_shape(model: Transformer, ids: torch.Tensor, n: int, eos_id: int | None,
                          chunk: int | None) -> torch.Tensor:
    """`generate` through GraphDecoder: prefill, then n - 1 replays of one captured step
    (eager off CUDA); EOS handled afterwards, as `generate` would have stopped."""
    from engine.decode.graph import GraphDecoder  # Triton is imported only when asked for

    if n < 1:
        return ids[:, :0]
    decoder = GraphDecoder(model, model.new_cache(ids.shape[1] + n, batch=ids.shape[0]))
    first = decoder.prefill(ids, chunk).argmax(-1, keepdim=True)
    if ids.is_cuda:
        decoder.capture()
    return pad_after_eos(torch.cat([first, decoder.decode(n - 1)], dim=1), eos_id,
                         model.cfg.pad_id)


def pad_after_eos(new: torch.Tensor, eos_id: int | None, pad_id: int) -> torch.Tensor:
    """Greedy ids [B, n] as `generate` returns them: `pad_id` after a row's first EOS, and cut
    after the step at which every row has produced one."""
    if eos_id is None:
        return new
    eos = (new == eos_id).int()
    new = new.masked_fill(eos.cumsum(1) - eos > 0, pad_id)  # an EOS earlier in the row
    all_done = (eos.cumsum(1) > 0).all(0)  # [n]
    if bool(all_done.any()):
        new = new[:, : int(all_done.nonzero()[0]) + 1]
    return new
