"""T5 (Raffel et al., 2020) and T5 v1.1 / Flan-T5 (Chung et al., 2022): a pre-norm
encoder-decoder with RMS "LayerNorm" (no mean, no bias), no biases anywhere, unscaled scores
(the 1/√d is folded into the initialisation), and a bucketed relative position bias that the
first layer of each stack owns and every layer adds. v1.1 gates its FFN (gated-gelu).

Tied checkpoints scale the decoder output by d_model^-½ before the shared embedding; `convert`
folds that factor into our (untied) lm_head.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engine.core.config import ModelConfig
from engine.models.common import rename, take

MODEL_TYPES = ("t5",)
FFN = {"relu": "relu", "gated-gelu": "geglu", "gated-silu": "swiglu", "gelu": "gelu"}


def config_from_hf(hf: Mapping) -> ModelConfig:
    proj = hf.get("feed_forward_proj", "relu")
    if proj not in FFN:
        raise ValueError(f"feed_forward_proj {proj!r} is not supported ({', '.join(FFN)} are)")
    n_enc = hf["num_layers"]
    start = hf.get("decoder_start_token_id")
    pad = hf.get("pad_token_id") or 0
    return ModelConfig(
        arch="encoder-decoder", name="t5", vocab_size=hf["vocab_size"], d_model=hf["d_model"],
        n_heads=hf["num_heads"], d_head=hf["d_kv"], d_ff=hf["d_ff"], n_encoder_layers=n_enc,
        n_decoder_layers=hf.get("num_decoder_layers") or n_enc, activation=FFN[proj],
        norm="rmsnorm", norm_position="pre", norm_eps=float(hf.get("layer_norm_epsilon", 1e-6)),
        final_norm=True, positions="relative", max_len=hf.get("n_positions") or 512,
        relative_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_max_distance=hf.get("relative_attention_max_distance", 128),
        attn_scale=1.0, bias=False, tie_embeddings=False, pad_id=pad,
        bos_id=start if start is not None else pad, eos_id=hf.get("eos_token_id", 1),
        extra={"teacher_forcing": True,
               "scale_decoder_outputs": bool(hf.get("scale_decoder_outputs",
                                                    hf.get("tie_word_embeddings", True))),
               "tied": bool(hf.get("tie_word_embeddings", True))},
    )


_S = r"(encoder|decoder)\.block\.(\d+)\.layer\."
_O = r"\1.layers.\2."
RULES = [
    (r"(encoder|decoder)\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.weight",
     r"\1.relative.weight"),
    (_S + r"0\.SelfAttention\.([qkvo])\.weight", _O + r"self_attn.\3_proj.weight"),
    (_S + r"0\.layer_norm\.weight", _O + r"self_norm.weight"),
    (r"decoder\.block\.(\d+)\.layer\.1\.EncDecAttention\.([qkvo])\.weight",
     r"decoder.layers.\1.cross_attn.\2_proj.weight"),
    (r"decoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight",
     r"decoder.layers.\1.cross_norm.weight"),
    # the FFN is sublayer 1 of an encoder block, 2 of a decoder block
    (r"encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.(wi|wi_0|wi_1|wo)\.weight",
     r"encoder.layers.\1.ffn.\2.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"encoder.layers.\1.ffn_norm.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.DenseReluDense\.(wi|wi_0|wi_1|wo)\.weight",
     r"decoder.layers.\1.ffn.\2.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.layer_norm\.weight", r"decoder.layers.\1.ffn_norm.weight"),
    (r"(encoder|decoder)\.final_layer_norm\.weight", r"\1.norm.weight"),
]
FFN_NAMES = {"wi": "up", "wi_0": "gate", "wi_1": "up", "wo": "down"}
IGNORE = (r"(encoder|decoder)\.embed_tokens\.weight", r"shared\.weight", r"lm_head\.weight")


def convert(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """T5 names → ours: the shared embedding feeds both stacks; lm_head is the file's own or,
    when tied, the embedding, times d_model^-½ where T5 scales the decoder output."""
    ours = {}
    for name, t in rename(tensors, RULES, IGNORE)[0].items():
        if ".ffn." in name:
            head, _, tail = name.rpartition(".ffn.")
            leaf, _, kind = tail.partition(".")
            name = f"{head}.ffn.{FFN_NAMES[leaf]}.{kind}"
        ours[name] = t
    shared = tensors.get("shared.weight")
    if shared is None:
        shared = take(tensors, "encoder.embed_tokens.weight")
    ours["encoder.embed.tokens.weight"] = shared
    ours["decoder.embed.tokens.weight"] = tensors.get("decoder.embed_tokens.weight", shared)
    head = shared if cfg.extra.get("tied") else take(tensors, "lm_head.weight")
    if cfg.extra.get("scale_decoder_outputs"):
        head = head * cfg.d_model**-0.5
    ours["lm_head.weight"] = head
    return ours
