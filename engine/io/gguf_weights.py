"""A GGUF's tensors dequantized once to float32 and cached as safetensors.

`load_gguf_weights(path, folder, ...)` returns a `GGUFWeights`: every tensor of the file under
its **GGUF name**, float32, in torch order (GGUF dims reversed, so a projection is `[out, in]`
like `nn.Linear.weight`), plus the file's scalar metadata. Nothing here knows a model family:
renaming to Hugging Face or engine names, llama's Q/K permutation and Gemma's `1 + w` norms are
the model side's business (`engine.models.gguf`).

Cache layout (in `folder`, keyed by the file's sha256 so that an edited file is never mistaken
for the one cached):

    <stem>-<sha16>-v<N>.safetensors   float32 tensors, GGUF names
    <stem>-<sha16>-v<N>.meta.json     header scalars (arrays as their length), written last

Why float32 and not bf16: dequantization yields float32 (a Q8_0 value, fp16 scale x int8
code, needs up to 19 significant bits; bf16 keeps 8), so float32 keeps our weights identical
to those of transformers' reference and parity tests can be tight; the model may cast later.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.io import cache_dir as _cache
from engine.io.gguf import GGUFFile, SkippedArray, read_gguf

# Bump when what is written to the cache changes, so stale caches are rebuilt, not misread.
WEIGHTS_FORMAT_VERSION = 1

Progress = Callable[[float, str], None]


@dataclass
class GGUFWeights:
    """Dequantized tensors (GGUF names, float32, torch order) and the header they came from."""

    tensors: dict[str, torch.Tensor]
    metadata: dict  # scalars as stored; arrays replaced by {"length": n}
    sha256: str
    source_file: str  # the GGUF's file name
    cached: bool  # True when read from the cache, False when built now


def header_scalars(g: GGUFFile) -> dict:
    """The file's metadata as JSON-able values: scalars kept, arrays as {"length": n}."""
    out = {}
    for key, value in g.metadata.items():
        if isinstance(value, SkippedArray):
            out[key] = {"length": value.count}
        elif isinstance(value, (list, np.ndarray)):
            out[key] = {"length": len(value)}
        elif isinstance(value, (np.floating, float)):
            out[key] = float(value)
        elif isinstance(value, (np.integer, int)) and not isinstance(value, bool):
            out[key] = int(value)
        else:
            out[key] = value if isinstance(value, (str, bool)) else str(value)
    return out


def load_gguf_weights(
    path: str | Path,
    folder: str | Path,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
    label: str = "GGUF",
    check: Callable[[GGUFFile], None] | None = None,
) -> GGUFWeights:
    """Every tensor of the GGUF at `path`, dequantized to float32 once and cached in `folder`.

    `sha256` skips hashing when the caller knows it (a package that ships its checksum).
    `check(g)` runs on the parsed header before any dequantizing (the model side refuses
    unknown architectures or missing tensors there, naming the file). `progress(fraction,
    message)` is called as work proceeds, ending at 1.0; without it a tqdm bar is shown on
    stderr while building. `label` names the model in progress messages.

    Shapes: values are float32 in `TensorInfo.shape` (torch order).

    Raises ValueError naming the file for a corrupt, truncated or unsupported GGUF.
    """
    path, folder = Path(path), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = Reporter(progress, label)
    sha256 = sha256 or file_sha256(path)
    stem = folder / f"{path.stem}-{sha256[:16]}-v{WEIGHTS_FORMAT_VERSION}"
    weights_path, meta_path = Path(f"{stem}.safetensors"), Path(f"{stem}.meta.json")
    try:
        if weights_path.exists() and meta_path.exists():
            try:
                tensors, meta = _load_cached(weights_path, meta_path)
                report(1.0, f"{label} loaded from cache")
                return GGUFWeights(tensors, meta["metadata"], sha256, meta["source_file"], True)
            except Exception as e:  # a damaged cache is rebuilt, never trusted
                warnings.warn(f"rebuilding the cached weights {weights_path}: {e}", stacklevel=2)
        report(0.02, f"reading {path.name}")
        g = read_gguf(path)
        if check is not None:
            check(g)
        g.check_types()
        state = dequantize_all(g, lambda f, m: report(0.05 + 0.85 * f, m))
        report(0.92, "writing the cache")
        with _cache.atomic_path(weights_path) as tmp:
            write_safetensors(tmp, state, {"source_file": path.name, "names": "gguf"})
        meta = {"source_file": path.name, "metadata": header_scalars(g),
                "shapes": {k: list(v.shape) for k, v in state.items()}}
        with _cache.atomic_path(meta_path) as tmp:  # written last: marks a complete cache
            tmp.write_text(json.dumps(meta, indent=1))
        report(1.0, f"{label} ready")
        tensors = {k: torch.from_numpy(v) for k, v in state.items()}
        return GGUFWeights(tensors, meta["metadata"], sha256, path.name, False)
    finally:
        report.close()


def dequantize_all(g: GGUFFile, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Every tensor of `g` as float32 numpy, reporting the fraction of bytes done (0..1)."""
    total = sum(info.nbytes for info in g.tensors.values()) or 1
    done = 0
    state: dict[str, np.ndarray] = {}
    for name, info in g.tensors.items():
        per_row = info.nbytes / (info.shape[0] if len(info.shape) > 1 else 1)

        def on_rows(rows: int, _per_row=per_row, _name=name) -> None:
            nonlocal done
            done += rows * _per_row
            if progress is not None:
                progress(done / total, f"dequantizing {_name}")

        state[name] = g.dequantize(name, on_rows=on_rows)
    return state


def _load_cached(weights_path: Path, meta_path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors.torch import load_file

    meta = json.loads(meta_path.read_text())
    tensors = load_file(str(weights_path))
    if {k: list(v.shape) for k, v in tensors.items()} != meta["shapes"]:
        raise ValueError(f"{weights_path} does not hold the tensors its {meta_path.name} lists")
    return tensors, meta


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict) -> None:
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


def file_sha256(path: Path) -> str:
    """The sha256 of a file, hex; ValueError naming the file when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError as e:
        raise ValueError(f"{path} cannot be read: {e}") from e
    return digest.hexdigest()


class Reporter:
    """Calls `progress(fraction, message)`, or drives a tqdm bar when none is given."""

    def __init__(self, progress: Progress | None, label: str = "GGUF"):
        self.progress, self.label, self.bar, self.last = progress, label, None, -1.0

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
        self.bar.set_description_str(f"{self.label}: {message[:40]:<40}", refresh=False)
        self.bar.update(round(fraction * 1000) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
