"""Gemma (Gemma Team, 2024), Gemma 2 (2024) and Gemma 3's text model (2025).

All three: Llama's layout with a GeGLU FFN, token embeddings × √d_model (rounded to the
activation dtype) and RMSNorms whose stored weight w is applied as (1 + w), folded here.
Gemma 2 adds norms after attention and the FFN, scores scaled by query_pre_attn_scalar^-½,
soft-capped scores (50) and logits (30), and alternating sliding-window / global layers.
Gemma 3 drops the soft-capping for q/k norms and gives local and global layers their own RoPE.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from engine.core.config import ModelConfig
from engine.models.common import rename
from engine.models.llama import IGNORE, RULES, decoder_config, layer_windows, rope_of

MODEL_TYPES = ("gemma", "gemma2", "gemma3_text")

_L = r"(?:model\.)?layers\.(\d+)\."
# Gemma 2/3: post_attention_layernorm follows attention (our self_post); the FFN's own pre-norm
# is pre_feedforward_layernorm.
SANDWICH_RULES = [
    (_L + r"post_attention_layernorm\.weight", r"decoder.layers.\1.self_post.weight"),
    (_L + r"pre_feedforward_layernorm\.weight", r"decoder.layers.\1.ffn_norm.weight"),
    (_L + r"post_feedforward_layernorm\.weight", r"decoder.layers.\1.ffn_post.weight"),
    *RULES,
]


def _types(hf: Mapping, n: int) -> list[str]:
    """Sliding or full per layer: `layer_types`, else the model's own default pattern."""
    if hf.get("layer_types"):
        return list(hf["layer_types"])
    if hf["model_type"] == "gemma2":  # even layers slide
        return ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)]
    pattern = hf.get("sliding_window_pattern") or hf.get("_sliding_window_pattern") or 6
    return ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
            for i in range(n)]


def _gemma3_rope(hf: Mapping, types: list[str]):
    """Per-layer (base, scaling): local layers rope_local_base_freq, global rope_theta (with
    their rope_scaling), or transformers 5's rope_parameters keyed by layer type."""
    max_len = hf.get("max_position_embeddings") or 131_072
    params = hf.get("rope_parameters") or {}
    if "full_attention" in params or "sliding_attention" in params:
        per_type = {t: rope_of(params.get(t), None, max_len) for t in set(types)}
    else:
        per_type = {"full_attention": rope_of(hf.get("rope_scaling"),
                                              hf.get("rope_theta", 1_000_000.0), max_len),
                    "sliding_attention": (float(hf.get("rope_local_base_freq", 10_000.0)),
                                          None)}
    return (tuple(per_type[t][0] for t in types), tuple(per_type[t][1] for t in types))


def config_from_hf(hf: Mapping) -> ModelConfig:
    kind, n = hf["model_type"], hf["num_hidden_layers"]
    changes = dict(embed_scale=math.sqrt(hf["hidden_size"]), tie_default=True)
    if kind in ("gemma2", "gemma3_text"):
        types = _types(hf, n)
        scalar = hf.get("query_pre_attn_scalar")
        changes.update(post_attn_norm=True, post_ffn_norm=True,
                       window=layer_windows(hf, n, types),
                       attn_scale=None if scalar is None else float(scalar) ** -0.5,
                       attn_softcap=hf.get("attn_logit_softcapping"),
                       logits_softcap=hf.get("final_logit_softcapping"))
        if kind == "gemma3_text":
            base, scaling = _gemma3_rope(hf, types)
            changes.update(qk_norm=True, rope_base=base, rope_scaling=scaling)
    tie = changes.pop("tie_default")
    return decoder_config(hf, tie_default=tie, **changes)


def convert(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Gemma names → ours, every RMSNorm weight w stored as 1 + w (in float32, as Gemma's
    norm computes it)."""
    rules = SANDWICH_RULES if cfg.post_attn_norm else RULES
    ours = rename(tensors, rules, IGNORE)[0]
    for name, t in ours.items():
        if name.endswith(("norm.weight", "_post.weight")):
            ours[name] = t.float() + 1.0
    return ours
