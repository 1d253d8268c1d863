"""A download control for any figure: PNG / SVG / PDF / HTML of the figure, and CSV / JSON /
NPZ of the numbers behind it; `figure_with_download` draws a figure with its control (and,
optionally, a short explanation beside it), the one way every page shows a figure.

Nothing is exported until the user clicks: `st.download_button` gets a callable, which
Streamlit runs on its own thread at click time (viz.export serialises the Chromium renderer
behind a lock, so concurrent sessions each get their own figure). Without Chromium the
image formats explain how to install it and the others keep working.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from app_pages.shared import timing
from app_pages.shared.i18n import tr

if TYPE_CHECKING:
    import pandas as pd

try:
    from viz import export as _export
except ImportError:  # pragma: no cover - viz.export ships with the repo; degrade if broken
    _export = None

DOWNLOAD_TEXT = {
    "download": ("Download", "下载"),
    "format": ("Format", "格式"),
    "scale": ("PNG scale (× screen pixels)", "PNG 放大倍数(× 屏幕像素)"),
    "save": ("Save {fmt}", "保存 {fmt}"),
    "no_data": ("This figure has no attention numbers to export.", "此图没有可导出的注意力数值。"),
    "no_chromium": (
        "PNG/SVG/PDF need Chromium, which is not installed here: `apt-get install -y chromium`. "
        "HTML, CSV, JSON and NPZ work without it.",
        "PNG/SVG/PDF 需要 Chromium,此处未安装:`apt-get install -y chromium`。"
        "HTML、CSV、JSON 和 NPZ 不需要它。",
    ),
    "what": (
        "Figure formats save what you see; CSV/JSON/NPZ save the numbers behind it "
        "(tidy rows: block, layer, head, query, key, weight).",
        "图片格式保存所见的图;CSV/JSON/NPZ 保存图背后的数值"
        "(整齐的行:块、层、头、查询、键、权重)。",
    ),
}

IMAGE_FORMATS = ("png", "svg", "pdf")
FIGURE_FORMATS = (*IMAGE_FORMATS, "html")
DATA_FORMATS = ("csv", "json", "npz")
MIME = {
    "png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf",
    "html": "text/html", "csv": "text/csv", "json": "application/json",
    "npz": "application/octet-stream",
}


_CHROMIUM_TTL = 60.0  # seconds between looks for the browser (it is asked on every rerun)
_chromium_seen: tuple[float, bool] = (-_CHROMIUM_TTL, False)


def chromium_available() -> bool:
    """Whether image export can run here (looked up at call time so tests can stub it;
    the answer is reused for a minute)."""
    global _chromium_seen
    if _export is None:
        return False
    now = time.monotonic()
    if now - _chromium_seen[0] < _CHROMIUM_TTL:
        return _chromium_seen[1]
    try:
        found = bool(_export.chromium_available())
    except Exception:  # noqa: BLE001 - any failure means: no images
        found = False
    _chromium_seen = (now, found)
    return found


def file_stem(*parts: object) -> str:
    """A safe file name stem from parts: letters, digits, dot, dash, underscore."""
    text = "_".join(str(p) for p in parts if p is not None and p != "")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-_.")[:120] or "figure"


def download_stem(name: str | None, record, block: str | None, layer: int | None,
                  head: int | None) -> str:
    """A file name a reader understands: `minilm_L3_H5`, `seq2seq-mha_cross_L1_H0`, or the
    page's `name` for a derived figure; never the widget's internal key."""
    if name:
        return file_stem(name)
    model = (record.meta.get("model") if record is not None else None) or "figure"
    kind = None
    if block and not block.startswith("encoder.self"):
        kind = "cross" if "cross" in block else block.split(".")[0]  # decoder.self → decoder
    return file_stem(model, kind, None if layer is None else f"L{layer}",
                     None if head is None else f"H{head}")


def _select(record, block: str | None, layer: int | None, head: int | None):
    """The AttentionData of record narrowed to block/layer/head (whatever is given)."""
    data = _export.AttentionData.from_record(record)
    if block is None and layer is None and head is None:
        return data
    return data.select(block=block, layer=layer, head=head)


def table_bytes(table: pd.DataFrame | Callable[[], pd.DataFrame], fmt: str) -> bytes:
    """A derived table (metrics, rollout, bytes) as CSV, JSON records or NPZ of columns.
    `table` may be a callable that builds it (so big tables are built only on click)."""
    if callable(table):
        table = table()
    if fmt == "csv":
        if _export is not None:  # text cells a spreadsheet would run as formulas
            text = table.select_dtypes(include=["object", "string"]).columns
            table = table.assign(**{c: table[c].map(_export.spreadsheet_safe) for c in text})
        return table.to_csv(index=False).encode("utf-8")
    if fmt == "json":
        return json.dumps(table.to_dict(orient="records"), ensure_ascii=False,
                          default=float).encode("utf-8")
    if fmt == "npz":
        buf = io.BytesIO()
        arrays = {}
        for col in table.columns:
            values = table[col].to_numpy()
            if values.dtype == object:
                values = values.astype(str)
            elif np.issubdtype(values.dtype, np.floating):
                values = values.astype(np.float32)
            arrays[str(col)] = values
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()
    raise ValueError(f"unknown data format {fmt!r}")


def make_bytes(fig: go.Figure, fmt: str, record=None, table=None,
               block: str | None = None, layer: int | None = None, head: int | None = None,
               scale: float = 1.0) -> bytes:
    """The bytes of one download (called at click time)."""
    if fmt in DATA_FORMATS:
        if record is not None and _export is not None:
            return _export.data_bytes(_select(record, block, layer, head), fmt)
        if table is not None:
            return table_bytes(table, fmt)
        raise ValueError("no numbers to export")
    if _export is None:
        if fmt != "html":
            raise RuntimeError("viz.export is unavailable")
        return pio.to_html(fig, include_plotlyjs=True, full_html=True).encode("utf-8")
    return _export.figure_bytes(fig, fmt, scale=scale)


SHORT_TEXT = 40  # characters of the input kept in an exported figure's title


def titled_for_export(fig: go.Figure, record) -> go.Figure:
    """A copy of `fig` whose title also names the model and a short form of the text, so a
    file says what it shows once it has left the page (the page says it around the figure)."""
    if record is None:
        return fig
    from viz.style import safe_label

    model = record.meta.get("model") or ""
    text = str((record.meta.get("settings") or {}).get("text") or "")
    short = text if len(text) <= SHORT_TEXT else text[: SHORT_TEXT - 1] + "…"
    line = " · ".join(p for p in (safe_label(model), f"“{safe_label(short)}”" if short else "")
                      if p)
    if not line:
        return fig
    out = go.Figure(fig)
    title = out.layout.title.text if out.layout.title and out.layout.title.text else ""
    out.update_layout(title=dict(text=f"{title}<br><sup>{line}</sup>" if title else line,
                                 x=0.5, xanchor="center"))
    top = out.layout.margin.t if out.layout.margin and out.layout.margin.t is not None else 80
    out.update_layout(margin=dict(t=max(top, 90)))
    return out


def _deferred(fig, fmt, record, table, block, layer, head, scale) -> Callable[[], bytes]:
    def build() -> bytes:
        try:
            if fmt in FIGURE_FORMATS:
                return make_bytes(titled_for_export(fig, record), fmt, record, table, block,
                                  layer, head, scale)
            return make_bytes(fig, fmt, record, table, block, layer, head, scale)
        except Exception as exc:  # noqa: BLE001 - the file then says what went wrong
            return f"Attention Studio could not export {fmt}: {exc}\n".encode()

    return build


def download_menu(fig: go.Figure, record=None, key: str = "download", block: str | None = None,
                  layer: int | None = None, head: int | None = None,
                  table=None, name: str | None = None) -> None:
    """A "Download" popover under a figure.

    fig: the figure as shown. record: the engine AttentionRecord behind it (its maps give
    CSV/JSON/NPZ, narrowed to block/layer/head when given). table: numbers of a derived
    figure (metrics, rollout) when there is no record: a DataFrame, or a callable returning
    one (built at click time). key: unique per figure on a page.
    """
    has_data = record is not None or table is not None
    formats = list(FIGURE_FORMATS) + (list(DATA_FORMATS) if has_data else [])
    with st.popover(tr(DOWNLOAD_TEXT, "download"), icon=":material/download:", key=f"{key}_pop"):
        # required: clicking the chosen format keeps it chosen (it would un-choose it)
        fmt = st.segmented_control(tr(DOWNLOAD_TEXT, "format"), formats, default="png",
                                   key=f"{key}_fmt", format_func=str.upper,
                                   required=True) or "png"
        scale = 1.0
        disabled = False
        if fmt == "png":
            scale = float(st.select_slider(tr(DOWNLOAD_TEXT, "scale"), [1, 2, 3, 4], value=2,
                                           key=f"{key}_scale"))
        if fmt in IMAGE_FORMATS and not chromium_available():
            st.warning(tr(DOWNLOAD_TEXT, "no_chromium"))
            disabled = True
        stem = download_stem(name, record, block, layer, head)
        st.download_button(
            tr(DOWNLOAD_TEXT, "save", fmt=fmt.upper()),
            data=_deferred(fig, fmt, record, table, block, layer, head, scale),
            file_name=f"{stem}.{fmt}", mime=MIME[fmt], key=f"{key}_btn", on_click="ignore",
            disabled=disabled, icon=":material/download:",
        )
        st.caption(tr(DOWNLOAD_TEXT, "what"))


def _chart(fig: go.Figure, chart_key: str, **chart_kw):
    """`st.plotly_chart`; with timings on (shared/timing.py), also the steps "serialise"
    (the figure's JSON as Streamlit makes it, `pio.to_json(validate=False)`, with its size
    in bytes) and "figure to browser" (the chart call: Streamlit serialises again inside
    it, builds the message and queues it for the browser)."""
    if not timing.enabled():
        return st.plotly_chart(fig, key=chart_key, **chart_kw)
    # Measured apart because the chart call hides it; costs one extra serialisation, paid
    # only while timings are on (the benchmark reports it in its own column).
    with timing.timed("serialise", chart=chart_key) as step:
        size = len(pio.to_json(fig, validate=False).encode("utf-8"))
        step.extra["bytes"] = size
    with timing.timed("figure to browser", chart=chart_key, bytes=size):
        return st.plotly_chart(fig, key=chart_key, **chart_kw)


def figure_with_download(fig: go.Figure, chart_key: str, download_key: str, *,
                         record=None, block: str | None = None, layer: int | None = None,
                         head: int | None = None, table=None, name: str | None = None,
                         explanation: str | None = None, **chart_kw):
    """The figure (keyed `chart_key`), its "Download" control (`download_menu` keyed
    `download_key`, with the record or table behind it) under it, and `explanation` (a
    caption) beside it when given. Returns the chart's selection event (`on_select`)."""
    if explanation:
        left, right = st.columns([4, 1])
        with left:
            event = _chart(fig, chart_key, **chart_kw)
        with right:
            st.caption(explanation)
    else:
        event = _chart(fig, chart_key, **chart_kw)
    download_menu(fig, record, key=download_key, block=block, layer=layer, head=head,
                  table=table, name=name)
    return event
