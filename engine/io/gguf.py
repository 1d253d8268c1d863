"""Fast reading of GGUF files (llama.cpp's single-file model format, spec: ggml `docs/gguf.md`).

`gguf.GGUFReader` builds a numpy record for every value of every metadata array, which costs
~10 s on a 262,144-token vocabulary. Here the header is walked once with `struct` on a memory
map: fixed-width arrays (scores, token types) become one `np.frombuffer` each, string arrays
are decoded only when asked for, and tensor data is never touched until it is dequantized.

Layout of a GGUF (v2/v3, little-endian):

    magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
    n_kv    × (string key, u32 value_type, value)
    n_tensors × (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset)
    padding to `general.alignment` (default 32) | tensor data (each at data_start + offset)

A string is u64 length + UTF-8 bytes. GGUF dims run fastest-first (ggml's `ne`), so a weight
stored as dims [640, 1024] is the numpy/torch array [1024, 640] (`TensorInfo.shape` is given
in numpy order). Every malformed or truncated file raises `ValueError` naming the file.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The tensor types this engine dequantizes (through `gguf.quants.dequantize`); a file holding
# any other type is refused before work starts, naming the type and this list.
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q4_K", "Q5_K", "Q6_K")

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Metadata value types (gguf_type in ggml): fixed-width ones as (struct format, numpy dtype).
_FIXED = {
    0: ("<B", np.uint8),
    1: ("<b", np.int8),
    2: ("<H", np.uint16),
    3: ("<h", np.int16),
    4: ("<I", np.uint32),
    5: ("<i", np.int32),
    6: ("<f", np.float32),
    7: ("<?", np.bool_),
    10: ("<Q", np.uint64),
    11: ("<q", np.int64),
    12: ("<d", np.float64),
}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class SkippedArray:
    """A metadata string array that was walked but not decoded (not asked for)."""

    count: int


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in the file. `shape` is numpy order (GGUF dims reversed)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    type_name: str
    offset: int  # absolute byte offset in the file
    nbytes: int

    @property
    def quantized(self) -> bool:
        return self.type_name not in ("F32", "F16", "BF16")


@dataclass
class GGUFFile:
    """A parsed GGUF: metadata, tensor table, and a memory map for the tensor data."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    data_start: int
    file_size: int
    _mm: mmap.mmap | None = field(default=None, repr=False)

    def raw(self, name: str) -> np.ndarray:
        """The stored bytes of tensor `name`, uint8 of shape [rows, bytes_per_row] (no copy)."""
        info = self._info(name)
        rows = int(np.prod(info.shape[:-1], dtype=np.int64)) if len(info.shape) > 1 else 1
        flat = np.frombuffer(self._mm, dtype=np.uint8, count=info.nbytes, offset=info.offset)
        return flat.reshape(rows, info.nbytes // rows)

    def check_types(self, names=None) -> None:
        """Raise ValueError naming the file, the tensor and its type if any tensor (of `names`,
        default all) is stored in a type outside `SUPPORTED_TYPES`."""
        for name in self.tensors if names is None else names:
            info = self._info(name)
            if info.type_name not in SUPPORTED_TYPES:
                raise ValueError(
                    f"{self.path}: tensor {name!r} is stored as {info.type_name}, which this "
                    f"engine does not dequantize; supported types: {', '.join(SUPPORTED_TYPES)}"
                )

    def dequantize(self, name: str, chunk_rows: int = 8192, on_rows=None) -> np.ndarray:
        """Tensor `name` as float32 numpy in `TensorInfo.shape`, via `gguf.quants.dequantize`.

        Types: `SUPPORTED_TYPES` (others raise ValueError naming the type and that list).
        Works in chunks of `chunk_rows` rows so that temporaries stay small; `on_rows(n)` is
        called after each chunk with the number of rows done. Raises ValueError (naming the file
        and tensor) if a value comes out NaN or infinite, the usual sign of corrupt bytes.

        Shapes: returns `TensorInfo.shape`, e.g. [1024, 640] for a [out, in] weight.
        """
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        self.check_types([name])
        info = self._info(name)
        qtype = GGMLQuantizationType(info.ggml_type)
        raw = self.raw(name)  # [rows, bytes_per_row]
        rows, cols = raw.shape[0], info.shape[-1]
        out = np.empty((rows, cols), dtype=np.float32)
        for start in range(0, rows, chunk_rows):
            stop = min(rows, start + chunk_rows)
            block = dequantize(raw[start:stop], qtype)  # [stop - start, cols]
            out[start:stop] = block.reshape(stop - start, cols)
            if not np.isfinite(out[start:stop]).all():
                raise ValueError(
                    f"{self.path}: tensor {name!r} dequantizes to NaN/inf in rows "
                    f"{start}..{stop}; the file is corrupt"
                )
            if on_rows is not None:
                on_rows(stop - start)
        return out.reshape(info.shape)

    def _info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"{self.path} has no tensor {name!r}") from None


class _Cursor:
    """Bounds-checked little-endian reads from a buffer; errors name the file."""

    def __init__(self, buf, path: Path):
        self.buf, self.path, self.pos, self.size = buf, path, 0, len(buf)

    def fail(self, why: str):
        raise ValueError(f"{self.path} is not a valid GGUF file ({why})")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            self.fail(
                f"truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"file has {self.size} bytes"
            )

    def fixed(self, fmt: str, what: str):
        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def u64(self, what: str) -> int:
        self.need(8, what)
        (value,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return value

    def u32(self, what: str) -> int:
        self.need(4, what)
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return value

    def string(self, what: str) -> str:
        n = self.u64(what)
        self.need(n, what)
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} at offset {self.pos - n} is not UTF-8")

    def string_array(self, count: int, what: str, decode: bool):
        # At least 8 bytes per element: reject absurd counts before looping.
        self.need(8 * count, what)
        buf, pos, size, unpack = self.buf, self.pos, self.size, _U64.unpack_from
        out = [] if decode else None
        for _ in range(count):
            if pos + 8 > size:
                self.pos = pos
                self.need(8, what)
            (n,) = unpack(buf, pos)
            pos += 8
            if pos + n > size:
                self.pos = pos
                self.need(n, what)
            if decode:
                out.append(buf[pos : pos + n].decode("utf-8", errors="strict"))
            pos += n
        self.pos = pos
        return out if decode else SkippedArray(count)

    def value(self, vtype: int, key: str, decode_strings: bool):
        if vtype in _FIXED:
            return self.fixed(_FIXED[vtype][0], f"value of {key!r}")
        if vtype == _STRING:
            return self.string(f"value of {key!r}")
        if vtype == _ARRAY:
            etype = self.u32(f"array type of {key!r}")
            count = self.u64(f"array length of {key!r}")
            if etype in _FIXED:
                dtype = np.dtype(_FIXED[etype][1]).newbyteorder("<")
                self.need(count * dtype.itemsize, f"array {key!r}")
                arr = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
                self.pos += count * dtype.itemsize
                return arr
            if etype == _STRING:
                # Small string arrays (tags, languages) are always decoded.
                decode = decode_strings or count <= 1024
                try:
                    return self.string_array(count, f"array {key!r}", decode)
                except UnicodeDecodeError:
                    self.fail(f"array {key!r} holds a string that is not UTF-8")
            self.fail(f"array {key!r} has element type {etype}, which this reader does not read")
        self.fail(f"metadata {key!r} has unknown value type {vtype}")


def read_gguf(path: str | Path, string_arrays: tuple[str, ...] = ()) -> GGUFFile:
    """Parse a GGUF's metadata and tensor table; tensor data stays on disk (memory-mapped).

    `string_arrays` names the metadata string arrays to decode into `list[str]` (e.g.
    "tokenizer.ggml.tokens"); other large string arrays come back as `SkippedArray(count)`.
    Numeric arrays are always returned as numpy arrays.
    """
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    path = Path(path)
    try:
        with open(path, "rb") as f:
            file_size = f.seek(0, 2)
            if file_size < 24:
                raise ValueError(
                    f"{path} is not a valid GGUF file (truncated: {file_size} bytes, "
                    f"the header alone is 24)"
                )
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise ValueError(f"{path} cannot be read as a GGUF file: {e}") from e

    cur = _Cursor(mm, path)
    if mm[:4] != GGUF_MAGIC:
        cur.fail(f"starts with {bytes(mm[:4])!r}, not the magic {GGUF_MAGIC!r}")
    cur.pos = 4
    version = cur.u32("version")
    if version not in GGUF_VERSIONS:
        cur.fail(f"version {version}; this reader handles {GGUF_VERSIONS}")
    n_tensors = cur.u64("tensor count")
    n_kv = cur.u64("metadata count")
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        cur.fail(f"implausible counts: {n_tensors} tensors, {n_kv} metadata entries")

    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string("metadata key")
        vtype = cur.u32(f"type of {key!r}")
        metadata[key] = cur.value(vtype, key, key in string_arrays)

    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    if alignment <= 0 or alignment & (alignment - 1):
        cur.fail(f"general.alignment {alignment} is not a power of two")

    entries = []
    for _ in range(n_tensors):
        name = cur.string("tensor name")
        n_dims = cur.u32(f"dimension count of {name!r}")
        if not 1 <= n_dims <= 4:
            cur.fail(f"tensor {name!r} has {n_dims} dimensions")
        dims = [cur.u64(f"dimensions of {name!r}") for _ in range(n_dims)]
        ggml_type = cur.u32(f"type of {name!r}")
        offset = cur.u64(f"offset of {name!r}")
        entries.append((name, dims, ggml_type, offset))
    data_start = (cur.pos + alignment - 1) // alignment * alignment

    tensors: dict[str, TensorInfo] = {}
    for name, dims, ggml_type, offset in entries:
        try:
            qtype = GGMLQuantizationType(ggml_type)
            block_size, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            cur.fail(f"tensor {name!r} has unknown ggml type {ggml_type}")
        if dims[0] % block_size:
            cur.fail(f"tensor {name!r} row length {dims[0]} is not a multiple of {block_size}")
        n_elements = int(np.prod(dims, dtype=np.int64))
        nbytes = n_elements // block_size * type_size
        start = data_start + offset
        if start + nbytes > file_size:
            cur.fail(
                f"truncated: tensor {name!r} needs bytes {start}..{start + nbytes}, "
                f"file has {file_size} bytes"
            )
        if name in tensors:
            cur.fail(f"tensor {name!r} appears twice")
        tensors[name] = TensorInfo(
            name, tuple(int(d) for d in reversed(dims)), ggml_type, qtype.name, start, nbytes
        )
    return GGUFFile(path, version, metadata, tensors, data_start, file_size, mm)
