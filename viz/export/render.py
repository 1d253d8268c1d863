"""Figures as PNG/SVG/PDF/HTML bytes.

Static images come from kaleido 1.x, which drives a headless Chromium. One long-lived
Kaleido browser runs on its own event-loop thread and every render goes through one
`threading.Lock`: kaleido's sync server is not thread-safe (its task and result queues are
shared, so concurrent callers can receive each other's images). Without Chromium, HTML
still works; PNG/SVG/PDF raise `ExportUnavailable` saying how to install it.

SVG and PDF draw heatmap cells as vector shapes (see viz.export.vector); PNG is a screenshot
at `scale` (or `dpi` / 96) with a pHYs chunk recording the DPI.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import re
import threading
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import plotly.io as pio

from viz.export.vector import VECTOR_MAX_CELLS, VECTOR_TOTAL_MAX, png_set_dpi, vectorize
from viz.style import Style, apply_style

IMAGE_FORMATS = ("png", "svg", "pdf")
FIGURE_FORMATS = (*IMAGE_FORMATS, "html")
RENDER_TIMEOUT = 90.0
START_TIMEOUT = 120.0
CHROMIUM_HINT = (
    "PNG/SVG/PDF export needs Chromium, which was not found. Install it with "
    "`apt-get install -y chromium` (HTML, CSV, JSON and NPZ export work without it)."
)


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
