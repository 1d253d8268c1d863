"""GPT-2 (Radford et al., 2019): a pre-norm decoder with learned positions, LayerNorm,
tanh-GELU, biases everywhere and tied embeddings.

Its checkpoints store Conv1D weights as [in, out] (transposed against nn.Linear) and q, k, v
as one c_attn matrix; `convert` transposes and splits them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from engine.core.config import ModelConfig
from engine.models.common import take

MODEL_TYPES = ("gpt2",)
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu",
               "relu": "relu"}


def config_from_hf(hf: Mapping) -> ModelConfig:
    if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("reorder_and_upcast_attn"):
        raise ValueError("scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not "
                         "supported")
    act = hf.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise ValueError(f"activation {act!r} is not supported ({', '.join(ACTIVATIONS)} are)")
    d = hf["n_embd"]
    eos = hf.get("eos_token_id")
    return ModelConfig(
        arch="decoder", name="gpt2", vocab_size=hf["vocab_size"], d_model=d,
        n_heads=hf["n_head"], d_ff=hf.get("n_inner") or 4 * d, n_decoder_layers=hf["n_layer"],
        activation=ACTIVATIONS[act], norm="layernorm", norm_position="pre",
        norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)), final_norm=True,
        positions="learned", max_len=hf.get("n_positions", 1024),
        attn_scale=None if hf.get("scale_attn_weights", True) else 1.0,
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)), bias=True,
        pad_id=hf.get("pad_token_id") if hf.get("pad_token_id") is not None else (eos or 0),
        bos_id=hf.get("bos_token_id"), eos_id=eos,
    )


LAYER = re.compile(r"(?:transformer\.)?h\.(\d+)\.(.+)")
NAMES = {"ln_1": "self_norm", "ln_2": "ffn_norm", "attn.c_proj": "self_attn.o_proj",
         "mlp.c_fc": "ffn.up", "mlp.c_proj": "ffn.down"}
IGNORED = ("attn.bias", "attn.masked_bias")  # causal-mask buffers of older checkpoints


def convert(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """GPT-2 names → ours. Conv1D weights [in, out] → nn.Linear's [out, in]; c_attn → q|k|v."""
    out: dict[str, torch.Tensor] = {}
    d = cfg.d_model
    for name, t in tensors.items():
        plain = name.removeprefix("transformer.")
        if plain in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"):
            ours = {"wte": "decoder.embed.tokens", "wpe": "decoder.embed.positions",
                    "ln_f": "decoder.norm"}[plain.split(".")[0]]
            out[f"{ours}.{plain.split('.')[1]}"] = t
            continue
        if name == "lm_head.weight":
            if not cfg.tie_embeddings:
                out["lm_head.weight"] = t
            continue
        m = LAYER.fullmatch(name)
        if not m:
            raise ValueError(f"tensor {name!r} is not one GPT-2 has")
        i, rest = m.groups()
        module, _, kind = rest.rpartition(".")
        if rest in IGNORED:
            continue
        prefix = f"decoder.layers.{i}"
        if module == "attn.c_attn":
            parts = (t.t() if kind == "weight" else t).split(d, dim=0)  # [3d, d] → 3 × [d, d]
            if len(parts) != 3:
                raise ValueError(f"tensor {name!r} has shape {tuple(t.shape)}, expected "
                                 f"[{d}, {3 * d}]")
            for proj, part in zip("qkv", parts, strict=True):
                out[f"{prefix}.self_attn.{proj}_proj.{kind}"] = part.contiguous()
        elif module in NAMES:
            is_conv = module.startswith(("attn.", "mlp.")) and kind == "weight"
            out[f"{prefix}.{NAMES[module]}.{kind}"] = t.t().contiguous() if is_conv else t
        else:
            raise ValueError(f"tensor {name!r} is not one GPT-2 has")
    take(out, "decoder.embed.tokens.weight")
    return out
