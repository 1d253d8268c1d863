"""Llama (Touvron et al., 2023, "LLaMA" and "Llama 2"; Meta, 2024, "The Llama 3 Herd of
Models") and the checkpoints that share its layout: SmolLM, TinyLlama, Llama 3.x.

A pre-norm decoder: RMSNorm, RoPE (with the long-context rescalings linear, dynamic and
llama3), grouped-query attention, a SwiGLU feed-forward, optional biases. Mistral, Qwen2/3 and
Gemma build on `decoder_config` and `RULES` below.

The contract (also used by `engine.models.gguf`, which turns GGUF metadata and tensors into
this config dict and these tensor names): `config_from_hf(config.json as a dict)` and
`convert(tensors named as in the checkpoint, cfg)` → tensors named as in our Transformer.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engine.core.config import ModelConfig, RopeScaling
from engine.models.common import Rules, rename

MODEL_TYPES = ("llama",)

# Their activation name → our gated FFN (the gate's activation times the up projection).
GATED = {"silu": "swiglu", "swish": "swiglu", "gelu_pytorch_tanh": "geglu",
         "gelu_new": "geglu", "gelu_tanh": "geglu"}


def first_id(value) -> int | None:
    """A token id, or the first of a list of them (Llama 3 lists several EOS ids)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def rope_of(params: Mapping | None, theta: float | None, max_len: int
            ) -> tuple[float, RopeScaling | None]:
    """(base, scaling) from a rope dict, in transformers 5's `rope_parameters` form
    ({"rope_type", "rope_theta", "factor", ...}) or the older `rope_scaling` one ({"type"})."""
    params = dict(params or {})
    base = float(params.get("rope_theta") or theta or 10_000.0)
    kind = params.get("rope_type") or params.get("type") or "default"
    if kind == "default":
        return base, None
    if kind not in ("linear", "dynamic", "llama3"):
        raise ValueError(f"RoPE scaling {kind!r} is not supported (linear, dynamic, llama3 are)")
    original = params.get("original_max_position_embeddings") or max_len
    if kind == "dynamic":
        original = max_len  # transformers rescales beyond max_position_embeddings
    return base, RopeScaling(kind, float(params["factor"]), int(original),
                             float(params.get("low_freq_factor", 1.0)),
                             float(params.get("high_freq_factor", 4.0)))


def rope_settings(hf: Mapping) -> tuple[float, RopeScaling | None]:
    """One RoPE for every layer: `rope_parameters` (transformers 5) or rope_theta and
    rope_scaling (checkpoints saved earlier)."""
    max_len = hf.get("max_position_embeddings") or 2048
    params = hf.get("rope_parameters") or hf.get("rope_scaling")
    return rope_of(params, hf.get("rope_theta"), max_len)


def layer_windows(hf: Mapping, n_layers: int, default_types: list[str] | None = None):
    """Each layer's sliding window (None = full attention), from `layer_types` when the
    config lists them, else `default_types`, else the same window everywhere."""
    window = hf.get("sliding_window")
    if window is None:
        return None
    types = hf.get("layer_types") or default_types
    if types is None:
        return int(window)
    if len(types) != n_layers:
        raise ValueError(f"layer_types has {len(types)} entries for {n_layers} layers")
    return tuple(int(window) if t == "sliding_attention" else None for t in types)


def gated_activation(hf: Mapping) -> str:
    act = hf.get("hidden_activation") or hf.get("hidden_act") or "silu"
    if act not in GATED:
        raise ValueError(f"hidden activation {act!r} is not supported ({', '.join(GATED)} are)")
    return GATED[act]


def decoder_config(hf: Mapping, tie_default: bool = False, **changes) -> ModelConfig:
    """The Llama-style decoder a config.json describes; `changes` override single fields."""
    d_model, n_heads = hf["hidden_size"], hf["num_attention_heads"]
    n_layers = hf["num_hidden_layers"]
    base, scaling = rope_settings(hf)
    attn_bias = bool(hf.get("attention_bias", False))
    eos = first_id(hf.get("eos_token_id"))
    pad = first_id(hf.get("pad_token_id"))
    fields = dict(
        arch="decoder", name=hf["model_type"],
        vocab_size=hf["vocab_size"], d_model=d_model, n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads,
        d_head=hf.get("head_dim") or d_model // n_heads, d_ff=hf["intermediate_size"],
        n_decoder_layers=n_layers, activation=gated_activation(hf), norm="rmsnorm",
        norm_position="pre", norm_eps=float(hf.get("rms_norm_eps", 1e-6)), final_norm=True,
        positions="rope", max_len=int(hf.get("max_position_embeddings") or 2048),
        rope_base=base, rope_scaling=scaling, window=layer_windows(hf, n_layers),
        tie_embeddings=bool(hf.get("tie_word_embeddings", tie_default)), bias=False,
        qkv_bias=attn_bias, o_bias=attn_bias, ffn_bias=bool(hf.get("mlp_bias", False)),
        pad_id=pad if pad is not None else (eos if eos is not None else 0),
        bos_id=first_id(hf.get("bos_token_id")), eos_id=eos,
    )
    fields.update(changes)
    return ModelConfig(**fields)


def config_from_hf(hf: Mapping) -> ModelConfig:
    return decoder_config(hf)


_L = r"(?:model\.)?layers\.(\d+)\."  # transformers' *ForCausalLM prefixes "model."; bare does not
RULES: Rules = [
    (r"(?:model\.)?embed_tokens\.weight", "decoder.embed.tokens.weight"),
    (r"(?:model\.)?norm\.weight", "decoder.norm.weight"),
    (r"lm_head\.weight", "lm_head.weight"),
    (_L + r"self_attn\.([qkvo])_proj\.(weight|bias)", r"decoder.layers.\1.self_attn.\2_proj.\3"),
    (_L + r"self_attn\.([qk])_norm\.weight", r"decoder.layers.\1.self_attn.\2_norm.weight"),
    (_L + r"mlp\.(gate|up|down)_proj\.(weight|bias)", r"decoder.layers.\1.ffn.\2.\3"),
    (_L + r"input_layernorm\.weight", r"decoder.layers.\1.self_norm.weight"),
    (_L + r"post_attention_layernorm\.weight", r"decoder.layers.\1.ffn_norm.weight"),
]
IGNORE = (r".*rotary_emb\.inv_freq",)


def convert(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Llama names → ours. Pure: no I/O; shapes are checked when the weights are copied."""
    return rename(tensors, RULES, IGNORE)[0]
