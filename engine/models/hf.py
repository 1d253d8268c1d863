"""Hugging Face checkpoints, offline: a folder (config.json, model.safetensors or shards with
model.safetensors.index.json, tokenizer.json) or a repo id `org/name` in the local Hugging
Face cache, opened by the family module that `config.json`'s `model_type` names.

Every family module has the same contract: `MODEL_TYPES`, `config_from_hf(config dict) →
ModelConfig` and `convert(their tensors, cfg) → our tensors` (pure). `build` here does the
rest once for all of them: read, convert, copy with shape checks, tokenizer, device, dtype.

The cache layout (huggingface_hub's): `<cache>/models--org--name/refs/main` holds a revision,
`snapshots/<revision>/` the files, as symlinks into `blobs/`. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from engine.api import LoadedModel, Progress
from engine.core.config import ModelConfig
from engine.errors import InputError
from engine.io.safetensors import checkpoint_files, read_checkpoint
from engine.models import (
    bart,
    bert,
    distilbert,
    gemma,
    gpt2,
    llama,
    marian,
    mistral,
    qwen2,
    qwen3,
    roberta,
    t5,
)
from engine.models.common import config_facts, model_holding
from engine.text.codec import TokenizerCodec

FAMILIES: tuple[ModuleType, ...] = (bert, roberta, distilbert, gpt2, llama, mistral, qwen2,
                                    qwen3, gemma, t5, bart, marian)
MAX_TOKENS = 8192  # a text longer than this is cut (maps grow with its square)
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def supported_types() -> list[str]:
    return sorted(t for f in FAMILIES for t in f.MODEL_TYPES)


def family_of(hf: dict, source: Path) -> ModuleType:
    """The family module serving `hf["model_type"]`; any other is an InputError naming it."""
    model_type = hf.get("model_type")
    for family in FAMILIES:
        if model_type in family.MODEL_TYPES:
            return family
    raise InputError(f"{source}: model_type {model_type!r} is not supported; supported: "
                     f"{', '.join(supported_types())}")


# -- where checkpoints are --------------------------------------------------------------
def hub_cache() -> Path:
    """HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (huggingface_hub's order)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def cached_snapshot(repo_id: str) -> Path:
    """The folder of `repo_id`'s main revision in the cache, or an InputError saying where it
    looked."""
    root = hub_cache() / ("models--" + repo_id.replace("/", "--"))
    ref = root / "refs" / "main"
    snapshot = None
    if ref.is_file():
        snapshot = root / "snapshots" / ref.read_text(encoding="utf-8").strip()
    elif (root / "snapshots").is_dir():  # no refs/main: the one snapshot there is, if only one
        found = [p for p in (root / "snapshots").iterdir() if p.is_dir()]
        snapshot = found[0] if len(found) == 1 else None
    if snapshot is None or not snapshot.is_dir():
        raise InputError(f"{repo_id} is not in the Hugging Face cache: looked for {root} "
                         "(set HF_HUB_CACHE or HF_HOME to another cache; nothing is downloaded)")
    return snapshot


def resolve(x: str) -> Path:
    """A folder path, or a repo id `org/name` found in the cache → the checkpoint's folder."""
    path = Path(x).expanduser()
    if path.is_dir():
        return path
    if REPO_ID.fullmatch(x) and not path.exists():
        return cached_snapshot(x)
    raise InputError(f"{x!r} is not a registered model, a checkpoint folder or a repo id "
                     f"(org/name) in the Hugging Face cache {hub_cache()}")


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise InputError(f"{folder} has no config.json: a Hugging Face checkpoint folder needs "
                         "config.json, model.safetensors (or shards) and tokenizer.json")
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(hf, dict):
        raise InputError(f"{path} does not hold a JSON object")
    return hf


def config_of(folder: Path) -> tuple[ModuleType, ModelConfig]:
    """The family and our config of a checkpoint folder, from config.json alone."""
    hf = read_config(folder)
    family = family_of(hf, folder)
    try:
        return family, family.config_from_hf(hf)
    except (KeyError, TypeError, ValueError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise InputError(f"{folder / 'config.json'}: {what}") from exc


# -- building ---------------------------------------------------------------------------
DTYPES = {None: None, "float32": torch.float32, "bfloat16": torch.bfloat16,
          "float16": torch.float16}


def resolve_dtype(dtype, device: torch.device) -> torch.dtype | None:
    """None/"float32" everywhere; bfloat16 or float16 only on CUDA (maps stay float32)."""
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    if dtype not in DTYPES:
        raise InputError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    if DTYPES[dtype] in (torch.bfloat16, torch.float16) and device.type != "cuda":
        raise InputError(f"--dtype {dtype} runs on CUDA only; on the CPU the engine computes "
                         "in float32 (faithful maps)")
    return DTYPES[dtype]


def weights_fingerprint(files: list[Path]) -> str:
    """The cache's blob names are the files' sha256; elsewhere, names and sizes."""
    blobs = [f.resolve().name for f in files if f.is_symlink()]
    if blobs and len(blobs) == len(files) and all(len(b) == 64 for b in blobs):
        return "sha256:" + "+".join(blobs)
    return "files:" + "+".join(f"{f.name}:{f.stat().st_size}" for f in files)


def build(folder: Path, device: torch.device, progress: Progress | None = None,
          dtype=None, name: str | None = None, cfg: ModelConfig | None = None,
          description: str | None = None, hash_weights: bool = False) -> LoadedModel:
    """The checkpoint in `folder` as a LoadedModel on `device` (`dtype` None: float32).
    A registered model may pass its own `cfg` (MiniLM's pooling), `description`, and ask for
    the weights' sha256 (`hash_weights`) instead of a fingerprint."""
    folder = Path(folder)
    run_dtype = resolve_dtype(dtype, device)
    family, own_cfg = config_of(folder)
    cfg = cfg or own_cfg
    tok_path = folder / "tokenizer.json"
    if not tok_path.is_file():
        raise InputError(f"{folder} has no tokenizer.json (the engine tokenizes with the "
                         "`tokenizers` library; save the tokenizer with save_pretrained)")
    try:
        files = checkpoint_files(folder)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from exc
    if progress:
        progress(0.1, f"reading {len(files)} weights file{'s' * (len(files) > 1)}")
    tensors, origin = read_checkpoint(files)
    source = str(files[0] if len(files) == 1 else folder / "model.safetensors.index.json")
    try:
        ours = family.convert(tensors, cfg)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    del tensors
    if progress:
        size = sum(t.numel() for t in ours.values()) * (run_dtype or torch.float32).itemsize
        progress(0.6, f"copying the weights into the model ({size / 2**30:.2f} GiB)")
    model = model_holding(cfg, ours, source)
    del ours
    codec = make_codec(tok_path, cfg)
    model = model.to(device=device, dtype=run_dtype).eval()
    layers = config_facts(cfg)["layers"]
    description = description or (f"{cfg.name} checkpoint ({layers} layers × {cfg.n_heads} "
                                  f"heads, {cfg.kv_heads} K/V heads) from {folder}")
    return LoadedModel(name or folder.name, model, codec, device, description,
                       weights_hash=file_hashes(files) if hash_weights
                       else weights_fingerprint(files))


def file_hashes(files: list[Path]) -> str:
    digests = []
    for path in files:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):  # noqa: B023 (f is this loop's)
                h.update(chunk)
        digests.append(h.hexdigest())
    return "sha256:" + "+".join(digests)


def make_codec(tok_path: Path, cfg: ModelConfig) -> TokenizerCodec:
    """The checkpoint's own tokenizer (its post-processor adds BOS, CLS/SEP or EOS), checked
    against the embedding: a token id past the table would index out of range."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(tok_path))
    except Exception as exc:  # tokenizers raises plain Exception subclasses
        raise InputError(f"cannot read {tok_path}: {exc}") from exc
    n_tok = tok.get_vocab_size(with_added_tokens=True)
    if n_tok > cfg.vocab_size:
        raise InputError(f"{tok_path} has {n_tok} tokens but the model's embedding has "
                         f"{cfg.vocab_size} rows: the tokenizer does not belong to these weights")
    pad = tok.id_to_token(cfg.pad_id) or "<pad>"
    unk = next((t for t in ("[UNK]", "<unk>") if tok.token_to_id(t) is not None), None)
    limit = cfg.max_len if cfg.positions in ("learned", "sinusoidal") else MAX_TOKENS
    return TokenizerCodec(tok, min(limit, MAX_TOKENS), pad_token=pad, unk_token=unk)


# -- discovery --------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A checkpoint found on disk, described from its config.json alone."""

    name: str  # repo id (cache) or folder path
    path: Path
    where: str  # "hf-cache" or "ATTENTION_STUDIO_MODELS"
    model_type: str | None
    size_bytes: int
    facts: dict | None = None  # kind, layers, heads, kv_heads, positions (when supported)
    why: str | None = None  # why it cannot be opened (when not supported)


def folder_size(folder: Path) -> int:
    """Bytes of the weights files (symlinks followed to their blobs)."""
    total = 0
    for f in folder.iterdir():
        if f.name.endswith(".safetensors") or f.name.endswith(".bin"):
            try:
                total += f.stat().st_size
            except OSError:
                pass
    return total


def describe(folder: Path, name: str, where: str) -> Checkpoint:
    model_type, facts, why = None, None, None
    try:
        hf = read_config(folder)
        model_type = hf.get("model_type")
        _, cfg = config_of(folder)
        facts = config_facts(cfg)
        checkpoint_files(folder)
        if not (folder / "tokenizer.json").is_file():
            why = "no tokenizer.json"
    except (InputError, ValueError, FileNotFoundError) as exc:
        why = str(exc).replace(str(folder), "").strip(" :") or type(exc).__name__
    if facts is None and why and "not supported" in why:
        why = f"model_type {model_type!r} is not supported"
    if why:
        facts = None
    return Checkpoint(name, folder, where, model_type, folder_size(folder), facts, why)


def discover() -> list[Checkpoint]:
    """Checkpoints in the HF cache (by repo id) and under ATTENTION_STUDIO_MODELS (a
    `:`-separated list of folders, each a checkpoint or a folder of them)."""
    found: list[Checkpoint] = []
    cache = hub_cache()
    if cache.is_dir():
        for root in sorted(cache.glob("models--*")):
            repo_id = root.name.removeprefix("models--").replace("--", "/", 1)
            try:
                snapshot = cached_snapshot(repo_id)
            except InputError:
                continue
            if (snapshot / "config.json").is_file():
                found.append(describe(snapshot, repo_id, "hf-cache"))
    for entry in filter(None, os.environ.get("ATTENTION_STUDIO_MODELS", "").split(":")):
        base = Path(entry).expanduser()
        if not base.is_dir():
            continue
        folders = [base] if (base / "config.json").is_file() else sorted(
            p for p in base.iterdir() if p.is_dir() and (p / "config.json").is_file())
        found += [describe(f, str(f), "ATTENTION_STUDIO_MODELS") for f in folders]
    return found
