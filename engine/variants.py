"""MHA → GQA/MQA conversion of trained weights (Ainslie et al., 2023, "GQA", §2.1): the K and
V projections of the query heads in one group are mean-pooled into the group's single head.

Expanding (fewer K/V heads → more, by copying each K/V head to every query head of its
group) reproduces the model exactly; it lets an MQA model be shown in MHA form.

Below the conversion: what the Variants page measures about MHA / GQA / MQA models
(parameters, KV-cache bytes, decode latency), so that the page itself never holds a tensor.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

from engine.core.config import ModelConfig, variant_name
from engine.core.transformer import Transformer, init_weights


def _regroup(weight: torch.Tensor, h_old: int, h_new: int, d_head: int) -> torch.Tensor:
    """Rows of a K or V projection ([h_old·D, ...]) → [h_new·D, ...]."""
    w = weight.reshape(h_old, d_head, *weight.shape[1:])  # [h_old, D, ...]
    if h_new < h_old:
        w = w.reshape(h_new, h_old // h_new, d_head, *weight.shape[1:]).mean(dim=1)
    else:
        w = w.repeat_interleave(h_new // h_old, dim=0)
    return w.reshape(h_new * d_head, *weight.shape[1:])


def allowed_kv_heads(n_heads: int, n_kv_heads: int) -> list[int]:
    """Pooling to any divisor of the current K/V heads, or copying back to full MHA."""
    pool = [g for g in range(1, n_kv_heads + 1) if n_kv_heads % g == 0]
    return sorted(set(pool + [n_heads]))


def convert_kv_heads(model: Transformer, n_kv_heads: int) -> Transformer:
    """A copy of `model` with `n_kv_heads` K/V heads in every attention layer."""
    cfg = model.cfg
    allowed = allowed_kv_heads(cfg.n_heads, cfg.kv_heads)
    if n_kv_heads not in allowed:
        raise ValueError(
            f"{cfg.name} has {cfg.n_heads} query heads and {cfg.kv_heads} K/V heads: "
            f"kv_heads must be one of {allowed}"
        )
    if n_kv_heads == cfg.kv_heads:
        return model
    new = Transformer(cfg.with_(n_kv_heads=n_kv_heads))
    state = {}
    for name, value in model.state_dict().items():
        if any(f".{p}." in name for p in ("k_proj", "v_proj")):
            value = _regroup(value, cfg.kv_heads, n_kv_heads, cfg.head_dim)
        state[name] = value
    new.load_state_dict(state)
    param = next(model.parameters())
    return new.to(device=param.device, dtype=param.dtype).eval()


def count_parameters(model: nn.Module) -> int:
    """Parameters, counting tied weights once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# ----------------------------------------------------------------------------- measuring
# What the Variants page shows beside the conversion: parameters, KV-cache bytes after a
# prefill and per-token decode latency of MHA / GQA / MQA models, measured through the
# engine's own KVCache and greedy step (the page never touches tensors).

SMALL_HEADS = 8


def small_decoder_config(n_kv_heads: int) -> ModelConfig:
    """The random-weight decoder used for live measurements (only its shape matters):
    4 layers, d_model 256, 8 query heads and `n_kv_heads` K/V heads, RoPE, RMSNorm."""
    return ModelConfig(arch="decoder", vocab_size=512, d_model=256, n_heads=SMALL_HEADS,
                       n_kv_heads=n_kv_heads, d_ff=512, n_decoder_layers=4, positions="rope",
                       norm="rmsnorm", norm_position="pre", final_norm=True, max_len=2048,
                       bias=False, activation="gelu",
                       name=f"small-{variant_name(SMALL_HEADS, n_kv_heads)}")


@functools.lru_cache(maxsize=8)
def small_decoder(n_kv_heads: int) -> Transformer:
    """`small_decoder_config(n_kv_heads)` with seed-0 random weights, built once per process."""
    return init_weights(Transformer(small_decoder_config(n_kv_heads)), seed=0).eval()


def parameter_count(cfg: ModelConfig) -> int:
    """Parameters of a config, counted on the meta device (no weights are allocated)."""
    with torch.device("meta"):
        return count_parameters(Transformer(cfg))


def use_one_thread() -> None:
    """Small models decode faster on one intra-op thread on a small CPU (the measurement
    behind engine.api.pick_threads); process-wide, so it changes speed, never results."""
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _device(model: Transformer) -> torch.device:
    return next(model.parameters()).device


def _memory(model: Transformer, source_ids: Sequence[int] | None) -> torch.Tensor | None:
    """The encoder's memory of `source_ids` for an encoder-decoder, else None."""
    if model.cfg.arch != "encoder-decoder":
        return None
    if not source_ids:
        raise ValueError(f"{model.cfg.name} is an encoder-decoder: pass the source ids")
    return model.encode(torch.tensor([list(source_ids)], device=_device(model)))  # [1, S, d_model]


def _prefix(model: Transformer, n: int) -> torch.Tensor:
    """n decoder input ids ([1, n]): BOS for an encoder-decoder's decoder, else token 0."""
    fill = model.cfg.bos_id if model.cfg.arch == "encoder-decoder" else 0
    return torch.full((1, n), int(fill or 0), dtype=torch.long, device=_device(model))


def prefill_kv_bytes(model: Transformer, lengths: Sequence[int],
                     source_ids: Sequence[int] | None = None) -> list[int]:
    """`cache.bytes_used` of the decoder's KV cache after a prefill of each length (for an
    encoder-decoder, with the encoder's memory of `source_ids`): what the formula
    `2 · layers · K/V heads · head dim · bytes · tokens` predicts, measured."""
    out = []
    with torch.inference_mode():
        memory = _memory(model, source_ids)
        for n in lengths:
            cache = model.new_cache(int(n))
            model.decode(_prefix(model, int(n)), memory=memory, cache=cache)
            out.append(int(cache.bytes_used))
    return out


def decode_latency_ms(model: Transformer, context: int, steps: int = 8, repeats: int = 5,
                      source_ids: Sequence[int] | None = None) -> tuple[float, float]:
    """(best, median) milliseconds per greedily decoded token after a prefill of `context`
    tokens, over `repeats` timed runs after one warm-up. The best of a few repeats is the
    least disturbed by other work on a shared CPU."""
    per_token = []
    with torch.inference_mode():
        memory = _memory(model, source_ids)
        for _ in range(repeats + 1):  # the first run warms up
            cache = model.new_cache(context + steps)
            model.decode(_prefix(model, context), memory=memory, cache=cache)
            step = torch.zeros(1, 1, dtype=torch.long, device=_device(model))
            start = time.perf_counter()
            for _ in range(steps):
                h = model.decode(step, memory=memory, cache=cache)  # [1, 1, d_model]
                step = model.lm_head(h[:, -1]).argmax(-1, keepdim=True)  # [1, 1]
            per_token.append((time.perf_counter() - start) / steps * 1000)
    runs = per_token[1:]
    return min(runs), statistics.median(runs)
