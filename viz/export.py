"""Export figures (PNG/SVG/PDF/HTML) and attention numbers (CSV/JSON/NPZ), and ZIP bundles.

Static images come from kaleido 1.x, which drives a headless Chromium. One long-lived
Kaleido browser runs on its own event-loop thread and every render goes through one
`threading.Lock`: kaleido's sync server is not thread-safe (its task and result queues are
shared, so concurrent callers can receive each other's images). Without Chromium, HTML and
the data formats still work; PNG/SVG/PDF raise `ExportUnavailable` saying how to install it.

SVG and PDF draw heatmap cells as vector shapes (see viz.vector); PNG is a screenshot at
`scale` (or `dpi` / 96) with a pHYs chunk recording the DPI.
"""

from __future__ import annotations

import asyncio
import atexit
import csv
import hashlib
import io
import json
import re
import sys
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from viz.metrics import split_key
from viz.style import DEFAULT, Style, apply_style
from viz.vector import VECTOR_MAX_CELLS, VECTOR_TOTAL_MAX, png_set_dpi, vectorize

IMAGE_FORMATS = ("png", "svg", "pdf")
FIGURE_FORMATS = (*IMAGE_FORMATS, "html")
DATA_FORMATS = ("csv", "json", "npz")
FORMATS = (*FIGURE_FORMATS, *DATA_FORMATS, "zip")
COLUMNS = ("block", "layer", "head", "query_index", "query_token", "key_index", "key_token",
           "weight")
RENDER_TIMEOUT = 90.0
START_TIMEOUT = 120.0
CHROMIUM_HINT = (
    "PNG/SVG/PDF export needs Chromium, which was not found. Install it with "
    "`apt-get install -y chromium` (HTML, CSV, JSON and NPZ export work without it)."
)
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entries get a fixed date: same input, same bytes

Progress = Callable[[float, str], None]


class ExportError(RuntimeError):
    """A figure could not be rendered."""


class ExportUnavailable(ExportError):
    """Static image export is impossible here (no Chromium)."""


# ---------------------------------------------------------------- kaleido server

class _KaleidoServer:
    """One Kaleido browser on a private event-loop thread; renders one figure at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._k = None

    def _start(self) -> None:
        try:
            import kaleido
            from kaleido.errors import ChromeNotFoundError
        except ImportError as e:  # pragma: no cover - kaleido is a requirement
            raise ExportUnavailable(f"kaleido is not installed ({e}); {CHROMIUM_HINT}") from None
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="viz-kaleido", daemon=True)
        thread.start()

        async def open_browser():
            # mathjax=False: never fetch MathJax from a CDN (exports must work offline)
            k = kaleido.Kaleido(n=1, mathjax=False, timeout=RENDER_TIMEOUT)
            await k.open()
            return k

        try:
            self._k = asyncio.run_coroutine_threadsafe(open_browser(), loop).result(START_TIMEOUT)
        except ChromeNotFoundError:
            self._stop_loop(loop, thread)
            raise ExportUnavailable(CHROMIUM_HINT) from None
        except BaseException as e:
            self._stop_loop(loop, thread)
            raise ExportError(f"could not start the Chromium renderer: {e}") from e
        self._loop, self._thread = loop, thread

    @staticmethod
    def _stop_loop(loop, thread) -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    def stop(self) -> None:
        """Close the browser (called at exit; the next render starts a new one)."""
        if self._k is not None and self._loop is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._k.close(), self._loop).result(15)
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
            self._stop_loop(self._loop, self._thread)
        self._k = self._loop = self._thread = None

    @property
    def running(self) -> bool:
        return self._k is not None

    def render(self, spec: dict, opts: dict) -> bytes:
        """Render a figure dict; opts: format, width, height, scale."""
        from choreographer.channels import ChannelClosedError
        from kaleido.errors import BrowserClosedError, BrowserFailedError

        dead = (BrowserClosedError, BrowserFailedError, ChannelClosedError)
        with self.lock:
            for attempt in (0, 1):
                if self._k is None:
                    self._start()
                fut = asyncio.run_coroutine_threadsafe(self._k.calc_fig(spec, opts=opts),
                                                       self._loop)
                try:
                    return fut.result(RENDER_TIMEOUT + 30)
                except dead as e:  # the browser died: start a new one and retry once
                    self.stop()
                    if attempt:
                        raise ExportError(f"Chromium renderer failed: {e}") from e
                except TimeoutError as e:
                    self.stop()
                    raise ExportError("rendering timed out") from e
                except Exception as e:
                    raise ExportError(f"rendering failed: {e}") from e
        raise AssertionError("unreachable")


_SERVER = _KaleidoServer()
atexit.register(_SERVER.stop)


def chromium_available() -> bool:
    """True if kaleido can find a Chromium/Chrome binary (does not start it)."""
    try:
        from choreographer.browsers.chromium import Chromium

        return bool(Chromium.find_browser(skip_local=False))
    except Exception:  # noqa: BLE001
        return False


def shutdown() -> None:
    """Close the shared Chromium renderer now (it restarts on the next image export)."""
    with _SERVER.lock:
        _SERVER.stop()


# ---------------------------------------------------------------- figures

def _figure_title(fig: go.Figure) -> str:
    t = fig.layout.title.text if fig.layout.title else None
    return re.sub(r"<[^>]+>", "", t or "").replace("&lt;", "<").replace("&gt;", ">").replace(
        "&amp;", "&")


def _svg_annotate(svg: bytes, title: str, notes: Sequence[str]) -> bytes:
    """Add <title>, <desc> and a comment right after the opening <svg> tag."""
    from xml.sax.saxutils import escape

    m = re.search(rb"<svg[^>]*>", svg)
    if not m:
        return svg
    parts = [f"<title>{escape(title or 'Attention Studio figure')}</title>"]
    if notes:
        text = "; ".join(notes)
        parts.append(f"<desc>{escape(text)}</desc><!-- {escape(text).replace('--', '- -')} -->")
    return svg[: m.end()] + "".join(parts).encode() + svg[m.end() :]


def _pdf_string(s: str) -> bytes:
    return b"<FEFF" + s.encode("utf-16-be").hex().upper().encode() + b">"


def pdf_set_info(pdf: bytes, info: Mapping[str, str]) -> bytes:
    """Set the PDF document info (Title, Subject, ...) by an incremental update."""
    trailer = pdf[pdf.rfind(b"trailer") :]
    size = re.search(rb"/Size (\d+)", trailer)
    root = re.search(rb"/Root (\d+ \d+ R)", trailer)
    prev = re.search(rb"startxref\s+(\d+)", trailer)
    if not (size and root and prev):
        return pdf  # not a classic-xref PDF: leave untouched
    n = int(size[1])
    body = b"".join(b"/" + k.encode() + b" " + _pdf_string(v) + b"\n" for k, v in info.items())
    obj_at = len(pdf) + 1
    obj = b"\n%d 0 obj\n<<%s>>\nendobj\n" % (n, body)
    xref_at = len(pdf) + len(obj)
    tail = (b"xref\n%d 1\n%010d 00000 n \ntrailer\n<</Size %d\n/Root %s\n/Info %d 0 R\n/Prev %s>>"
            b"\nstartxref\n%d\n%%%%EOF\n" % (n, obj_at, n + 1, root[1], n, prev[1], xref_at))
    return pdf + obj + tail


def figure_bytes(
    fig: go.Figure,
    fmt: str,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 1.0,
    dpi: float | None = None,
    style: Style | None = None,
    vector: bool = True,
    max_cells: int = VECTOR_MAX_CELLS,
    raster_dpi: float = 300.0,
) -> bytes:
    """One figure as png/svg/pdf/html bytes.

    width/height: layout pixels (default: the figure's, else 700×500). PNG pixel size is
    width·scale × height·scale; `dpi` sets scale = dpi / 96 and records the DPI in the PNG.
    style: re-apply fonts/title/background for print. vector: SVG/PDF heatmaps as vector
    cells up to `max_cells` per heatmap, larger ones as a >= raster_dpi embedded image.
    """
    fmt = fmt.lower()
    if fmt not in FIGURE_FORMATS:
        raise ValueError(
            f"unknown figure format {fmt!r}; choose one of {', '.join(FIGURE_FORMATS)}"
        )
    fig = go.Figure(fig)
    if style is not None:
        apply_style(fig, style, _figure_title(fig) or None)
    if fmt == "html":
        html = pio.to_html(
            fig, include_plotlyjs=True, full_html=True, include_mathjax=False,
            config=dict(displaylogo=False, toImageButtonOptions=dict(format="svg")),
        )
        return html.encode("utf-8")
    width = int(width or fig.layout.width or 700)
    height = int(height or fig.layout.height or 500)
    if dpi:
        scale = dpi / 96.0
    notes: list[str] = []
    if vector and fmt in ("svg", "pdf"):
        fig, notes = vectorize(fig, width=width, height=height, max_cells=max_cells,
                               total_max=max(VECTOR_TOTAL_MAX, max_cells), dpi=raster_dpi)
    spec = json.loads(pio.to_json(fig, validate=False))
    out = _SERVER.render(spec, dict(format=fmt, width=width, height=height, scale=scale))
    title = _figure_title(fig)
    if fmt == "png" and dpi:
        out = png_set_dpi(out, dpi)
    elif fmt == "svg":
        out = _svg_annotate(out, title, notes)
    elif fmt == "pdf":
        info = {"Title": title or "Attention Studio figure", "Creator": "Attention Studio viz"}
        if notes:
            info["Subject"] = "; ".join(notes)
            info["Keywords"] = "raster-embedded"
        out = pdf_set_info(out, info)
    return out


# ---------------------------------------------------------------- attention data

@dataclass
class AttentionData:
    """Attention maps of one input: what the data exports and bundles need.

    attn: {"encoder.self.0": float32 [H, Tq, Tk], ...} (record keys, see docs/contract.md);
    tokens: source/decoder-only tokens; target_tokens: decoder tokens of an
    encoder-decoder (else None); heads: original head indices when a subset was selected.
    """

    attn: dict[str, np.ndarray]
    tokens: list[str]
    target_tokens: list[str] | None = None
    meta: dict = field(default_factory=dict)
    heads: list[int] | None = None

    @classmethod
    def from_record(cls, rec: Any) -> AttentionData:
        """From an engine AttentionRecord (duck-typed: tokens, target_tokens, keys(), [key])."""
        return cls(
            attn={k: np.asarray(rec[k], dtype=np.float32) for k in rec.keys()},
            tokens=list(rec.tokens),
            target_tokens=None if rec.target_tokens is None else list(rec.target_tokens),
            meta=dict(getattr(rec, "meta", {}) or {}),
        )

    def token_pair(self, key: str) -> tuple[list[str], list[str]]:
        """(query tokens, key tokens) of a record key, checked against the map's shape."""
        block, _ = split_key(key)
        if self.target_tokens is None or block.startswith("encoder"):
            q, k = self.tokens, self.tokens
        elif block == "decoder.cross":
            q, k = self.target_tokens, self.tokens
        else:
            q, k = self.target_tokens, self.target_tokens
        shape = self.attn[key].shape
        if shape[-2:] != (len(q), len(k)):
            raise ValueError(
                f"{key} has shape {shape} but there are {len(q)} query and {len(k)} key tokens"
            )
        return q, k

    def select(self, block: str | None = None, layer: int | None = None,
               head: int | None = None) -> AttentionData:
        """Subset by block ('decoder.self'), layer and head (keeps [H', Tq, Tk] arrays)."""
        keys = [k for k in self.attn
                if (block is None or split_key(k)[0] == block)
                and (layer is None or split_key(k)[1] == layer)]
        if not keys:
            have = ", ".join(self.attn) or "none"
            raise ValueError(f"no attention for block={block} layer={layer}; have: {have}")
        attn = {k: self.attn[k] for k in keys}
        heads = self.heads
        if head is not None:
            n = min(a.shape[0] for a in attn.values())
            if not 0 <= head < n:
                raise ValueError(f"head {head} outside 0..{n - 1}")
            attn = {k: a[head : head + 1] for k, a in attn.items()}
            heads = [head if self.heads is None else self.heads[head]]
        return AttentionData(attn, self.tokens, self.target_tokens, self.meta, heads)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def tidy_columns(data: AttentionData) -> Iterable[dict[str, np.ndarray | list]]:
    """Per record key, the tidy columns (see COLUMNS) as arrays; weights as float32 strings.

    Shapes: each key [H, Tq, Tk] -> columns of length H·Tq·Tk, ordered head, query, key.
    """
    for key, a in data.attn.items():
        block, layer = split_key(key)
        q_tok, k_tok = data.token_pair(key)
        h, tq, tk = a.shape
        heads = np.asarray(data.heads if data.heads is not None else range(h))
        n = h * tq * tk
        qi = np.tile(np.repeat(np.arange(tq), tk), h)
        ki = np.tile(np.arange(tk), h * tq)
        yield dict(
            block=[block] * n, layer=[layer] * n, head=np.repeat(heads, tq * tk).tolist(),
            query_index=qi.tolist(), query_token=np.asarray(q_tok, dtype=object)[qi].tolist(),
            key_index=ki.tolist(), key_token=np.asarray(k_tok, dtype=object)[ki].tolist(),
            # shortest text that reads back as the same float32
            weight=np.asarray(a, dtype=np.float32).reshape(-1).astype(str).tolist(),
        )


def tidy_rows(data: AttentionData) -> list[dict]:
    """Tidy rows (block, layer, head, query_index, query_token, key_index, key_token, weight)."""
    rows = []
    for cols in tidy_columns(data):
        cols = dict(cols, weight=[float(w) for w in cols["weight"]])
        rows.extend(dict(zip(COLUMNS, vals, strict=True))
                    for vals in zip(*(cols[c] for c in COLUMNS), strict=True))
    return rows


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An .npz (readable by np.load, no pickle) with fixed zip dates: same arrays, same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            b = io.BytesIO()
            np.lib.format.write_array(b, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(info, b.getvalue())
    return buf.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell):
    """A text cell a spreadsheet would run as a formula ("=HYPERLINK(…)", "+1", "@SUM…") with
    a leading apostrophe, which spreadsheets show as text (OWASP's CSV-injection advice).
    Only CSV text is changed; numbers, and every JSON and NPZ value, stay as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def data_bytes(data: AttentionData, fmt: str) -> bytes:
    """Attention numbers as csv/json (tidy rows) or npz (engine layout: tokens,
    target_tokens, one float32 [H, Tq, Tk] per key, heads, meta JSON)."""
    fmt = fmt.lower()
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for cols in tidy_columns(data):
            for token_column in ("query_token", "key_token"):
                cols[token_column] = [spreadsheet_safe(t) for t in cols[token_column]]
            w.writerows(zip(*(cols[c] for c in COLUMNS), strict=True))
        return buf.getvalue().encode("utf-8")
    if fmt == "json":
        return json.dumps(tidy_rows(data), ensure_ascii=False, separators=(",", ":")).encode()
    if fmt == "npz":
        arrays: dict[str, np.ndarray] = {
            "tokens": np.asarray(data.tokens, dtype=str),
            "target_tokens": np.asarray(data.target_tokens or [], dtype=str),
            # numpy str arrays drop trailing NULs: the exact tokens also travel as JSON
            "tokens_json": np.asarray(json.dumps(list(data.tokens))),
            "target_tokens_json": np.asarray(json.dumps(list(data.target_tokens or []))),
        }
        arrays.update({k: np.asarray(a, dtype=np.float32) for k, a in data.attn.items()})
        if data.heads is not None:
            arrays["heads"] = np.asarray(data.heads, dtype=np.int32)
        arrays["meta"] = np.asarray(json.dumps(_json_safe(data.meta), sort_keys=True))
        return npz_bytes(arrays)
    raise ValueError(f"unknown data format {fmt!r}; choose one of {', '.join(DATA_FORMATS)}")


def write(obj: go.Figure | AttentionData, path: str | Path, fmt: str | None = None,
          **kwargs) -> Path:
    """Write a figure (png/svg/pdf/html) or AttentionData (csv/json/npz) to `path`.

    fmt defaults to the file suffix; kwargs go to figure_bytes.
    """
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if isinstance(obj, AttentionData):
        out = data_bytes(obj, fmt)
    else:
        out = figure_bytes(obj, fmt, **kwargs)
    path.write_bytes(out)
    return path


# ---------------------------------------------------------------- bundles

BUNDLE_FORMATS = ("npz", "csv", "png", "html")
TIDY_MAX_ROWS = 2_000_000  # above this, CSV/JSON are left out of bundles (NPZ keeps all)


def versions() -> dict[str, str]:
    """Versions of the packages that shape exported bytes."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "plotly", "kaleido", "attention-studio"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _figure_for(data: AttentionData, keys: Sequence[str], head: int | None,
                style: Style) -> go.Figure:
    """Head heatmap of keys[0] (head given) or the model view of `keys` (one block kind)."""
    from viz.heatmap import head_heatmap
    from viz.model_view import model_view

    if head is None:
        title = keys[0] if len(keys) == 1 else split_key(keys[0])[0]
        return model_view([data.attn[k] for k in keys], layer_labels=list(keys), style=style,
                          title=title)
    q_tok, k_tok = data.token_pair(keys[0])
    return head_heatmap(data.attn[keys[0]][head], q_tok, k_tok, style=style,
                        title=f"{keys[0]} head {head}")


def build_file(data: AttentionData, spec: Mapping[str, Any], style: Style = DEFAULT,
               meta: Mapping[str, Any] | None = None) -> bytes:
    """Bytes of one bundle file from its manifest spec (format, keys, head, figure size).

    The same function writes the bundle and regenerates from a manifest, so both agree.
    meta replaces data.meta in NPZ files (bundles store the regeneration recipe there, not
    run-dependent details such as timings).
    """
    sel = AttentionData({k: data.attn[k] for k in spec["keys"]}, data.tokens,
                        data.target_tokens, dict(data.meta if meta is None else meta),
                        data.heads)
    fmt = spec["format"]
    if fmt in DATA_FORMATS:
        if spec.get("head") is not None:
            sel = sel.select(head=spec["head"])
        return data_bytes(sel, fmt)
    fig = _figure_for(sel, spec["keys"], spec.get("head"), style)
    return figure_bytes(fig, fmt, width=spec.get("width"), height=spec.get("height"),
                        scale=spec.get("scale", 1.0))


def _plan(data: AttentionData, formats: Sequence[str], fig_kw: dict) -> list[dict]:
    """The files of a bundle: data over all keys, one image per head, one HTML per block."""
    keys = list(data.attn)
    cells = sum(a.size for a in data.attn.values())
    plan = []
    for fmt in formats:
        if fmt in DATA_FORMATS:
            if fmt in ("csv", "json") and cells > TIDY_MAX_ROWS:
                continue
            plan.append(dict(name=f"attention.{fmt}", format=fmt, keys=keys, head=None))
        elif fmt == "html":  # one interactive model view per block kind (plotly.js is 4 MB)
            for block in dict.fromkeys(split_key(k)[0] for k in keys):
                plan.append(dict(name=f"figures/{block}.html", format="html", head=None,
                                 keys=[k for k in keys if split_key(k)[0] == block]))
        elif fmt in IMAGE_FORMATS:
            for k in keys:
                plan += [dict(name=f"figures/{k}.h{h}.{fmt}", format=fmt, keys=[k], head=h,
                              **fig_kw) for h in range(data.attn[k].shape[0])]
        else:
            raise ValueError(f"unknown bundle format {fmt!r}")
    return plan


def export_bundle(
    data: AttentionData | Any,
    out: str | Path | io.BufferedIOBase,
    *,
    source: Mapping[str, Any] | None = None,
    formats: Sequence[str] = BUNDLE_FORMATS,
    style: Style = DEFAULT,
    width: int | None = None,
    height: int | None = None,
    scale: float = 1.0,
    progress: Progress | None = None,
    skip_unavailable: bool = True,
) -> dict:
    """ZIP of every head of the given maps (a layer: data.select(block, layer); or the whole
    model) plus manifest.json, enough to regenerate each file with `regenerate_file`.

    data: AttentionData or an engine record. source: how the maps were made:
    {"model", "text", "target", "attend": attend() kwargs, "engine_version", "weights_hash"}
    (missing entries are taken from data.meta). progress(fraction, message) is called after
    each file. skip_unavailable: without Chromium, leave PNG/SVG/PDF out (the manifest's
    notes say so) instead of raising ExportUnavailable. Returns the manifest.
    """
    if not isinstance(data, AttentionData):
        data = AttentionData.from_record(data)
    meta = data.meta
    src = dict(source or {})
    for k in ("model", "text", "target", "device", "engine_version", "weights_hash"):
        src.setdefault(k, meta.get(k))
    src.setdefault("attend", meta.get("settings", {}))
    if src.get("engine_version") is None:
        src["engine_version"] = (meta.get("versions") or {}).get("engine")
    fig_kw = dict(width=width, height=height, scale=scale)
    formats = [f.lower() for f in formats]
    notes = []
    if skip_unavailable and set(formats) & set(IMAGE_FORMATS) and not chromium_available():
        notes.append("Chromium not found: PNG/SVG/PDF left out (apt-get install -y chromium)")
        formats = [f for f in formats if f not in IMAGE_FORMATS]
    cells = sum(a.size for a in data.attn.values())
    if cells > TIDY_MAX_ROWS and set(formats) & {"csv", "json"}:
        notes.append(f"{cells} rows are too many for CSV/JSON: use attention.npz")
    plan = _plan(data, formats, fig_kw)
    if not plan:
        raise ValueError("nothing to export: no formats selected")
    manifest = {
        "schema": "attention-studio/bundle-1",
        "source": _json_safe(src),
        "selection": {"keys": list(data.attn), "heads": data.heads},
        "tokens": data.tokens,
        "target_tokens": data.target_tokens,
        "meta": _json_safe(meta),
        "versions": versions(),
        "style": style.to_dict(),
        "notes": notes,
        "files": [],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, spec in enumerate(plan):
            blob = build_file(data, spec, style, meta={"source": manifest["source"]})
            info = zipfile.ZipInfo(spec["name"], date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, blob)
            manifest["files"].append(dict(spec, sha256=hashlib.sha256(blob).hexdigest(),
                                          bytes=len(blob)))
            if progress:
                progress((i + 1) / (len(plan) + 1), f"wrote {spec['name']}")
        info = zipfile.ZipInfo("manifest.json", date_time=_FIXED_TIME)
        zf.writestr(info, json.dumps(manifest, indent=2, ensure_ascii=False))
    if progress:
        progress(1.0, "done")
    if isinstance(out, (str, Path)):
        Path(out).write_bytes(buf.getvalue())
    else:
        out.write(buf.getvalue())
    return manifest


def regenerate_file(manifest: Mapping[str, Any], name: str,
                    loader: Callable[[str], Any] | None = None) -> bytes:
    """Re-run the model named in a bundle manifest and rebuild file `name` byte for byte
    (data files always; images when Chromium and package versions are the same).

    loader(model_name) -> object with .attend(text, target=..., **attend); default
    engine.load(model_name, device=source["device"] or "cpu").
    """
    spec = next((f for f in manifest["files"] if f["name"] == name), None)
    if spec is None:
        raise KeyError(f"{name!r} is not in the manifest")
    src = manifest["source"]
    if loader is None:
        import engine

        def loader(name):
            return engine.load(name, device=src.get("device") or "cpu")
    rec = loader(src["model"]).attend(src["text"], target=src.get("target"),
                                      **(src.get("attend") or {}))
    data = AttentionData.from_record(rec)
    data = AttentionData({k: data.attn[k] for k in manifest["selection"]["keys"]}, data.tokens,
                         data.target_tokens, data.meta)
    heads = manifest["selection"].get("heads")
    if heads is not None:
        data = data.select(head=heads[0])
    return build_file(data, spec, Style(**manifest["style"]), meta={"source": src})


__all__ = [
    "AttentionData", "BUNDLE_FORMATS", "COLUMNS", "DATA_FORMATS", "ExportError",
    "ExportUnavailable", "FIGURE_FORMATS", "FORMATS", "IMAGE_FORMATS", "chromium_available",
    "data_bytes", "export_bundle", "figure_bytes", "npz_bytes", "pdf_set_info",
    "regenerate_file", "shutdown", "tidy_rows", "versions", "write",
]
