"""Figure builders and export for Attention Studio.

Pure functions: numpy arrays and token lists in, plotly.graph_objects.Figure out (no torch,
no Streamlit, never fig.show()). Maps follow docs/contract.md: float32 [heads, Tq, Tk].

    import viz
    fig = viz.head_heatmap(rec["encoder.self.0"][3], rec.tokens)
    viz.export.write(fig, "head.svg")
"""

from viz import export
from viz.aggregate import mean_heads, rollout, rollout_layers
from viz.head_view import head_view
from viz.heatmap import curves_figure, head_heatmap, masks_figure, matrix_heatmap
from viz.long_input import (
    LONG_INPUT,
    block_average,
    overview_figure,
    topk_figure,
    topk_per_row,
)
from viz.metrics import METRICS, head_metrics, metrics_figure
from viz.model_view import model_view
from viz.qk_view import qk_data, qk_view
from viz.style import DEFAULT, Style, safe_label, safe_labels
from viz.vector import vectorize

__version__ = "0.1.0"

__all__ = [
    "DEFAULT", "LONG_INPUT", "METRICS", "Style", "block_average", "curves_figure", "export",
    "head_heatmap", "head_metrics", "head_view", "masks_figure", "matrix_heatmap",
    "mean_heads", "metrics_figure", "model_view", "overview_figure", "qk_data", "qk_view",
    "rollout", "rollout_layers", "safe_label", "safe_labels", "topk_figure", "topk_per_row",
    "vectorize",
]
