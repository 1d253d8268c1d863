"""Any GGUF of the Llama family and its relatives into the engine: llama, qwen2, gemma,
gemma2, gemma3.

A GGUF (llama.cpp's format) states most of a model in its header (`<arch>.block_count`,
`<arch>.attention.head_count_kv`, ...) and names its tensors llama.cpp's way (`blk.N.attn_q`).
Rather than a second converter per family, this module translates both into what a Hugging
Face checkpoint of the same family would hold (its `config.json` as a dict, its tensor
names) and hands them to the family module (`engine.models.llama`, `.qwen2`, `.gemma`),
whose `config_from_hf(hf) -> ModelConfig` and `convert(tensors, cfg) -> dict` (our names)
already turn a Hugging Face checkpoint into ours. transformers' GGUF loader
(`modeling_gguf_pytorch_utils.py`, `integrations/ggml.py`) is the reference for every fact
below, and the tests compare our translation with its output.

Tensor names (N = layer; every name ends in `.weight`, biases in `.bias`):

    GGUF                     HF (model.layers.N. unless stated)
    token_embd               model.embed_tokens
    output_norm              model.norm
    output                   lm_head (absent: tied to the embeddings)
    blk.N.attn_norm          input_layernorm
    blk.N.attn_q / k / v     self_attn.q_proj / k_proj / v_proj   (qwen2: with .bias)
    blk.N.attn_output        self_attn.o_proj
    blk.N.attn_q_norm / k    self_attn.q_norm / k_norm            (gemma3)
    blk.N.ffn_norm           post_attention_layernorm (llama, qwen2, gemma)
                             pre_feedforward_layernorm (gemma2, gemma3)
    blk.N.post_attention_norm  post_attention_layernorm           (gemma2, gemma3)
    blk.N.post_ffw_norm      post_feedforward_layernorm           (gemma2, gemma3)
    blk.N.ffn_gate / up / down  mlp.gate_proj / up_proj / down_proj

Two stored differences are undone here:

- llama: llama.cpp permutes the rows of W_q and W_k (and their biases) so that its RoPE can
  rotate interleaved pairs; Hugging Face's rotates halves. Per head of d rows, stored row
  2i is HF row i and stored row 2i+1 is HF row i + d/2; `unpermute_qk` reverses it (the
  head count is n_heads for W_q and n_kv_heads for W_k). qwen2 and gemma are stored in HF
  order (no permutation).
- gemma, gemma2, gemma3: llama.cpp stores every RMSNorm weight as 1 + w (Gemma's norm scales
  by 1 + w); the HF weight is the stored one minus 1.

Facts a GGUF leaves out, filled from the architecture (documented per family in
`hf_config`): the activation (SiLU for llama/qwen2, tanh-GELU for gemma); qwen2's q/k/v
biases (read from the tensors present); Gemma's query scale (`query_pre_attn_scalar`:
d_head, or d_model / n_heads for the 27B models, as llama.cpp decides); gemma2's sliding
window on even layers; gemma3's local RoPE base 10,000 and full attention on every 6th
layer; a tied LM head whenever `output.weight` is absent.

Weights are dequantized once to float32 and cached (`engine.io.gguf_weights`), under
`engine.io.cache_dir.cache_dir(<name>)`; the tokenizer is rebuilt from the header and cached
as JSON (`engine.text.gguf_tokenizer`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from engine.api import LoadedModel, Progress
from engine.core.config import ModelConfig
from engine.core.transformer import Transformer
from engine.io import cache_dir as _cache
from engine.io.gguf import GGUFFile, SkippedArray, read_gguf
from engine.io.gguf_weights import GGUFWeights, load_gguf_weights
from engine.models.common import copy_weights
from engine.text.codec import TokenizerCodec
from engine.text.gguf_tokenizer import check_tokenizer_metadata, gguf_tokenizer

ARCHITECTURES = ("llama", "qwen2", "gemma", "gemma2", "gemma3")
GEMMAS = ("gemma", "gemma2", "gemma3")
MAX_TOKENS = 8192  # longest input recorded (a full [H, T, T] map per layer grows as T²)

# Facts of the Gemma architectures that a GGUF does not state (HF configs of google/gemma-*).
GEMMA3_ROPE_BASE_LOCAL = 10_000.0
GEMMA3_FULL_ATTENTION_EVERY = 6  # layers 5, 11, 17, ... attend globally
GEMMA_27B_LAYERS = {"gemma2": 46, "gemma3": 62}  # where llama.cpp scales by d_model / n_heads

_GGUF_LEAF = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_attention_norm": "post_attention_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
_FFN_NORM = {"llama": "post_attention_layernorm", "qwen2": "post_attention_layernorm",
             "gemma": "post_attention_layernorm", "gemma2": "pre_feedforward_layernorm",
             "gemma3": "pre_feedforward_layernorm"}
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


# --- names and weights ------------------------------------------------------------------------


def gguf_to_hf_name(name: str, arch: str) -> str:
    """The Hugging Face parameter name of GGUF tensor `name` in architecture `arch`."""
    stem, _, suffix = name.rpartition(".")
    if suffix not in ("weight", "bias"):
        raise KeyError(f"not a GGUF weight or bias name: {name!r}")
    if stem in _TOP:
        return f"{_TOP[stem]}.{suffix}"
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)", stem)
    leaf = m and (_FFN_NORM[arch] if m.group(2) == "ffn_norm" else _GGUF_LEAF.get(m.group(2)))
    if not leaf:
        raise KeyError(f"GGUF tensor {name!r} has no place in a {arch} model")
    return f"model.layers.{m.group(1)}.{leaf}.{suffix}"


def unpermute_qk(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's Q/K row permutation (see module docstring).

    Shapes: w [n_heads * d, ...] (a weight [n_heads * d, d_model] or a bias [n_heads * d]);
    returns the same shape in Hugging Face row order.
    """
    d = w.shape[0] // n_heads
    return (w.reshape(n_heads, d // 2, 2, *w.shape[1:])  # [H, d/2, 2, ...]: stored pairs
            .transpose(1, 2)  # [H, 2, d/2, ...]: halves, as HF rotates them
            .reshape(w.shape))


def hf_tensors(tensors: Mapping[str, torch.Tensor], hf: dict) -> dict[str, torch.Tensor]:
    """GGUF-named float tensors → the Hugging Face checkpoint of the same model. Pure."""
    arch = hf["gguf_architecture"]
    out = {}
    for name, value in tensors.items():
        hf_name = gguf_to_hf_name(name, arch)
        if arch == "llama" and ".attn_q." in name:
            value = unpermute_qk(value, hf["num_attention_heads"])
        elif arch == "llama" and ".attn_k." in name:
            value = unpermute_qk(value, hf["num_key_value_heads"])
        elif arch in GEMMAS and name.endswith("norm.weight"):
            value = value - 1  # llama.cpp stores Gemma's 1 + w
        out[hf_name] = value
    return out


# --- the header → a Hugging Face config --------------------------------------------------------


def architecture(g: GGUFFile) -> str:
    """The file's `general.architecture`, or ValueError naming the supported ones."""
    arch = g.metadata.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(f"{g.path} holds a {arch!r} model; supported GGUF architectures: "
                         f"{', '.join(ARCHITECTURES)}")
    return arch


def hf_config(g: GGUFFile) -> dict:
    """The Hugging Face `config.json` (as a dict) of the model in `g`, from its header alone.

    Keys beyond transformers' own: "gguf_architecture" (llama.cpp's name) and "gguf_file".
    ValueError naming the file and key when a needed key is missing or a feature (RoPE
    scaling) is one this loader does not translate.
    """
    arch = architecture(g)
    md = g.metadata

    def get(key: str, default=None):
        full = f"{arch}.{key}"
        if full not in md:
            if default is not None:
                return default
            raise ValueError(f"{g.path} lacks the metadata key {full!r}")
        return md[full]

    n_heads, n_layers = int(get("attention.head_count")), int(get("block_count"))
    d_model = int(get("embedding_length"))
    kv = get("attention.head_count_kv", n_heads)
    if isinstance(kv, np.ndarray):  # per-layer counts: only a constant one is a Llama
        if len(set(kv.tolist())) != 1:
            raise ValueError(f"{g.path}: K/V head count varies by layer ({kv.tolist()})")
        kv = kv[0]
    # key_length when stated; llama/qwen2 files often state only the RoPE width, which for
    # them is the head width (transformers reads head_dim from it).
    d_head = int(get("attention.key_length", 0) or get("rope.dimension_count", 0)
                 or d_model // n_heads)
    if int(get("attention.value_length", d_head)) != d_head:
        raise ValueError(f"{g.path}: key_length {d_head} != value_length")
    scaling = md.get(f"{arch}.rope.scaling.type", "none")
    if scaling not in ("none", None) or "rope_freqs.weight" in g.tensors:
        raise ValueError(f"{g.path}: RoPE scaling ({scaling!r}"
                         f"{', rope_freqs.weight' if 'rope_freqs.weight' in g.tensors else ''})"
                         " is not translated from GGUF yet; only unscaled RoPE is supported")
    tokens = md.get("tokenizer.ggml.tokens")
    n_tokens = tokens.count if isinstance(tokens, SkippedArray) else len(tokens or ())
    embd = g.tensors.get("token_embd.weight")
    vocab = int(md.get(f"{arch}.vocab_size", n_tokens or (embd.shape[0] if embd else 0)))
    if vocab <= 0:
        raise ValueError(f"{g.path} states no vocabulary size (no {arch}.vocab_size, "
                         f"tokenizer.ggml.tokens or token_embd.weight)")

    def token_id(key: str):
        value = md.get(f"tokenizer.ggml.{key}")
        return None if value is None else int(value)

    hf = {
        "gguf_architecture": arch,
        "gguf_file": g.path.name,
        "model_type": arch,
        "vocab_size": vocab,
        "hidden_size": d_model,
        "intermediate_size": int(get("feed_forward_length")),
        "num_hidden_layers": n_layers,
        "num_attention_heads": n_heads,
        "num_key_value_heads": int(kv),
        "head_dim": d_head,
        "max_position_embeddings": int(get("context_length")),
        "rms_norm_eps": float(np.float32(get("attention.layer_norm_rms_epsilon"))),
        "rope_theta": float(np.float32(get("rope.freq_base", 10_000.0))),
        "rope_scaling": None,
        "tie_word_embeddings": "output.weight" not in g.tensors,
        "bos_token_id": token_id("bos_token_id"),
        "eos_token_id": token_id("eos_token_id"),
        "pad_token_id": token_id("padding_token_id"),
        "torch_dtype": "float32",
    }
    hf["rope_parameters"] = {"rope_type": "default", "rope_theta": hf["rope_theta"]}
    if arch in ("llama", "qwen2"):
        # Not in the file: SiLU-gated MLP; biases only where tensors say so (qwen2: q/k/v).
        hf["hidden_act"] = "silu"
        hf["attention_bias"] = "blk.0.attn_q.bias" in g.tensors
        hf["mlp_bias"] = "blk.0.ffn_up.bias" in g.tensors
        if arch == "qwen2":
            hf["use_sliding_window"], hf["sliding_window"] = False, None
        return hf
    # Gemma: tanh-GELU-gated MLP, sqrt(d_model) embedding scale (in the family module), tied
    # head; llama.cpp scales queries by 1/sqrt(d_model / n_heads) for the 27B models and by
    # 1/sqrt(d_head) otherwise, which is what query_pre_attn_scalar states in their HF configs.
    hf["hidden_act"] = hf["hidden_activation"] = "gelu_pytorch_tanh"
    hf["attention_bias"] = False
    big = n_layers == GEMMA_27B_LAYERS.get(arch)
    hf["query_pre_attn_scalar"] = d_model // n_heads if big else d_head
    if arch == "gemma2":
        window = int(get("attention.sliding_window"))
        hf["sliding_window"] = window
        hf["attn_logit_softcapping"] = float(get("attn_logit_softcapping", 50.0))
        hf["final_logit_softcapping"] = float(get("final_logit_softcapping", 30.0))
        # Gemma 2 alternates: even layers slide, odd layers attend globally.
        hf["layer_types"] = ["sliding_attention" if i % 2 == 0 else "full_attention"
                             for i in range(n_layers)]
    elif arch == "gemma3":
        hf["model_type"] = "gemma3_text"
        hf["sliding_window"] = int(get("attention.sliding_window"))
        hf["rope_local_base_freq"] = GEMMA3_ROPE_BASE_LOCAL
        hf["sliding_window_pattern"] = GEMMA3_FULL_ATTENTION_EVERY
        hf["layer_types"] = [
            "full_attention" if (i + 1) % GEMMA3_FULL_ATTENTION_EVERY == 0
            else "sliding_attention" for i in range(n_layers)]
        hf["final_logit_softcapping"] = hf["attn_logit_softcapping"] = None
        hf["rope_parameters"] = {
            "full_attention": {"rope_type": "default", "rope_theta": hf["rope_theta"]},
            "sliding_attention": {"rope_type": "default",
                                  "rope_theta": GEMMA3_ROPE_BASE_LOCAL}}
    return hf


def expected_gguf_shapes(hf: dict) -> dict[str, tuple[int, ...]]:
    """GGUF tensor name → torch shape for the model `hf` describes (optional ones left out:
    `output.weight` when tied, biases)."""
    arch = hf["gguf_architecture"]
    d, h, kv, dh, ff = (hf[k] for k in ("hidden_size", "num_attention_heads",
                                         "num_key_value_heads", "head_dim",
                                         "intermediate_size"))
    shapes = {"token_embd.weight": (hf["vocab_size"], d), "output_norm.weight": (d,)}
    if not hf["tie_word_embeddings"]:
        shapes["output.weight"] = (hf["vocab_size"], d)
    per_layer = {"attn_norm": (d,), "attn_q": (h * dh, d), "attn_k": (kv * dh, d),
                 "attn_v": (kv * dh, d), "attn_output": (d, h * dh), "ffn_norm": (d,),
                 "ffn_gate": (ff, d), "ffn_up": (ff, d), "ffn_down": (d, ff)}
    if arch in ("gemma2", "gemma3"):
        per_layer.update(post_attention_norm=(d,), post_ffw_norm=(d,))
    if arch == "gemma3":
        per_layer.update(attn_q_norm=(dh,), attn_k_norm=(dh,))
    for n in range(hf["num_hidden_layers"]):
        for leaf, shape in per_layer.items():
            shapes[f"blk.{n}.{leaf}.weight"] = shape
        if hf.get("attention_bias"):
            for leaf, rows in (("attn_q", h * dh), ("attn_k", kv * dh), ("attn_v", kv * dh)):
                shapes[f"blk.{n}.{leaf}.bias"] = (rows,)
    return shapes


def check_tensors(g: GGUFFile, hf: dict) -> None:
    """ValueError naming the file and tensor when the tensor table disagrees with the header."""
    shapes = expected_gguf_shapes(hf)
    missing = [n for n in shapes if n not in g.tensors]
    if missing:
        raise ValueError(f"{g.path} lacks tensors {missing[:5]} ({len(missing)} in all)")
    extra = [n for n in g.tensors if n not in shapes]
    if extra:
        raise ValueError(f"{g.path} has tensors a {hf['gguf_architecture']} model does not "
                         f"use: {extra[:5]}")
    for name, shape in shapes.items():
        if g.tensors[name].shape != shape:
            raise ValueError(f"{g.path}: tensor {name!r} has shape {g.tensors[name].shape}, "
                             f"expected {shape}")


# --- describe and build --------------------------------------------------------------------------


def describe_gguf(path: str | Path) -> dict:
    """What `python -m engine models` shows of a GGUF, from its header only (no tensor data
    is read): kind, layers, heads, K/V heads, positions, size on disk, and more."""
    g = read_gguf(path)
    hf = hf_config(g)
    types: dict[str, int] = {}
    for info in g.tensors.values():
        types[info.type_name] = types.get(info.type_name, 0) + 1
    return {
        "name": str(g.metadata.get("general.name", Path(path).stem)),
        "file": str(path),
        "architecture": hf["gguf_architecture"],
        "kind": "decoder",
        "layers": hf["num_hidden_layers"],
        "heads": hf["num_attention_heads"],
        "kv_heads": hf["num_key_value_heads"],
        "d_model": hf["hidden_size"],
        "d_head": hf["head_dim"],
        "positions": "rope",
        "context_length": hf["max_position_embeddings"],
        "vocab_size": hf["vocab_size"],
        "tensor_types": types,
        "size_bytes": g.file_size,
    }


def config_from_gguf(path: str | Path, name: str | None = None) -> ModelConfig:
    """Our config of the model in a GGUF, from its header alone."""
    hf = hf_config(read_gguf(path))
    cfg = family_module(hf).config_from_hf(hf)
    return cfg.with_(name=name or Path(path).stem)


def family_module(hf: dict):
    """The family module that turns a Hugging Face checkpoint of `hf`'s kind into ours."""
    arch = hf["gguf_architecture"]
    if arch == "llama":
        from engine.models import llama as family
    elif arch == "qwen2":
        from engine.models import qwen2 as family
    else:
        from engine.models import gemma as family
    return family


def load_gguf_parts(path: str | Path, progress: Progress | None = None, *,
                    cache_name: str = "gguf", sha256: str | None = None, label: str = "GGUF",
                    ) -> tuple[dict, GGUFWeights, object]:
    """`(hf_config, weights, tokenizer)` of a GGUF: the HF config dict, the dequantized
    GGUF-named float32 tensors (cached), the rebuilt tokenizer (cached)."""
    path = Path(path)
    folder = _cache.cache_dir(cache_name)
    header: dict = {}

    def check(g: GGUFFile) -> None:
        header["hf"] = hf_config(g)
        check_tensors(g, header["hf"])
        check_tokenizer_metadata(g.metadata, str(g.path))

    g = read_gguf(path)
    check(g)  # refuse a wrong file before hashing or dequantizing it
    weights = load_gguf_weights(path, folder, sha256=sha256, progress=progress, label=label,
                                check=check)
    tokenizer = gguf_tokenizer(path, folder, weights.sha256)
    return header["hf"], weights, tokenizer


def build_gguf(path: str | Path, device: torch.device | str, progress: Progress | None = None,
               dtype: torch.dtype | None = None, *, name: str | None = None,
               summary: str | None = None, cache_name: str | None = None,
               sha256: str | None = None) -> LoadedModel:
    """The model in the GGUF at `path`, ready to attend, on `device` (float32 unless `dtype`).

    `name`/`summary` label a registered model (default: the file's stem); `cache_name` is the
    cache subdirectory (default `name`); `sha256` skips hashing the file when known.
    ValueError naming the file for an unsupported, corrupt or truncated GGUF (see
    `engine.io.gguf`) or one whose tokenizer metadata is incomplete.
    """
    path = Path(path)
    name = name or path.stem
    hf, weights, tokenizer = load_gguf_parts(path, progress, cache_name=cache_name or name,
                                             sha256=sha256, label=name)
    return model_from_parts(hf, weights.tensors, tokenizer, device, dtype, name=name,
                            summary=summary, sha256=weights.sha256, metadata=weights.metadata,
                            source=str(path))


def transformer_from(cfg: ModelConfig, tensors: dict[str, torch.Tensor], source: str
                     ) -> Transformer:
    """Our Transformer holding `tensors` (our names) as its parameters, without a copy.

    Random initialisation of 135 M parameters costs seconds and a second copy of the weights
    doubles the peak memory of a load, so the model is built on the meta device, the shapes
    are checked there (`copy_weights` into meta tensors checks and copies nothing), and the
    tensors become the parameters (`assign=True`); the LM head is tied to the embeddings
    again. A model with buffers (sinusoidal tables, computed at construction) is built and
    filled the ordinary way.
    """
    with torch.device("meta"):
        model = Transformer(cfg)
    if any(True for _ in model.buffers()):
        model = Transformer(cfg)
        copy_weights(model, tensors, source)
        return model
    copy_weights(model, tensors, source)  # names and shapes, naming the file
    model.load_state_dict(tensors, strict=False, assign=True)
    if cfg.tie_embeddings and model.lm_head is not None:
        model.lm_head.weight = model.decoder.embed.tokens.weight
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:
        raise ValueError(f"{source}: no tensor for {left[:5]}")
    return model


def model_from_parts(hf: dict, tensors: dict[str, torch.Tensor], tokenizer, device, dtype=None,
                     *, name: str, summary: str | None, sha256: str, metadata: dict,
                     source: str) -> LoadedModel:
    """A LoadedModel from a GGUF's HF config, its GGUF-named float tensors and tokenizer:
    the family module's config and name map, shape-checked copy, the codec."""
    family = family_module(hf)
    cfg = family.config_from_hf(hf)
    if cfg.name != name:
        cfg = cfg.with_(name=name)
    model = transformer_from(cfg, family.convert(hf_tensors(tensors, hf), cfg), source)
    model = model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
    vocab = tokenizer.get_vocab_size()

    def token(key: str) -> str | None:
        i = metadata.get(f"tokenizer.ggml.{key}")
        return tokenizer.id_to_token(int(i)) if isinstance(i, int) and 0 <= i < vocab else None

    pad_token = token("padding_token_id") or token("eos_token_id") or "<pad>"
    codec = TokenizerCodec(tokenizer, min(MAX_TOKENS, hf["max_position_embeddings"]),
                           pad_token=pad_token, unk_token=token("unknown_token_id"))
    description = summary or (
        f"{name} ({hf['gguf_architecture']}, {cfg.n_decoder_layers} layers × {cfg.n_heads} "
        f"query heads, {cfg.kv_heads} K/V heads: {cfg.variant}; GGUF dequantized)")
    return LoadedModel(name, model.eval(), codec, torch.device(device), description,
                       weights_hash=f"sha256:{sha256}")


def discover_gguf() -> list:
    """GGUF files under ATTENTION_STUDIO_MODELS (each entry a file, or a folder whose *.gguf
    files, and those one folder down, are listed), described from their headers."""
    import os

    from engine.models.common import config_facts
    from engine.models.hf import Checkpoint

    files: list[Path] = []
    for entry in filter(None, os.environ.get("ATTENTION_STUDIO_MODELS", "").split(":")):
        base = Path(entry).expanduser()
        if base.is_file() and base.suffix == ".gguf":
            files.append(base)
        elif base.is_dir():
            files += sorted(base.glob("*.gguf")) + sorted(base.glob("*/*.gguf"))
    found = []
    for f in files:
        arch, facts, why = None, None, None
        try:
            arch = str(read_gguf(f).metadata.get("general.architecture"))
            facts = config_facts(config_from_gguf(f))
        except (ValueError, KeyError, OSError) as exc:
            why = str(exc).replace(str(f), "").strip(" :") or type(exc).__name__
        found.append(Checkpoint(str(f), f, "ATTENTION_STUDIO_MODELS", arch,
                                f.stat().st_size, facts, why))
    return found
