"""Figure builders: trace types, z shapes, tick labels equal to tokens, no NaN, safe labels."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

import viz
from viz.figures.head_view import select_lines
from viz.figures.heatmap import head_heatmap, matrix_heatmap
from viz.figures.masks import masks_figure
from viz.style import Style, safe_label

XSS = "<img src=x onerror=alert(1)>"


def softmax_maps(h: int, t: int, seed: int = 0, causal: bool = False) -> np.ndarray:
    """Random attention maps [h, t, t] whose rows sum to 1."""
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((h, t, t)) * 2
    if causal:
        s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    return (a / a.sum(-1, keepdims=True)).astype(np.float32)


TOKENS = ["[CLS]", "the", "cat", "the", XSS, "&", "$x$", "\n", "[SEP]"]


def test_safe_label_escapes_markup():
    assert safe_label(XSS) == "&lt;img src=x onerror=alert(1)&gt;"
    assert safe_label("a & b") == "a &amp; b"
    assert safe_label("$x$") == "&#36;x&#36;"  # no TeX under MathJax
    assert safe_label("\n") == "\\n" and safe_label("") == "∅"
    assert "<" not in safe_label("<b>bold</b>") and ">" not in safe_label("<br>")


def test_head_heatmap_contract():
    a = softmax_maps(1, len(TOKENS))[0]
    fig = head_heatmap(a, TOKENS, title="layer 0 head 0")
    assert isinstance(fig, go.Figure)
    (tr,) = fig.data
    assert tr.type == "heatmap"
    z = np.asarray(tr.z)
    assert z.shape == (len(TOKENS), len(TOKENS)) and z.dtype == np.float32
    assert not np.isnan(z).any()
    np.testing.assert_array_equal(z, a)
    # every position its own row/column, even for the repeated "the"
    assert list(tr.x) == list(range(len(TOKENS))) and list(tr.y) == list(range(len(TOKENS)))
    assert list(fig.layout.xaxis.ticktext) == [safe_label(t) for t in TOKENS]
    assert list(fig.layout.yaxis.ticktext) == [safe_label(t) for t in TOKENS]
    assert list(fig.layout.xaxis.tickvals) == list(range(len(TOKENS)))
    # hover carries query and key tokens, escaped
    assert tr.customdata[4, 1, 0] == safe_label(XSS) and tr.customdata[1, 4, 1] == safe_label(XSS)
    assert "%{customdata[0]}" in tr.hovertemplate and "%{z" in tr.hovertemplate
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # query 0 at the top


def test_no_raw_markup_anywhere_in_figure_json():
    a = softmax_maps(3, len(TOKENS))
    figs = [
        head_heatmap(a[0], TOKENS),
        viz.head_view(a, TOKENS, heads=[0, 1], query=4),
        viz.qk_view(np.ones((3, len(TOKENS), 4)), np.ones((3, len(TOKENS), 4)), 4, TOKENS),
        viz.topk_figure(a[0], TOKENS, k=2),
        matrix_heatmap(a[0], x_labels=TOKENS, y_labels=TOKENS),
    ]
    for fig in figs:
        text = fig.to_json()
        assert XSS not in text, type(fig)
        assert "onerror" not in text or "&lt;img" in text


def test_figure_data_is_typed_arrays():
    fig = head_heatmap(softmax_maps(1, 40)[0], [f"t{i}" for i in range(40)])
    z = json.loads(fig.to_json())["data"][0]["z"]
    assert isinstance(z, dict) and z["dtype"] == "f4"  # plotly 7: base64 float32, not lists


def test_token_count_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="tokens"):
        head_heatmap(softmax_maps(1, 5)[0], ["a", "b"])


def test_style_palette_font_transparent_title():
    style = Style(palette="viridis", font_family="Liberation Serif", font_size=9,
                  transparent=True, show_title=False)
    fig = head_heatmap(softmax_maps(1, 4)[0], list("abcd"), title="t", style=style)
    assert fig.layout.font.family == "Liberation Serif" and fig.layout.font.size == 9
    assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)"
    assert not (fig.layout.title and fig.layout.title.text)
    assert fig.data[0].colorscale[0][1].lower() in ("#440154", "rgb(68,1,84)")


def test_model_view_grid_shared_scale():
    layers = [softmax_maps(12, 16, seed=i) for i in range(6)]
    fig = viz.model_view(layers)
    assert len(fig.data) == 72 and all(t.type == "heatmap" for t in fig.data)
    assert {t.coloraxis for t in fig.data} == {"coloraxis"}
    assert fig.layout.coloraxis.cmax == pytest.approx(max(a.max() for a in layers))
    assert {t.xaxis for t in fig.data} == {"x"} | {f"x{i}" for i in range(2, 13)}
    assert {t.yaxis for t in fig.data} == {"y"} | {f"y{i}" for i in range(2, 7)}
    for t in fig.data:
        assert np.asarray(t.z).shape == (16, 16) and not np.isnan(np.asarray(t.z)).any()


def test_model_view_long_input_stays_light():
    layers = [softmax_maps(4, 512, seed=i) for i in range(18)]
    fig = viz.model_view(layers)
    assert np.asarray(fig.data[0].z).shape == (64, 64)
    assert len(fig.to_json()) < 2_500_000


def test_model_view_per_head_range():
    fig = viz.model_view([softmax_maps(2, 8)], style=Style(shared_range=False))
    assert all(np.asarray(t.z).max() == pytest.approx(1.0) for t in fig.data)


def test_head_view_lines():
    a = softmax_maps(3, 6)
    fig = viz.head_view(a, list("abcdef"), heads=[0, 2], query=1, min_weight=0.0)
    lines = [t for t in fig.data if t.mode == "lines" and t.x is not None and len(t.x) > 1]
    n_segments = sum(np.isnan(np.asarray(t.x, dtype=float)).sum() for t in lines)
    assert n_segments == 2 * 6  # every key of the query, for both heads
    widths = {t.line.width for t in lines}
    assert len(widths) > 1  # thickness by weight
    text = [t for t in fig.data if t.mode == "text"]
    assert list(text[1].text) == list("abcdef")


def test_head_view_select_lines_heaviest_first():
    a = softmax_maps(1, 10)[0]
    q, k, w = select_lines(a, None, min_weight=0.0, max_lines=5)
    assert len(w) == 5 and np.all(np.diff(w) <= 0)
    assert w[0] == a.max()


def test_qk_view_numbers():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 5, 8))
    d = viz.qk_data(q, k, 3, head=1, top_keys=2, top_dims=4)
    expected = k[1] @ q[1, 3] / np.sqrt(8)
    np.testing.assert_allclose(d["scores"], expected, rtol=1e-5)
    np.testing.assert_allclose(d["weights"].sum(), 1.0, rtol=1e-6)
    assert d["keys"][0] == np.argmax(expected)
    np.testing.assert_allclose(
        d["contrib"], (q[1, 3] * k[1, d["keys"]])[:, d["dims"]], rtol=1e-5)
    fig = viz.qk_view(q, k, 3, list("abcde"), head=1)
    assert [t.type for t in fig.data] == ["bar", "bar", "heatmap"]


def test_qk_view_marks_masked_keys():
    q = np.ones((4, 2))
    scores = np.array([[0.0, -np.inf, -np.inf, -np.inf], [1, 2, 3, -np.inf]] * 2,
                      dtype=np.float32)[:4]
    fig = viz.qk_view(q, q, 1, list("abcd"), scores=scores)
    marks = [t for t in fig.data if t.type == "scatter"]
    assert marks and list(marks[0].x) == [3] and "−∞" in marks[0].text


def test_masks_figure_marks_neg_inf():
    t = 6
    mask = np.tril(np.ones((t, t), bool))
    rng = np.random.default_rng(0)
    scores = np.where(mask, rng.standard_normal((t, t)), -np.inf).astype(np.float32)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    fig = masks_figure(mask, scores, w, list("abcdef"))
    heat = [tr for tr in fig.data if tr.type == "heatmap"]
    assert len(heat) == 4  # mask, scores, -inf overlay, weights
    overlay = np.asarray(heat[2].z)
    np.testing.assert_array_equal(np.isfinite(overlay), ~mask)
    assert "−∞" in heat[2].hovertemplate
    crosses = [tr for tr in fig.data if tr.type == "scatter"]
    assert len(crosses[0].x) == (~mask).sum()


def test_matrix_heatmap_and_curves():
    z = np.sin(np.arange(20, dtype=np.float32))[:, None] * np.ones((1, 8), np.float32)
    fig = matrix_heatmap(z, x_title="dim", y_title="position", diverging=True)
    assert fig.data[0].zmid == 0 and np.asarray(fig.data[0].z).shape == (20, 8)
    fig = viz.curves_figure({"a": np.arange(5), "<b>": np.ones(5)})
    assert [t.name for t in fig.data] == ["a", "&lt;b&gt;"]


def test_long_input_overview_and_topk():
    a = softmax_maps(1, 2048, causal=True)[0]
    fig = head_heatmap(a, [f"t{i}" for i in range(2048)])
    z = np.asarray(fig.data[0].z)
    assert z.shape == (128, 128) and not np.isnan(z).any()
    # blocks reduce by max by default: the first query's 1.0 on itself survives its block
    np.testing.assert_allclose(z[0, 0], a[:16, :16].max(), rtol=1e-6)
    assert z[0, 0] == 1.0 and "128 × 128 blocks of 16 tokens (max)" in fig.layout.title.text
    assert len(fig.to_json()) < 300_000
    z = np.asarray(viz.overview_figure(a, [f"t{i}" for i in range(2048)], how="mean").data[0].z)
    np.testing.assert_allclose(z[0, 0], a[:16, :16].mean(), rtol=1e-5)
    fig = viz.topk_figure(a, [f"t{i}" for i in range(2048)], k=4)
    assert len(fig.data[0].x) == 2048 * 4 and len(fig.to_json()) < 300_000


def test_metrics_figure():
    rows = viz.head_metrics({f"decoder.self.{i}": softmax_maps(4, 8, i) for i in range(3)})
    fig = viz.metrics_figure(rows, "prev_token")
    z = np.asarray(fig.data[0].z)
    assert fig.data[0].type == "heatmap" and z.shape == (3, 4) and not np.isnan(z).any()
    with pytest.raises(ValueError, match="unknown metric"):
        viz.metrics_figure(rows, "nope")


def test_viz_imports_neither_torch_nor_streamlit_nor_kaleido():
    import subprocess
    import sys

    code = ("import sys, viz, viz.export; "
            "bad = {'torch', 'streamlit', 'kaleido', 'engine'} & set(sys.modules); "
            "assert not bad, bad")
    root = __import__("pathlib").Path(__file__).resolve().parents[3]
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert res.returncode == 0, res.stderr
