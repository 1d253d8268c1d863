"""Greedy decoding of the date models, one generated token at a time, with the attention each
step used: the step-through view of an encoder-decoder (Vaswani et al., 2017, §3.2.3).

At decoding step i the decoder's input is the token at position i ([BOS] at i = 0), its query
attends (masked self-attention) over the decoder positions 0..i, and (cross-attention) over
every source position; the output is generated token i. With a KV cache only position i's K/V
are computed at step i; the cache then holds i + 1 positions per decoder layer:

    self-attention cache bytes after step i = 2 · n_decoder_layers · Hkv · D · 4 · (i + 1)

so MHA (Hkv = 8), GQA (Hkv = 2) and MQA (Hkv = 1) differ by 8 : 2 : 1. The encoder's K/V
for cross-attention are computed once per sequence and held as well (`cross_kv_bytes`).

Inputs are prepared as the date model prepares them (`engine.models.seq2seq.prepare_source`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer

from engine.core.kv_cache import KVCache
from engine.core.transformer import Request, Transformer
from engine.models.seq2seq import MAX_NEW_TOKENS, ids_to_text, output_notices, prepare_source

# --------------------------------------------------------------------------- step-through


@dataclass
class Step:
    """One greedy decoding step.

    Shapes: self_attn [L, H, index + 1] float32 (decoder keys = `query_tokens[: index + 1]`);
    cross_attn [L, H, S] float32 (keys = the source tokens). H counts query heads.
    """

    index: int  # position of the decoder query; generated token number `index`
    query_token: str  # the decoder input at this step: [BOS] or the previous output
    token: str  # the token this step generated
    token_id: int
    self_attn: np.ndarray
    cross_attn: np.ndarray
    kv_cache_bytes: int  # decoder self-attention K/V held after this step (index + 1 positions)
    cross_kv_bytes: int  # encoder K/V held for cross-attention (same at every step)


@dataclass
class StepThrough:
    """Greedy decoding of one input, step by step."""

    source_tokens: list[str]  # encoder input, ends with [EOS]
    query_tokens: list[str]  # decoder inputs: [BOS], then every generated token but the last
    output: str  # decoded text (without [EOS])
    steps: list[Step]
    notices: list[str]
    kv_cache_bytes_per_token: int  # per decoder position: 2 · layers · Hkv · D · 4

    @property
    def generated_tokens(self) -> list[str]:
        return [s.token for s in self.steps]


@torch.no_grad()
def step_through(
    model: Transformer,
    tokenizer: Tokenizer,
    text: str,
    max_new_tokens: int = MAX_NEW_TOKENS,
    use_cache: bool = True,
) -> StepThrough:
    """Greedy-decode `text` and return, per generated token, its decoder self-attention row
    and cross-attention row (every layer, every query head) and the KV-cache bytes at that step.

    `use_cache=False` recomputes the whole decoder prefix at every step and reads the last row
    of each map: the reference the cached path is tested against. Bytes are then computed from
    the config with the same formula the cache obeys. Empty input raises ValueError.
    """
    cfg = model.cfg
    device = next(model.parameters()).device
    source = prepare_source(tokenizer, text)
    src = torch.tensor([source.ids], device=device)  # [1, S]
    memory = model.encode(src)
    per_token = cfg.kv_cache_bytes_per_token(4)
    cross_bytes = 2 * cfg.n_decoder_layers * cfg.kv_heads * cfg.head_dim * 4 * src.shape[1]
    cache: KVCache | None = model.new_cache(max_new_tokens + 1) if use_cache else None
    req = Request(record=[k for i in range(cfg.n_decoder_layers)
                          for k in (f"decoder.self.{i}", f"decoder.cross.{i}")])  # fmt: skip
    prefix = [cfg.bos_id]
    steps: list[Step] = []
    for index in range(max_new_tokens):
        step_ids = prefix[-1:] if use_cache else prefix
        record: dict = {}
        h = model.decode(torch.tensor([step_ids], device=device), memory=memory, req=req,
                         record=record, cache=cache)  # fmt: skip
        next_id = int(model.lm_head(h[0, -1]).argmax())
        self_rows = [
            record[f"decoder.self.{i}"].weights[0, :, -1] for i in range(cfg.n_decoder_layers)
        ]
        cross_rows = [
            record[f"decoder.cross.{i}"].weights[0, :, -1] for i in range(cfg.n_decoder_layers)
        ]
        if cache is not None:
            kv_bytes = cache.bytes_used
            cross_kv = sum(c.bytes_used for c in cache.cross_attn or [])
        else:
            kv_bytes, cross_kv = per_token * (index + 1), cross_bytes
        steps.append(
            Step(
                index=index,
                query_token=tokenizer.id_to_token(prefix[-1]),
                token=tokenizer.id_to_token(next_id),
                token_id=next_id,
                self_attn=torch.stack(self_rows).float().cpu().numpy(),  # [L, H, index + 1]
                cross_attn=torch.stack(cross_rows).float().cpu().numpy(),  # [L, H, S]
                kv_cache_bytes=int(kv_bytes),
                cross_kv_bytes=int(cross_kv),
            )
        )
        prefix.append(next_id)
        if next_id == cfg.eos_id:
            break
    output = ids_to_text(tokenizer, prefix[1:])
    notices = source.notices + output_notices(output)
    return StepThrough(
        source_tokens=source.tokens,
        query_tokens=[tokenizer.id_to_token(i) for i in prefix[:-1]],
        output=output,
        steps=steps,
        notices=notices,
        kv_cache_bytes_per_token=per_token,
    )


