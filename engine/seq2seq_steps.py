"""Greedy decoding of the date models, one generated token at a time, with the attention each
step used: the step-through view of an encoder-decoder (Vaswani et al., 2017, §3.2.3).

At decoding step i the decoder's input is the token at position i ([BOS] at i = 0), its query
attends (masked self-attention) over the decoder positions 0..i, and (cross-attention) over
every source position; the output is generated token i. With a KV cache only position i's K/V
are computed at step i; the cache then holds i + 1 positions per decoder layer:

    self-attention cache bytes after step i = 2 · n_decoder_layers · Hkv · D · 4 · (i + 1)

so MHA (Hkv = 8), GQA (Hkv = 2) and MQA (Hkv = 1) differ by 8 : 2 : 1. The encoder's K/V
for cross-attention are computed once per sequence and held as well (`cross_kv_bytes`).

Inputs people type are prepared by `prepare_source` (strip, truncate, [EOS]); what it could
not handle becomes a notice, never an exception, except for an empty input (ValueError).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tokenizers import Tokenizer

from engine.datasets.dates import (
    EOS,
    MAX_SOURCE_CHARS,
    TARGET_CHARS,
    UNK,
    YEAR_MAX,
    YEAR_MIN,
    is_valid_target,
    looks_like_date,
)
from engine.kv_cache import KVCache
from engine.transformer import Request, Transformer

MAX_NEW_TOKENS = TARGET_CHARS + 1  # ten characters and [EOS]

EMPTY_INPUT = "empty input: type a date, e.g. 'March 3rd, 2021' or '2021年3月3日'"
NOTICE_TRUNCATED = (
    "input was {n} characters; only the first {max} were used "
    "(the model was trained on dates of at most {max} characters)"
)
NOTICE_UNKNOWN = "{n} character(s) outside the model's vocabulary were read as [UNK]: {chars}"
NOTICE_NOT_A_DATE = "the input does not look like a date; the output is the model's best guess"
NOTICE_BAD_OUTPUT = (
    f"the output {{out!r}} is not a valid date between {YEAR_MIN}-01-01 and {YEAR_MAX}-12-31"
)


@dataclass
class Source:
    """A prepared encoder input: ids end with [EOS]; tokens label the cross-attention keys."""

    text: str  # what was encoded (stripped, maybe truncated)
    ids: list[int]
    tokens: list[str]
    notices: list[str] = field(default_factory=list)
    truncated: bool = False


def prepare_source(tokenizer: Tokenizer, text: str) -> Source:
    """Strip `text`, keep its first MAX_SOURCE_CHARS characters, encode; ids end with [EOS].

    Raises ValueError(EMPTY_INPUT) for an empty or blank input; everything else (too long,
    unknown characters, not a date) is accepted with a notice.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected text, got {type(text).__name__}")
    # Lone surrogates (pasted from odd sources) cannot be encoded and would crash the tokenizer.
    original = text.encode("utf-8", "replace").decode("utf-8").strip()
    if not original:
        raise ValueError(EMPTY_INPUT)
    notices = []
    kept = original[:MAX_SOURCE_CHARS]
    truncated = len(kept) < len(original)
    if truncated:
        notices.append(NOTICE_TRUNCATED.format(n=len(original), max=MAX_SOURCE_CHARS))
    enc = tokenizer.encode(kept)  # the tokenizer's post-processor appends [EOS]
    ids, tokens = list(enc.ids), list(enc.tokens)
    eos_id = tokenizer.token_to_id(EOS)
    if not ids or ids[-1] != eos_id:  # a tokenizer.json without the post-processor
        ids, tokens = [*ids, eos_id], [*tokens, EOS]
    unk_id = tokenizer.token_to_id(UNK)
    unknown = {kept[a:b] for (a, b), i in zip(enc.offsets, enc.ids, strict=True) if i == unk_id}
    if unknown:
        chars = ", ".join(map(repr, sorted(unknown)[:10]))
        notices.append(NOTICE_UNKNOWN.format(n=ids.count(unk_id), chars=chars))
    if not looks_like_date(kept):
        notices.append(NOTICE_NOT_A_DATE)
    return Source(text=kept, ids=ids, tokens=tokens, notices=notices, truncated=truncated)


def input_notices(tokenizer: Tokenizer, text: str) -> list[str]:
    """The notices `prepare_source` attaches to `text` (empty text: ValueError)."""
    return prepare_source(tokenizer, text).notices


def output_notices(output: str) -> list[str]:
    """[NOTICE_BAD_OUTPUT] when `output` is not a valid ISO date in range, else []."""
    return [] if is_valid_target(output) else [NOTICE_BAD_OUTPUT.format(out=output)]


def batch_sources(
    sources: list[Source], pad_id: int, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad prepared sources: (ids [B, S] long, is_real [B, S] bool)."""
    width = max(len(s.ids) for s in sources)
    ids = torch.full((len(sources), width), pad_id, dtype=torch.long)
    for row, s in enumerate(sources):
        ids[row, : len(s.ids)] = torch.tensor(s.ids)
    ids = ids.to(device)
    return ids, ids != pad_id


@torch.no_grad()
def greedy_decode(
    model: Transformer,
    src_ids: torch.Tensor,
    src_is_real: torch.Tensor | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    use_cache: bool = True,
) -> torch.Tensor:
    """Batched greedy decoding (the engine's `generate` takes one sequence at a time).

    Shapes: src_ids [B, S], src_is_real [B, S] bool → generated ids [B, n], n <= max_new_tokens;
    after a row's [EOS] its remaining ids are [PAD]. Stops early once every row has [EOS].
    """
    cfg = model.cfg
    b = src_ids.shape[0]
    memory = model.encode(src_ids, src_is_real)  # [B, S, d_model]
    cache = model.new_cache(max_new_tokens + 1) if use_cache else None
    prefix = torch.full((b, 1), cfg.bos_id, dtype=torch.long, device=src_ids.device)
    done = torch.zeros(b, dtype=torch.bool, device=src_ids.device)
    new = []
    for _ in range(max_new_tokens):
        step_input = prefix[:, -1:] if use_cache else prefix
        h = model.decode(step_input, memory=memory, memory_is_real=src_is_real, cache=cache)
        next_id = model.lm_head(h[:, -1]).argmax(-1)  # [B]
        next_id = next_id.masked_fill(done, cfg.pad_id)
        new.append(next_id)
        done |= next_id == cfg.eos_id
        prefix = torch.cat([prefix, next_id[:, None]], dim=1)
        if bool(done.all()):
            break
    return torch.stack(new, dim=1)


def ids_to_text(tokenizer: Tokenizer, ids: list[int]) -> str:
    """Generated ids → text, stopping at the first [EOS] and dropping specials."""
    eos = tokenizer.token_to_id(EOS)
    if eos in ids:
        ids = ids[: ids.index(eos)]
    return tokenizer.decode(ids, skip_special_tokens=True)


@dataclass
class Normalised:
    """One input's result: the decoded text and any notices about input or output."""

    source: Source
    output: str
    notices: list[str]


def normalise(
    model: Transformer,
    tokenizer: Tokenizer,
    texts: list[str],
    batch_size: int = 256,
    use_cache: bool = True,
) -> list[Normalised]:
    """Normalise many dates at once (batched greedy decoding). Empty texts raise ValueError."""
    device = next(model.parameters()).device
    results = []
    for start in range(0, len(texts), batch_size):
        sources = [prepare_source(tokenizer, t) for t in texts[start : start + batch_size]]
        ids, is_real = batch_sources(sources, model.cfg.pad_id, device)
        out = greedy_decode(model, ids, is_real, use_cache=use_cache).cpu().tolist()
        for source, row in zip(sources, out, strict=True):
            text = ids_to_text(tokenizer, row)
            results.append(Normalised(source, text, source.notices + output_notices(text)))
    return results


def exact_match(
    model: Transformer, tokenizer: Tokenizer, pairs: list[tuple[str, str]], batch_size: int = 256
) -> float:
    """Share of (source, target) pairs whose greedy output equals the target exactly."""
    outs = normalise(model, tokenizer, [s for s, _ in pairs], batch_size=batch_size)
    return sum(o.output == t for o, (_, t) in zip(outs, pairs, strict=True)) / len(pairs)


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


__all__ = [
    "EMPTY_INPUT",
    "MAX_NEW_TOKENS",
    "NOTICE_BAD_OUTPUT",
    "NOTICE_NOT_A_DATE",
    "NOTICE_TRUNCATED",
    "NOTICE_UNKNOWN",
    "Normalised",
    "Source",
    "Step",
    "StepThrough",
    "batch_sources",
    "exact_match",
    "greedy_decode",
    "ids_to_text",
    "input_notices",
    "output_notices",
    "normalise",
    "prepare_source",
    "step_through",
]
