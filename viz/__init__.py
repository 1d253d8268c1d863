"""Figure builders and export for Attention Studio.

Pure functions: numpy arrays and token lists in, plotly.graph_objects.Figure out (no torch,
no Streamlit, no engine, never fig.show()). Maps follow docs/contract.md: float32
[heads, Tq, Tk].

- `viz.figures`: one module per kind of picture (heatmap, masks, model view, head view, …);
- `viz.export`: figure bytes (PNG/SVG/PDF/HTML), data files (CSV/JSON/NPZ) and bundles;
- `viz.style`, `viz.metrics`, `viz.aggregate`: the shared look, and numbers behind figures.

    import viz
    fig = viz.head_heatmap(rec["encoder.self.0"][3], rec.tokens)
    viz.export.write(fig, "head.svg")
"""

from viz import export
from viz.aggregate import mean_heads, rollout, rollout_layers
from viz.export.vector import vectorize
from viz.figures.head_view import head_view
from viz.figures.heatmap import curves_figure, head_heatmap, matrix_heatmap
from viz.figures.long_input import (
    LONG_INPUT,
    block_average,
    overview_figure,
    topk_figure,
    topk_per_row,
)
from viz.figures.masks import masks_figure
from viz.figures.metrics import metrics_figure
from viz.figures.model_view import model_view
from viz.figures.qk_view import qk_data, qk_view
from viz.metrics import METRICS, head_metrics
from viz.style import DEFAULT, Style, safe_label, safe_labels

__version__ = "0.1.0"

__all__ = [
    "DEFAULT", "LONG_INPUT", "METRICS", "Style", "block_average", "curves_figure", "export",
    "head_heatmap", "head_metrics", "head_view", "masks_figure", "matrix_heatmap",
    "mean_heads", "metrics_figure", "model_view", "overview_figure", "qk_data", "qk_view",
    "rollout", "rollout_layers", "safe_label", "safe_labels", "topk_figure", "topk_per_row",
    "vectorize",
]
