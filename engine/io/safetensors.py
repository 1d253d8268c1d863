"""Reading safetensors files safely: one file or a sharded checkpoint, memory-mapped, with a
truncated or corrupt file, or a shard index pointing at a missing shard, a ValueError naming it.

safetensors reads a file's header, then maps its data: a tensor costs memory when it is taken
(and converted), not before, so a checkpoint larger than half the RAM still loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
HALF = (torch.bfloat16, torch.float16)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; a truncated or corrupt file → ValueError naming it."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError and others
        raise ValueError(f"cannot read weights file {path}: {exc}") from exc


def checkpoint_files(folder: Path) -> list[Path]:
    """The safetensors files of a Hugging Face folder: the shards its index names (each must
    exist), else model.safetensors. A folder with neither is a FileNotFoundError naming both."""
    index = folder / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"cannot read shard index {index}: {exc}") from exc
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise FileNotFoundError(f"{index} names shard {missing[0]}, which is not in {folder}"
                                    + (f" ({len(missing) - 1} more missing)" if len(missing) > 1
                                       else ""))
        return [folder / s for s in shards]
    if (folder / SINGLE).is_file():
        return [folder / SINGLE]
    raise FileNotFoundError(f"no weights in {folder}: expected {SINGLE} or {INDEX}")


def iter_tensors(files: list[Path], dtype: torch.dtype = torch.float32
                 ) -> Iterator[tuple[str, torch.Tensor, Path]]:
    """(name, tensor, file) for every tensor of `files`, memory-mapped and taken one at a time;
    bf16/fp16 tensors become `dtype` (float32 by default: faithful maps on the CPU)."""
    from safetensors import safe_open

    for path in files:
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for name in f.keys():  # noqa: SIM118 (a safe_open handle is not a dict)
                    t = f.get_tensor(name)
                    if t.is_floating_point() and t.dtype != dtype:
                        t = t.to(dtype)
                    yield name, t, path
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot read weights file {path}: {exc}") from exc
        except Exception as exc:  # SafetensorError derives from Exception only
            if type(exc).__name__ != "SafetensorError":
                raise
            raise ValueError(f"cannot read weights file {path}: {exc}") from exc


def read_checkpoint(files: list[Path], dtype: torch.dtype = torch.float32
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Path]]:
    """Every tensor of a (sharded) checkpoint, and the file each came from (for messages)."""
    tensors, origin = {}, {}
    for name, t, path in iter_tensors(files, dtype):
        tensors[name], origin[name] = t, path
    return tensors, origin
