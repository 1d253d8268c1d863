"""Vector-cell heatmaps for print (SVG/PDF).

Plotly draws a Heatmap trace as one embedded raster image, also in SVG and PDF. For print
each cell should be a vector shape: `vectorize` rewrites every Heatmap of a figure into
Scatter traces with fill='toself', one trace per colour bin (256 bins, as in an 8-bit
colour map) whose None-separated segments are the cells, so the SVG holds one closed
subpath per cell inside O(bins) <path> elements and renders fast.

Heatmaps above `max_cells` (128×128 by default) become one embedded PNG of at least `dpi`
dots per inch at the exported size, and `vectorize` returns a note saying so, which export
writes into the file (SVG <desc>/comment, PDF metadata).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.style import _to_rgb, color_bins, rgb_hex

VECTOR_MAX_CELLS = 128 * 128  # per heatmap
VECTOR_TOTAL_MAX = 4 * 128 * 128  # per figure: beyond this, the largest heatmaps are rastered
N_BINS = 256
SEAM_PX = 0.5  # cells overlap their right/lower neighbour by this many layout pixels
CSS_DPI = 96.0  # Plotly/Chromium layout pixels per inch
_DEFAULT_MARGIN = dict(l=80, r=80, t=100, b=80)


# ---------------------------------------------------------------- PNG

def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_encode(pixels: np.ndarray, dpi: float | None = None, level: int = 6) -> bytes:
    """Encode an image as PNG (stdlib only). Shapes: pixels [H, W, 3|4] uint8.

    dpi writes a pHYs chunk so viewers and print tools know the physical size.
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w, c = pixels.shape
    color_type = {3: 2, 4: 6}[c]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), pixels.reshape(h, w * c)], axis=1)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type,
                                                                0, 0, 0))
    if dpi:
        ppm = int(round(dpi / 0.0254))
        out += _chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))
    return out + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + _chunk(b"IEND", b"")


def png_set_dpi(png: bytes, dpi: float) -> bytes:
    """Insert or replace the pHYs chunk of a PNG (right after IHDR)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, chunks = 8, []
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos : pos + 4])
        tag = png[pos + 4 : pos + 8]
        if tag != b"pHYs":
            chunks.append(png[pos : pos + 12 + n])
        pos += 12 + n
    ppm = int(round(dpi / 0.0254))
    phys = _chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))
    return png[:8] + chunks[0] + phys + b"".join(chunks[1:])


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG header."""
    return struct.unpack(">II", png[16:24])


# ---------------------------------------------------------------- geometry and colour

def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges from cell centres. Shapes: [N] -> [N + 1]."""
    c = np.asarray(centres, dtype=np.float64)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _axis_edges(vals, v0, dv, n: int) -> np.ndarray | None:
    if vals is None:
        return _edges((0.0 if v0 is None else float(v0)) + (1.0 if dv is None else float(dv))
                      * np.arange(n))
    arr = np.asarray(vals)
    if arr.dtype.kind not in "iuf":
        return None  # categorical axis: leave it to Plotly
    if arr.size == n + 1:
        return arr.astype(np.float64)
    return _edges(arr[:n])


def _trace_colors(fig: go.Figure, trace) -> tuple[list, float, float]:
    """(colour scale, zmin, zmax) a Heatmap trace is drawn with."""
    z = np.asarray(trace.z, dtype=np.float64)
    scale, zmin, zmax, reverse = trace.colorscale, trace.zmin, trace.zmax, trace.reversescale
    if trace.coloraxis:
        ca = fig.layout[trace.coloraxis]
        scale, zmin, zmax, reverse = ca.colorscale, ca.cmin, ca.cmax, ca.reversescale
    if scale is None:
        scale = fig.layout.template.layout.colorscale.sequential or "plasma"
    if isinstance(scale, str):
        import plotly.colors as pcolors

        scale = pcolors.get_colorscale(scale)
    scale = [[float(p), c] for p, c in scale]
    if reverse:
        scale = [[1.0 - p, c] for p, c in reversed(scale)]
    finite = z[np.isfinite(z)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if zmin is None and zmax is None and getattr(trace, "zmid", None) is not None:
        m = max(abs(lo - trace.zmid), abs(hi - trace.zmid))
        zmin, zmax = trace.zmid - m, trace.zmid + m
    return scale, lo if zmin is None else float(zmin), hi if zmax is None else float(zmax)


def bin_colors(scale: Sequence[Sequence], n: int = N_BINS) -> list[str]:
    """Colour of each of n equal bins of [zmin, zmax], taken at the bin centre."""
    pos = np.array([p for p, _ in scale], dtype=np.float64)
    rgb = np.array([_to_rgb(c) for _, c in scale], dtype=np.float64)
    t = (np.arange(n) + 0.5) / n
    cols = np.stack([np.interp(t, pos, rgb[:, ch]) for ch in range(3)], axis=1)
    return [rgb_hex(c) for c in np.clip(np.rint(cols), 0, 255)]


# ---------------------------------------------------------------- vector cells

def vector_traces(
    z: np.ndarray,
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    scale: Sequence[Sequence],
    zmin: float,
    zmax: float,
    *,
    xaxis: str = "x",
    yaxis: str = "y",
    n_bins: int = N_BINS,
    overlap: tuple[float, float] = (0.0, 0.0),
) -> list[go.Scatter]:
    """One filled Scatter per used colour bin; each finite cell one closed subpath.

    Shapes: z [R, C]; x_edges [C + 1]; y_edges [R + 1]. NaN/±inf cells are left empty.
    overlap (dx, dy), in data units: inner right/lower edges reach that far into the
    neighbour, so viewers' anti-aliasing leaves no hairline seams between cells
    (`vectorize` uses about half a layout pixel; outer edges stay exact).
    """
    z = np.asarray(z, dtype=np.float64)
    bins = color_bins(z, zmin, zmax, n_bins)  # [R, C], -1 = empty
    colors = bin_colors(scale, n_bins)
    x_edges = np.asarray(x_edges, np.float64)
    y_edges = np.asarray(y_edges, np.float64)
    flat = bins.reshape(-1)
    order = np.argsort(flat, kind="stable")
    sorted_bins = flat[order]
    starts = np.searchsorted(sorted_bins, np.arange(n_bins))
    stops = np.searchsorted(sorted_bins, np.arange(n_bins), side="right")
    nrow, ncol = z.shape
    sx = np.sign(x_edges[-1] - x_edges[0]) or 1.0  # edges may run either way
    sy = np.sign(y_edges[-1] - y_edges[0]) or 1.0
    traces = []
    for b in range(n_bins):
        cells = order[starts[b] : stops[b]]
        if cells.size == 0:
            continue
        r, c = np.divmod(cells, ncol)
        x0, x1, y0, y1 = x_edges[c], x_edges[c + 1], y_edges[r], y_edges[r + 1]
        x1 = x1 + np.where(c + 1 < ncol, sx * overlap[0], 0.0)
        y1 = y1 + np.where(r + 1 < nrow, sy * overlap[1], 0.0)
        gap = np.full(cells.size, np.nan)
        xs = np.stack([x0, x1, x1, x0, gap], axis=1).reshape(-1).astype(np.float32)
        ys = np.stack([y0, y0, y1, y1, gap], axis=1).reshape(-1).astype(np.float32)
        traces.append(
            go.Scatter(
                x=xs, y=ys, mode="none", fill="toself", fillcolor=colors[b],
                xaxis=xaxis, yaxis=yaxis, hoverinfo="skip", showlegend=False,
                connectgaps=False, name=f"cells {b}", line=dict(width=0, simplify=False),
            )
        )
    return traces


def _colorbar_stub(trace, scale, zmin, zmax) -> go.Scatter:
    """An empty Scatter that only draws the heatmap's colour bar (as vector gradient)."""
    marker = dict(color=[zmin, zmax], showscale=bool(trace.showscale is not False))
    if trace.coloraxis:
        marker.update(coloraxis=trace.coloraxis)
        marker.pop("showscale")
    else:
        marker.update(colorscale=scale, cmin=zmin, cmax=zmax,
                      colorbar=trace.colorbar.to_plotly_json())
    return go.Scatter(
        x=[None, None], y=[None, None], mode="markers", marker=marker, xaxis=trace.xaxis,
        yaxis=trace.yaxis, hoverinfo="skip", showlegend=False,
    )


# ---------------------------------------------------------------- raster fallback

def _layout_axis(fig: go.Figure, ref: str):
    """'x2' -> fig.layout.xaxis2."""
    return fig.layout[ref[0] + "axis" + ref[1:]]


def _plot_area_px(fig: go.Figure, axis: str, size: float, horizontal: bool) -> float:
    m = fig.layout.margin
    if horizontal:
        lo = m.l if m.l is not None else _DEFAULT_MARGIN["l"]
        hi = m.r if m.r is not None else _DEFAULT_MARGIN["r"]
    else:
        lo = m.t if m.t is not None else _DEFAULT_MARGIN["t"]
        hi = m.b if m.b is not None else _DEFAULT_MARGIN["b"]
    ax = _layout_axis(fig, axis)
    dom = ax.domain or (0, 1)
    return max(50.0, (size - lo - hi) * (dom[1] - dom[0]))


def _reversed(ax) -> bool:
    if ax.autorange == "reversed":
        return True
    return bool(ax.range and ax.range[0] is not None and ax.range[0] > ax.range[1])


def raster_image(
    fig: go.Figure,
    trace,
    z: np.ndarray,
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    scale,
    zmin: float,
    zmax: float,
    *,
    width: float,
    height: float,
    dpi: float,
) -> tuple[dict, tuple[int, int], float]:
    """A layout image replacing a big heatmap: nearest-neighbour upscaled PNG, >= dpi.

    Shapes: z [R, C] -> PNG [k_y·R, k_x·C, 4] (NaN transparent).
    Returns (layout image dict, (width_px, height_px), achieved dpi).
    """
    r, c = z.shape
    area_w = _plot_area_px(fig, trace.xaxis or "x", width, True) / CSS_DPI  # inches
    area_h = _plot_area_px(fig, trace.yaxis or "y", height, False) / CSS_DPI
    kx, ky = max(1, math.ceil(area_w * dpi / c)), max(1, math.ceil(area_h * dpi / r))
    bins = color_bins(z, zmin, zmax, N_BINS)
    table = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] + [255]
                      for h in bin_colors(scale, N_BINS)] + [[0, 0, 0, 0]], dtype=np.uint8)
    rgba = table[bins]  # [R, C, 4], bin -1 -> transparent
    if (bins >= 0).all():
        rgba = rgba[..., :3]  # opaque: RGB is a quarter smaller
    xa = _layout_axis(fig, trace.xaxis or "x")
    ya = _layout_axis(fig, trace.yaxis or "y")
    y_rev, x_rev = _reversed(ya), _reversed(xa)
    if not y_rev:  # image row 0 is drawn at the top; data row 0 sits at the bottom
        rgba = rgba[::-1]
    if x_rev:
        rgba = rgba[:, ::-1]
    rgba = np.repeat(np.repeat(rgba, ky, axis=0), kx, axis=1)
    achieved = min(kx * c / area_w, ky * r / area_h)
    png = png_encode(rgba, dpi=achieved)
    import base64

    image = dict(
        source="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        xref=trace.xaxis or "x", yref=trace.yaxis or "y",
        x=float(x_edges.max() if x_rev else x_edges.min()),
        y=float(y_edges.min() if y_rev else y_edges.max()),
        sizex=float(x_edges.max() - x_edges.min()), sizey=float(y_edges.max() - y_edges.min()),
        xanchor="left", yanchor="top", sizing="stretch", layer="below",
    )
    return image, (rgba.shape[1], rgba.shape[0]), achieved


# ---------------------------------------------------------------- whole figure

def vectorize(
    fig: go.Figure,
    *,
    width: float | None = None,
    height: float | None = None,
    max_cells: int = VECTOR_MAX_CELLS,
    total_max: int = VECTOR_TOTAL_MAX,
    dpi: float = 300.0,
) -> tuple[go.Figure, list[str]]:
    """Copy of `fig` with every Heatmap drawn as vector cells (or a >= dpi raster if large).

    width/height: the export size in layout pixels (default: the figure's, else 700×500).
    Returns (figure, notes); notes name each heatmap that was rasterised and its resolution.
    """
    out = go.Figure(fig)
    width = width or out.layout.width or 700
    height = height or out.layout.height or 500
    heat = [i for i, t in enumerate(out.data) if t.type == "heatmap"]
    sizes = {i: int(np.asarray(out.data[i].z).size) for i in heat}
    vector_ok = {i for i in heat if sizes[i] <= max_cells}
    if sum(sizes[i] for i in vector_ok) > total_max:  # all or nothing: one look per figure
        vector_ok = set()
    new_data, images, notes, stubs = [], [], [], set()
    for i, tr in enumerate(out.data):
        if tr.type != "heatmap":
            new_data.append(tr)
            continue
        z = np.asarray(tr.z, dtype=np.float64)
        if tr.transpose:
            z = z.T
        xe = _axis_edges(tr.x, tr.x0, tr.dx, z.shape[1])
        ye = _axis_edges(tr.y, tr.y0, tr.dy, z.shape[0])
        if xe is None or ye is None or z.ndim != 2:
            new_data.append(tr)
            notes.append(f"heatmap {i} has categorical axes; left to Plotly (raster)")
            continue
        scale, zmin, zmax = _trace_colors(out, tr)
        if i in vector_ok:
            px_w = _plot_area_px(out, tr.xaxis or "x", width, True)
            px_h = _plot_area_px(out, tr.yaxis or "y", height, False)
            overlap = (SEAM_PX * abs(xe[-1] - xe[0]) / px_w,
                       SEAM_PX * abs(ye[-1] - ye[0]) / px_h)
            new_data.extend(vector_traces(z, xe, ye, scale, zmin, zmax, overlap=overlap,
                                          xaxis=tr.xaxis or "x", yaxis=tr.yaxis or "y"))
        else:
            img, (pw, ph), got = raster_image(out, tr, z, xe, ye, scale, zmin, zmax,
                                              width=width, height=height, dpi=dpi)
            images.append(img)
            notes.append(
                f"heatmap {i} ({z.shape[0]}x{z.shape[1]} cells, above the vector limit of "
                f"{max_cells} cells per heatmap or {total_max} per figure) is "
                f"an embedded {pw}x{ph} px raster, {got:.0f} dpi at the exported size"
            )
        if tr.coloraxis and tr.coloraxis not in stubs:
            stubs.add(tr.coloraxis)
            new_data.append(_colorbar_stub(tr, scale, zmin, zmax))
        elif not tr.coloraxis and tr.showscale is not False:
            new_data.append(_colorbar_stub(tr, scale, zmin, zmax))
    out.data = ()
    out.add_traces(new_data)
    if images:
        out.update_layout(images=list(out.layout.images) + images)
    return out, notes


__all__ = [
    "VECTOR_MAX_CELLS", "VECTOR_TOTAL_MAX", "bin_colors", "png_encode", "png_set_dpi",
    "png_size", "raster_image", "vector_traces", "vectorize",
]
