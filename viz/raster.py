"""Server-side colour mapping: a map becomes an indexed PNG, one pixel per cell.

A 2,048-token map has 4.2M cells. As a Plotly heatmap it travels as 16 MB of float32 (22.9
MB of JSON) and Chromium takes 2.9 s to parse and draw it; as an 8-bit indexed PNG it is one
byte a cell before compression (0.28 MB of JSON for a causal map) and takes 0.22 s
(`bench/bench_image_map.py --tokens 2048`, this 2-core VM at load 5).

The PNG writer is the standard's minimal form: IHDR, PLTE, one zlib-compressed IDAT with
filter 0 on every row, and IEND. An indexed image keeps exact cell boundaries, because a
colour is never interpolated between two cells.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import plotly.colors as pcolors

from viz.style import DEFAULT, MASKED_COLOR, Style, colorscale

N_COLOURS = 255  # palette slots 0..254 carry the scale; slot 255 marks a cell with no value
NO_VALUE = 255


def palette_lut(style: Style = DEFAULT, n: int = N_COLOURS) -> np.ndarray:
    """The style's colour scale sampled at n evenly spaced points, then the no-value colour.

    Shapes: -> uint8 [n + 1, 3].
    """
    scale = colorscale(style)
    points = [i / (n - 1) for i in range(n)]
    rgb = [pcolors.unlabel_rgb(c) for c in pcolors.sample_colorscale(scale, points,
                                                                    colortype="rgb")]
    rgb.append(pcolors.hex_to_rgb(MASKED_COLOR))
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float64)), 0, 255).astype(np.uint8)


def log_floor(values: np.ndarray, zmax: float, decades: float = 4.0) -> float:
    """The smallest weight a log scale shows: `decades` below the largest, or the smallest
    positive value if that is higher (a map of ones and zeros gets a usable scale)."""
    v = np.asarray(values)
    pos = v[(v > 0) & np.isfinite(v)]
    lowest = float(pos.min()) if pos.size else zmax
    return max(lowest, zmax * 10.0 ** -decades) if zmax > 0 else 1e-12


def colour_indices(values: np.ndarray, zmin: float, zmax: float, *, log: bool = False,
                   n: int = N_COLOURS) -> np.ndarray:
    """Each cell's palette slot. A linear scale maps [zmin, zmax] to 0..n-1, clipping values
    outside it. A log scale maps [log10 zmin, log10 zmax] the same way, and then zmin must be
    > 0. A cell with no finite value (NaN, ±inf), or with a value ≤ 0 under a log scale, gets
    NO_VALUE.

    Shapes: values [Tq, Tk] -> uint8 [Tq, Tk].
    """
    z = np.asarray(values, dtype=np.float32)
    bad = ~np.isfinite(z)
    if log:
        if not zmin > 0:
            raise ValueError(f"a log colour scale needs zmin > 0, got {zmin}")
        bad |= z <= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log10(np.where(bad, 1.0, z))
        # python floats: a numpy float64 here would turn the whole map into float64 below
        # (numpy scalars are not "weak"), 2.9 s against 0.3 s on 8,000² cells
        lo, hi = float(np.log10(zmin)), float(np.log10(zmax))
    else:
        lo, hi = float(zmin), float(zmax)
    span = (hi - lo) if hi > lo else 1.0
    idx = np.rint((np.nan_to_num(z, nan=lo) - lo) * ((n - 1) / span))
    out = np.clip(idx, 0, n - 1).astype(np.uint8)
    out[bad] = NO_VALUE
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


BIG_IMAGE = 1 << 22  # cells; past this, zlib level 1: on 8,000² cells level 6 took 4.5×
# the time (2.5 s against 0.55 s) for 9% fewer bytes


def indexed_png(indices: np.ndarray, lut: np.ndarray, level: int | None = None) -> bytes:
    """An 8-bit palette PNG of `indices` (one pixel per cell) with colours `lut`; `level`
    is zlib's (default 6, or 1 past BIG_IMAGE cells).

    Shapes: indices uint8 [H, W]; lut uint8 [<=256, 3].
    """
    idx = np.ascontiguousarray(indices, dtype=np.uint8)
    if idx.ndim != 2 or min(idx.shape) == 0:
        raise ValueError(f"an image needs a non-empty 2-D array, got shape {idx.shape}")
    h, w = idx.shape
    level = (6 if idx.size <= BIG_IMAGE else 1) if level is None else level
    rows = np.empty((h, w + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type 0 ("None") on every row
    rows[:, 1:] = idx
    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)  # 8-bit, colour type 3 (palette)
    palette = np.ascontiguousarray(lut, dtype=np.uint8).tobytes()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"PLTE", palette)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b""))


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def decode_indexed_png(png: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The (indices [H, W], lut [n, 3]) of a PNG written by `indexed_png`. It reads only that
    form, for tests and for exports that need the pixels back."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, chunks = 8, {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind = png[pos + 4:pos + 8]
        chunks.setdefault(kind, b"")
        chunks[kind] += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    w, h, depth, ctype = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    if (depth, ctype) != (8, 3):
        raise ValueError("only 8-bit palette PNGs are read here")
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(h, w + 1)
    lut = np.frombuffer(chunks[b"PLTE"], dtype=np.uint8).reshape(-1, 3)
    return rows[:, 1:].copy(), lut.copy()
