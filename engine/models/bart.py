"""BART (Lewis et al., 2020) and mBART (Liu et al., 2020): an encoder-decoder with learned
positions whose rows start at 2 (fairseq's offset), a LayerNorm right after the embeddings,
GELU and a final_logits_bias. BART is post-norm; mBART pre-norm with a final LayerNorm on each
stack. Marian reuses the name map."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from engine.core.config import ModelConfig
from engine.models.common import Rules, rename, take

MODEL_TYPES = ("bart", "mbart")
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "swish": "silu", "silu": "silu",
               "gelu_new": "gelu_tanh"}


def seq2seq_config(hf: Mapping, **changes) -> ModelConfig:
    """The BART-style encoder-decoder a config.json describes (Marian too)."""
    heads = {hf["encoder_attention_heads"], hf["decoder_attention_heads"]}
    ffn = {hf["encoder_ffn_dim"], hf["decoder_ffn_dim"]}
    if len(heads) > 1 or len(ffn) > 1:
        raise ValueError("encoder and decoder with different head counts or FFN sizes are not "
                         "supported")
    act = hf.get("activation_function", "gelu")
    if act not in ACTIVATIONS:
        raise ValueError(f"activation {act!r} is not supported ({', '.join(ACTIVATIONS)} are)")
    d = hf["d_model"]
    start = hf.get("decoder_start_token_id")
    eos = hf.get("eos_token_id", 2)
    fields = dict(
        arch="encoder-decoder", name=hf["model_type"], vocab_size=hf["vocab_size"], d_model=d,
        n_heads=heads.pop(), d_ff=ffn.pop(), n_encoder_layers=hf["encoder_layers"],
        n_decoder_layers=hf["decoder_layers"], activation=ACTIVATIONS[act], norm="layernorm",
        norm_position="post", norm_eps=1e-5, embed_norm=True, positions="learned",
        max_len=hf.get("max_position_embeddings", 1024), position_offset=2,
        embed_scale=math.sqrt(d) if hf.get("scale_embedding") else None,
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)), bias=True, logits_bias=True,
        pad_id=hf.get("pad_token_id", 1), bos_id=start if start is not None else eos,
        eos_id=eos, extra={"teacher_forcing": True},
    )
    fields.update(changes)
    return ModelConfig(**fields)


def config_from_hf(hf: Mapping) -> ModelConfig:
    if hf["model_type"] == "mbart":
        # transformers' mBART starts the decoder at the target's last token (its language id)
        return seq2seq_config(hf, norm_position="pre", final_norm=True,
                              extra={"teacher_forcing": "last-token"})
    return seq2seq_config(hf)


_P = r"(?:model\.)?"
_L = _P + r"(encoder|decoder)\.layers\.(\d+)\."
_O = r"\1.layers.\2."
RULES: Rules = [
    (_P + r"(encoder|decoder)\.embed_positions\.weight", r"\1.embed.positions.weight"),
    (_P + r"(encoder|decoder)\.layernorm_embedding\.(weight|bias)", r"\1.embed.norm.\2"),
    (_P + r"(encoder|decoder)\.layer_norm\.(weight|bias)", r"\1.norm.\2"),
    (_L + r"self_attn\.([qkv])_proj\.(weight|bias)", _O + r"self_attn.\3_proj.\4"),
    (_L + r"self_attn\.out_proj\.(weight|bias)", _O + r"self_attn.o_proj.\3"),
    (_L + r"self_attn_layer_norm\.(weight|bias)", _O + r"self_norm.\3"),
    (_L + r"encoder_attn\.([qkv])_proj\.(weight|bias)", _O + r"cross_attn.\3_proj.\4"),
    (_L + r"encoder_attn\.out_proj\.(weight|bias)", _O + r"cross_attn.o_proj.\3"),
    (_L + r"encoder_attn_layer_norm\.(weight|bias)", _O + r"cross_norm.\3"),
    (_L + r"fc1\.(weight|bias)", _O + r"ffn.up.\3"),
    (_L + r"fc2\.(weight|bias)", _O + r"ffn.down.\3"),
    (_L + r"final_layer_norm\.(weight|bias)", _O + r"ffn_norm.\3"),
]
IGNORE = (_P + r"shared\.weight", _P + r"(encoder|decoder)\.embed_tokens\.weight",
          r"lm_head\.weight", r"final_logits_bias")


def convert(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig,
            ignore: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """BART names → ours: the shared embedding feeds both stacks (and the tied lm_head),
    final_logits_bias [1, vocab] becomes lm_head's bias."""
    ours = rename(tensors, RULES, IGNORE + ignore)[0]
    shared = next((tensors[n] for n in ("model.shared.weight", "shared.weight",
                                        "model.encoder.embed_tokens.weight") if n in tensors),
                  None)
    if shared is None:
        raise ValueError("no tensor 'model.shared.weight'")
    ours["encoder.embed.tokens.weight"] = shared
    ours["decoder.embed.tokens.weight"] = shared
    if not cfg.tie_embeddings:
        ours["lm_head.weight"] = take(tensors, "lm_head.weight")
    bias = tensors.get("final_logits_bias")
    ours["lm_head.bias"] = (torch.zeros(cfg.vocab_size) if bias is None
                            else bias.reshape(-1))  # [1, vocab] → [vocab]
    return ours
