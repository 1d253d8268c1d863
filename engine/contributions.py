"""What each head moves, not only where it looks: norm maps, flow contributions, flow across
layers, and the logit lens.

- Norm maps (Kobayashi et al., 2020, "Attention is Not Only a Weight"):
  `norm[h, i, j] = α[h, i, j] · ‖W_O^h v^h_j‖₂`, with `v^h_j = W_V x_j + b_V` for the K/V head
  that query head h reads (GQA/MQA included) and `W_O^h` the columns of the output projection
  that head h's output meets (its bias left out).
- Flow contributions (the proximity measure of Ferrando & Voita, 2024, "Information Flow
  Routes", as the LLM Transparency Tool computes it): for query i the parts are
  `p_ij = Σ_h α[h, i, j] · W_O^h v^h_j` for every key j, and the residual r_i (the stream the
  sublayer's output is added to: the un-normalised stream for pre-norm models, the sublayer
  input for post-norm ones). `whole_i = r_i + Σ_j p_ij + b_O`; a part's share is
  `max(‖whole_i‖₁ − ‖whole_i − p‖₁, 0)` over the row's sum. Shape [Tq, Tk + 1], the last
  column the residual's. Models with a norm on the sublayer output before the residual add
  (Gemma 2/3) pass each part through that norm with the whole output's scale held fixed: the
  norm is linear once its denominator is fixed (a LayerNorm's bias goes to the whole, like
  b_O, not to any part).
- Flow across layers: per-layer flow maps composed through the residual (each row's residual
  share stays on its own position), a rollout of contributions instead of raw weights.
- Logit lens (nostalgebraist, 2020): the final norm and unembedding applied to the residual
  stream after each layer.

Memory stays O(H·T²) per recorded block: `W_O^h v^h_j` is [H, Tk, d_model] (no query axis) and
the flow's parts are formed for a block of queries at a time, never as [Tq, Tk, d_model].

    B batch · H query heads · Hkv K/V heads · Tq queries · Tk keys · D head dim · d d_model
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.core.block_key import BlockKey
from engine.core.transformer import Block, Transformer


@dataclass
class _Seen:
    """What a forward pass showed of one attention sublayer."""

    attn_input: torch.Tensor | None = None  # [B, Tq, d]: x as the attention module got it
    memory: torch.Tensor | None = None  # [B, Tk, d]: the encoder output (cross-attention)
    residual: torch.Tensor | None = None  # [B, Tq, d]: the stream the output is added to
    post_input: torch.Tensor | None = None  # [B, Tq, d]: the sublayer output before its norm


def _parts(model: Transformer, key: BlockKey) -> tuple[Block, nn.Module, nn.Module, nn.Module]:
    """(block, attention, the sublayer's norm, its post-sublayer norm or None)."""
    stack = model.encoder if key.stack == "encoder" else model.decoder
    block = stack.layers[key.layer]
    if key.cross:
        return block, block.cross_attn, block.cross_norm, block.cross_post
    return block, block.self_attn, block.self_norm, block.self_post


@contextmanager
def watching(model: Transformer, keys: list[str]) -> Iterator[dict[str, _Seen]]:
    """Within the block, every forward pass of `model` fills {key: _Seen} for `keys`."""
    seen: dict[str, _Seen] = {k: _Seen() for k in keys}
    handles = []
    for key in keys:
        block, attn, norm, post = _parts(model, BlockKey.parse(key))
        s = seen[key]

        def on_attn(_mod, args, kwargs, s=s, pre=block.pre):
            s.attn_input = args[0]
            s.memory = kwargs.get("memory")
            if not pre:  # post-norm: the residual is the sublayer's input itself
                s.residual = args[0]

        handles.append(attn.register_forward_pre_hook(on_attn, with_kwargs=True))
        if block.pre:
            handles.append(norm.register_forward_pre_hook(
                lambda _m, args, s=s: setattr(s, "residual", args[0])))
        if post is not None:
            handles.append(post.register_forward_pre_hook(
                lambda _m, args, s=s: setattr(s, "post_input", args[0])))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def head_outputs(attn: nn.Module, kv_input: torch.Tensor,
                 heads_off: list[int] | None = None) -> torch.Tensor:
    """`W_O^h v^h_j` for every query head h and key j: [B, H, Tk, d].

    kv_input [B, Tk, d] is what the values are projected from (the attention's input, or the
    encoder output for cross-attention). Query head h reads K/V head h // G.
    """
    b, t_k, _ = kv_input.shape
    h, h_kv, d = attn.n_heads, attn.n_kv_heads, attn.d_head
    v = attn.v_proj(kv_input).view(b, t_k, h_kv, d).transpose(1, 2)  # [B, Hkv, Tk, D]
    v = v.repeat_interleave(h // h_kv, dim=1)  # [B, H, Tk, D]: head h reads K/V head h // G
    w_o = attn.o_proj.weight.view(-1, h, d)  # [d, H, D]: W_O^h = w_o[:, h]
    out = torch.einsum("bhjk,ehk->bhje", v, w_o)  # [B, H, Tk, d]
    if heads_off:
        out[:, list(heads_off)] = 0  # an ablated head moves nothing
    return out


def norm_map(weights: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
    """weights [B, H, Tq, Tk] · ‖W_O^h v^h_j‖₂ → [B, H, Tq, Tk]."""
    return weights * moved.norm(dim=-1)[:, :, None, :]


def _through_post_norm(post: nn.Module | None, post_input: torch.Tensor | None,
                       moved: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The post-sublayer norm as a linear map of the parts, with the whole output's
    denominator held fixed: p → p / rms(z) · w (RMSNorm), (p − mean(p)) / σ(z) · w
    (LayerNorm). Split into its key side (applied to `moved` [B, H, Tk, d] once) and its
    query side (a scale per query row [B, Tq], applied to the weights)."""
    if post is None:
        return moved, None
    z = post_input.float()
    if isinstance(post, nn.LayerNorm):
        keyed = (moved - moved.mean(-1, keepdim=True)) * post.weight.float()
        return keyed, torch.rsqrt(z.var(-1, unbiased=False) + post.eps)
    return moved * post.weight.float(), torch.rsqrt(z.pow(2).mean(-1) + post.eps)


def flow_map(weights: torch.Tensor, moved: torch.Tensor, residual: torch.Tensor,
             whole: torch.Tensor, post: nn.Module | None = None,
             post_input: torch.Tensor | None = None,
             rows: int | None = None) -> torch.Tensor:
    """Flow contributions [B, Tq, Tk + 1] (last column: the residual), rows summing to 1.

    Shapes: weights [B, H, Tq, Tk]; moved [B, H, Tk, d] (`head_outputs`); residual and whole
    [B, Tq, d], whole being the stream after the residual add (before a post-norm model's
    norm); post_input [B, Tq, d] the sublayer output a post-sublayer norm scaled.

    ‖whole_i − p_ij‖₁ needs every part as a d-vector, so the cost is Tq · Tk · d; it is kept
    down three ways:
    - a block of queries at a time, and for it only the span of keys some head reads (a
      causal block stops at its last query, a sliding window starts near its first): a key
      no head reads moves nothing, and its share is 0 without being computed;
    - whole − p for every key of the block by one batched product per key ([rows, H] ·
      [H, d], whole the added term) into one buffer allocated once (a fresh buffer per block
      costs more in page faults than the product);
    - the share is summed as Σ_e (|whole_e| − |whole_e − p_e|), small terms, not as the
      difference of two large L1 norms, whose float32 rounding would swamp a small part.
    """
    b, h, t_q, t_k = weights.shape
    d = moved.shape[-1]
    weights, whole, residual = weights.float(), whole.float(), residual.float()
    keyed, row_scale = _through_post_norm(post, post_input, moved.float())
    per_key = keyed.transpose(1, 2).contiguous()  # [B, Tk, H, d]: one [H, d] matrix per key
    read = (weights != 0).any(1)  # [B, Tq, Tk]: the keys some head reads, per query
    # a buffer of ≤ 128 MB, or 4 rows: fewer, larger products beat many small ones
    rows = rows or max(4, min(64, (1 << 25) // max(1, t_k * d)))
    buffer = torch.empty(rows * t_k * d, dtype=torch.float32, device=weights.device)
    c = torch.zeros(b, t_q, t_k + 1, dtype=torch.float32, device=weights.device)
    c[..., t_k] = (whole.abs() - (whole - residual).abs()).sum(-1).clamp_min(0)
    for i in range(b):
        for s in range(0, t_q, rows):
            sl = slice(s, min(s + rows, t_q))
            keys = read[i, sl].any(0).nonzero()
            if len(keys) == 0:
                continue
            lo, hi = int(keys[0]), int(keys[-1]) + 1
            alpha = weights[i, :, sl, lo:hi]  # [H, r, n]
            if row_scale is not None:
                alpha = alpha * row_scale[i, None, sl, None]
            w = whole[i, sl]  # [r, d]
            rest = buffer[:(hi - lo) * w.shape[0] * d].view(hi - lo, w.shape[0], d)
            torch.baddbmm(w.expand(hi - lo, -1, -1), alpha.permute(2, 1, 0),
                          per_key[i, lo:hi], alpha=-1, out=rest)  # whole_i − p_ij
            rest.abs_().sub_(w.abs())  # |whole_e − p_e| − |whole_e|
            c[i, sl, lo:hi] = (-rest.sum(-1).T).clamp_min(0) * read[i, sl, lo:hi]
    total = c.sum(-1, keepdim=True)
    # A row with no measurable part (all-zero whole) keeps everything on its residual.
    fallback = torch.zeros_like(c)
    fallback[..., -1] = 1
    return torch.where(total > 0, c / total.clamp_min(1e-30), fallback)


def compute(model: Transformer, seen: dict[str, _Seen], record: dict,
            heads_off: dict[str, list[int]] | None = None) -> dict[str, tuple]:
    """{key: (norm [B, H, Tq, Tk], flow [B, Tq, Tk + 1])} for every watched key whose
    weights `record` (key → AttentionOutput) holds."""
    result = {}
    for key, s in seen.items():
        if key not in record or record[key].weights is None or s.attn_input is None:
            continue
        block_key = BlockKey.parse(key)
        _, attn, _, post = _parts(model, block_key)
        weights = record[key].weights
        kv_input = s.memory if block_key.cross else s.attn_input
        moved = head_outputs(attn, kv_input, (heads_off or {}).get(key))
        sub_out = torch.einsum("bhij,bhjd->bid", weights.float(), moved.float())  # [B, Tq, d]
        if attn.o_proj.bias is not None:
            sub_out = sub_out + attn.o_proj.bias.float()
        if post is not None:
            sub_out = post(s.post_input).float()  # the norm of the whole output
        whole = s.residual.float() + sub_out
        result[key] = (norm_map(weights.float(), moved.float()),
                       flow_map(weights, moved, s.residual, whole, post, s.post_input))
    return result


def flow_across_layers(flows: list[np.ndarray]) -> np.ndarray:
    """Per-layer flow maps [T, T + 1] of one stack, in layer order → [T, T]: row i the share
    with which each input token reaches position i's output (rows sum to 1). A row's residual
    share stays on its own position: M_l = F_l[:, :T] + diag(F_l[:, T]); the result is
    M_L · … · M_1."""
    if not flows:
        raise ValueError("no flow maps to compose")
    t = flows[0].shape[0]
    total = np.eye(t, dtype=np.float64)
    for f in flows:
        if f.shape != (t, t + 1):
            raise ValueError(f"flow maps must all be [T, T + 1] = [{t}, {t + 1}], got {f.shape}")
        step = f[:, :t].astype(np.float64) + np.diag(f[:, t].astype(np.float64))
        total = step @ total
    return total


@torch.no_grad()
def logit_lens(model: Transformer, hidden_states: list[torch.Tensor], position: int,
               k: int = 10) -> list[tuple[list[int], list[float]]]:
    """Per layer: the top-k next-token ids and probabilities that the model's final norm and
    unembedding give for the residual stream after that layer, at `position`.

    hidden_states: one [T, d] stream per decoder layer (after the layer's residual adds).
    """
    out = []
    for h in hidden_states:
        x = h[position][None]  # [1, d]
        if model.decoder.norm is not None:
            x = model.decoder.norm(x)
        logits = model.lm_head(x)  # with the model's own soft-capping and bias
        probs = torch.softmax(logits.float()[0], -1)
        p, idx = probs.topk(min(k, probs.shape[-1]))
        out.append((idx.tolist(), p.tolist()))
    return out


@contextmanager
def layer_outputs(model: Transformer) -> Iterator[list[torch.Tensor]]:
    """Within the block, a decoder pass fills a list with every decoder layer's output
    stream [B, T, d] (the logit lens reads them)."""
    found: list[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda _m, _a, out: found.append(out[0]))
               for layer in model.decoder.layers]
    try:
        yield found
    finally:
        for h in handles:
            h.remove()
