"""Export: figures as PNG/SVG/PDF/HTML (`render`, with vector heatmap cells from `vector`),
attention numbers as CSV/JSON/NPZ (`data`) and ZIP bundles with a manifest (`bundle`).

Plain data in, bytes out: a caller that has an engine record passes it as AttentionData
(or any object with tokens, target_tokens, keys() and [key]); nothing here loads a model.
The headless command is `python -m cli.export`.

    from viz import export
    export.write(fig, "head.svg")
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from viz.export.bundle import (
    BUNDLE_FORMATS,
    TIDY_MAX_ROWS,
    build_file,
    export_bundle,
    regenerate_file,
    regeneration_request,
    versions,
)
from viz.export.data import (
    COLUMNS,
    DATA_FORMATS,
    AttentionData,
    data_bytes,
    npz_bytes,
    spreadsheet_safe,
    tidy_rows,
)
from viz.export.render import (
    CHROMIUM_HINT,
    FIGURE_FORMATS,
    IMAGE_FORMATS,
    ExportError,
    ExportUnavailable,
    chromium_available,
    figure_bytes,
    pdf_set_info,
    shutdown,
)

FORMATS = (*FIGURE_FORMATS, *DATA_FORMATS, "zip")


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




__all__ = [
    "AttentionData", "BUNDLE_FORMATS", "CHROMIUM_HINT", "COLUMNS", "DATA_FORMATS",
    "ExportError", "ExportUnavailable", "FIGURE_FORMATS", "FORMATS", "IMAGE_FORMATS",
    "TIDY_MAX_ROWS", "build_file", "chromium_available", "data_bytes", "export_bundle",
    "figure_bytes", "npz_bytes", "pdf_set_info", "regenerate_file", "regeneration_request",
    "shutdown", "spreadsheet_safe", "tidy_rows", "versions", "write",
]
