"""Gemma 3 270M into the engine: GGUF tensor names → ours, and the config the file implies.

The file side (assembling, dequantizing, caching, the tokenizer) lives in
`engine.io.gemma_package`; this module is the pure name map plus the model's assembly.
"""

from __future__ import annotations

import torch

from engine.api import LoadedModel, Progress
from engine.core.config import ModelConfig
from engine.core.transformer import Transformer
from engine.errors import ModelNotInstalled
from engine.models.common import copy_weights
from engine.text.codec import TokenizerCodec

MAX_TOKENS = 8192  # a full [4, T, T] float32 map per recorded layer is 1 GiB at 8,192 tokens

# GGUF leaf name → our name inside decoder.layers.N
LAYER_NAMES = {
    "attn_norm": "self_norm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_output": "self_attn.o_proj",
    "post_attention_norm": "self_post",
    "ffn_norm": "ffn_norm",
    "ffn_gate": "ffn.gate",
    "ffn_up": "ffn.up",
    "ffn_down": "ffn.down",
    "post_ffw_norm": "ffn_post",
}


def config_from_meta(meta: dict) -> ModelConfig:
    return ModelConfig(
        arch="decoder", name="gemma3-270m", vocab_size=meta["vocab_size"],
        d_model=meta["d_model"], n_heads=meta["n_heads"], n_kv_heads=meta["n_kv_heads"],
        d_head=meta["d_head"], d_ff=meta["d_ff"], n_decoder_layers=meta["n_layers"],
        activation="geglu", norm="rmsnorm", norm_position="pre", norm_eps=meta["norm_eps"],
        post_attn_norm=True, post_ffn_norm=True, final_norm=True, positions="rope",
        max_len=meta["max_len"], rope_base=tuple(float(b) for b in meta["rope_base"]),
        window=tuple(meta["window"]), qk_norm=True, attn_scale=meta["attn_scale"],
        embed_scale=meta["embed_scale"], tie_embeddings=meta["tie_embeddings"], bias=False,
        pad_id=meta["pad_id"], bos_id=meta["bos_id"], eos_id=meta["eos_id"],
    )


def convert(tensors: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """GGUF names → ours. Pure. Norm weights are used as stored (they hold Gemma's 1 + w)."""
    out = {
        "decoder.embed.tokens.weight": tensors["token_embd.weight"],
        "decoder.norm.weight": tensors["output_norm.weight"],
    }
    for i in range(n_layers):
        for theirs, ours in LAYER_NAMES.items():
            out[f"decoder.layers.{i}.{ours}.weight"] = tensors[f"blk.{i}.{theirs}.weight"]
    return out


def load_gemma(device: torch.device, progress: Progress | None = None) -> LoadedModel:
    from engine.io import gemma_package as gemma_files

    try:
        tensors, tokenizer, meta = gemma_files.load_gemma_files(progress)
    except gemma_files.GemmaFilesMissingError as exc:
        raise ModelNotInstalled("gemma3-270m", gemma_files.GEMMA_INSTALL_COMMAND) from exc
    cfg = config_from_meta(meta)
    model = Transformer(cfg)
    copy_weights(model, convert(tensors, cfg.n_decoder_layers), meta["source_file"])
    del tensors
    codec = TokenizerCodec(tokenizer, MAX_TOKENS, pad_token="<pad>", unk_token="<unk>")
    return LoadedModel(
        "gemma3-270m", model.to(device).eval(), codec, device,
        "Gemma 3 270M (18 layers × 4 query heads, 1 K/V head; Q4_K_M weights dequantized)",
        weights_hash=f"sha256:{meta.get('sha256', '')}" if meta.get("sha256") else
        f"gguf:{meta['source_file']}",
    )
