"""Contributions figures (viz/figures/contributions.py): trace types, z shapes, tick labels
equal to the labels, no NaN, hover carrying all three numbers of the cell, linked axes, the
long-input views, flow across layers and the logit lens."""

from __future__ import annotations

import numpy as np
import pytest

from viz.figures.contributions import (
    contributions_figure,
    contributions_overview,
    contributions_topk,
    flow_across_figure,
    logit_lens_figure,
)
from viz.figures.long_input import block_average
from viz.style import safe_label, safe_labels

XSS = "<img src=x onerror=alert(1)>"
LABELS = ["[CLS]", "the", "cat", "the", XSS, "&", "我 1/2", "[SEP]"]
RAW = ["[CLS]", "the", "cat", "the", XSS, "&", "æĪ", "[SEP]"]


def maps(tq: int, tk: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random weights (rows sum to 1), a norm map (weights × a per-key size) and a flow map
    [Tq, Tk + 1] (rows sum to 1)."""
    rng = np.random.default_rng(seed)
    w = rng.random((tq, tk)).astype(np.float32)
    w /= w.sum(1, keepdims=True)
    norm = (w * rng.random(tk)[None] * 3).astype(np.float32)
    flow = rng.random((tq, tk + 1)).astype(np.float32)
    flow /= flow.sum(1, keepdims=True)
    return w, norm, flow


def cell_numbers(trace, i: int, j: int) -> np.ndarray:
    return np.asarray(trace.customdata)[i, j]


def test_three_heatmaps_and_the_residual_column():
    t = len(LABELS)
    w, norm, flow = maps(t, t)
    fig = contributions_figure(w, norm, flow, LABELS, q_tokens=RAW, title="L3 · head 5")
    assert [tr.type for tr in fig.data] == ["heatmap"] * 4
    for tr, want in zip(fig.data[:3], (w, norm, flow[:, :t]), strict=True):
        z = np.asarray(tr.z)
        assert z.shape == (t, t) and z.dtype == np.float32 and not np.isnan(z).any()
        np.testing.assert_array_equal(z, want)
        assert list(tr.x) == list(range(t)) and list(tr.y) == list(range(t))
    res = np.asarray(fig.data[3].z)
    assert res.shape == (t, 1)
    np.testing.assert_array_equal(res[:, 0], flow[:, t])
    # tick labels are the readable labels, escaped; the repeated 'the' keeps its own column
    for ax in ("xaxis", "xaxis2", "xaxis3"):
        assert list(fig.layout[ax].ticktext) == safe_labels(LABELS), ax
    assert list(fig.layout.yaxis.ticktext) == safe_labels(LABELS)
    assert list(fig.layout.xaxis4.ticktext) == ["residual"]


def test_hover_carries_all_three_numbers_and_the_raw_tokens():
    t = len(LABELS)
    w, norm, flow = maps(t, t, seed=1)
    fig = contributions_figure(w, norm, flow, LABELS, q_tokens=RAW, k_tokens=RAW)
    for tr in fig.data[:3]:
        for n in range(3):
            assert f"%{{customdata[{n}]" in tr.hovertemplate
        assert "%{text}" in tr.hovertemplate
        np.testing.assert_array_equal(cell_numbers(tr, 2, 4), [w[2, 4], norm[2, 4], flow[2, 4]])
        np.testing.assert_array_equal(cell_numbers(tr, 6, 0), [w[6, 0], norm[6, 0], flow[6, 0]])
        assert tr.text[6][4] == f"{safe_label('æĪ')} → {safe_label(XSS)}"  # raw, escaped
    assert XSS not in str(fig.to_json())  # nothing reaches the page as markup


def test_linked_axes_and_separate_colour_scales():
    w, norm, flow = maps(5, 5)
    fig = contributions_figure(w, norm, flow, [str(i) for i in range(5)])
    lay = fig.layout
    assert lay.xaxis2.matches == "x" and lay.xaxis3.matches == "x"
    assert lay.yaxis2.matches == "y" and lay.yaxis3.matches == "y" and lay.yaxis4.matches == "y"
    assert lay.yaxis.range[0] > lay.yaxis.range[1]  # query 0 at the top
    assert [tr.coloraxis for tr in fig.data] == ["coloraxis", "coloraxis2", "coloraxis3",
                                                 "coloraxis4"]
    assert lay.coloraxis2.cmax == pytest.approx(float(norm.max()))


def test_cross_attention_shapes_and_a_window():
    tq, tk = 6, 9
    w, norm, flow = maps(tq, tk)
    q_lab, k_lab = [f"t{i}" for i in range(tq)], [f"s{j}" for j in range(tk)]
    fig = contributions_figure(w, norm, flow, q_lab, k_lab)
    assert np.asarray(fig.data[2].z).shape == (tq, tk)
    assert list(fig.layout.xaxis.ticktext) == k_lab and list(fig.layout.yaxis.ticktext) == q_lab
    win = contributions_figure(w, norm, flow, q_lab, k_lab, q_range=(2, 5), k_range=(3, 8))
    np.testing.assert_array_equal(np.asarray(win.data[1].z), norm[2:5, 3:8])
    np.testing.assert_array_equal(np.asarray(win.data[3].z)[:, 0], flow[2:5, -1])
    assert list(win.data[0].x) == [3, 4, 5, 6, 7] and list(win.data[0].y) == [2, 3, 4]
    assert list(win.layout.xaxis.ticktext) == k_lab[3:8]
    np.testing.assert_array_equal(cell_numbers(win.data[0], 0, 0), [w[2, 3], norm[2, 3],
                                                                    flow[2, 3]])


def test_long_input_overview_and_topk():
    t = 300
    w, norm, flow = maps(t, t)
    labels = [f"w{i}" for i in range(t)]
    fig = contributions_overview(w, norm, flow, labels)
    b = 3  # ceil(300 / 128)
    assert [tr.type for tr in fig.data] == ["heatmap"] * 4
    np.testing.assert_allclose(np.asarray(fig.data[1].z), block_average(norm, b), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fig.data[2].z), block_average(flow[:, :t], b),
                               rtol=1e-6)
    assert np.asarray(fig.data[0].z).shape == (100, 100)
    assert np.asarray(fig.data[3].z).shape == (100, 1)
    assert all(not np.isnan(np.asarray(tr.z)).any() for tr in fig.data)
    for n in range(3):
        assert f"customdata[{n}]" in fig.data[0].hovertemplate
    top = contributions_topk(w, norm, flow, labels, k=4)
    assert [tr.type for tr in top.data] == ["scatter"] * 3 + ["heatmap"]
    pts = top.data[1]  # the norm panel: each query's 4 largest norm cells
    assert len(pts.x) == t * 4
    ys, xs = np.asarray(pts.y), np.asarray(pts.x)
    np.testing.assert_array_equal(np.asarray(pts.marker.color), norm[ys, xs])
    assert set(xs[ys == 7]) == set(np.argsort(-norm[7])[:4])
    np.testing.assert_array_equal(np.asarray(pts.customdata),
                                  np.stack([w[ys, xs], norm[ys, xs], flow[ys, xs]], 1))


def test_shapes_that_disagree_are_refused():
    w, norm, flow = maps(4, 4)
    with pytest.raises(ValueError, match="Tk \\+ 1"):
        contributions_figure(w, norm, flow[:, :4], list("abcd"))
    with pytest.raises(ValueError, match="labels"):
        contributions_figure(w, norm, flow, list("abc"))


def test_flow_across_bars():
    shares = np.asarray([0.1, 0.5, 0.0, 0.4], np.float32)
    fig = flow_across_figure(shares, ["a", XSS, "c", "d"], k_tokens=["A", XSS, "C", "D"],
                             position=3, title="to d")
    (bar,) = fig.data
    assert bar.type == "bar"
    np.testing.assert_array_equal(np.asarray(bar.y), shares)
    assert list(fig.layout.xaxis.ticktext) == safe_labels(["a", XSS, "c", "d"])
    assert list(bar.customdata) == safe_labels(["A", XSS, "C", "D"])
    assert list(bar.marker.line.width) == [0, 0, 0, 2]  # the output position outlined


def test_logit_lens_table():
    rows = [[("Ġthe", 0.5), ("Ċ", 0.25)], [("Ġcat", 0.75), (XSS, 0.125)],
            [("Ġsat", 0.9), ("Ġon", 0.05)]]
    labels = [[" the", "\\n"], [" cat", XSS], [" sat", " on"]]
    fig = logit_lens_figure(rows, labels, layer_names=["0", "1", "2"])
    (heat,) = fig.data
    z = np.asarray(heat.z)
    assert heat.type == "heatmap" and z.shape == (3, 2) and not np.isnan(z).any()
    np.testing.assert_allclose(z, [[0.5, 0.25], [0.75, 0.125], [0.9, 0.05]], rtol=1e-6)
    assert heat.text[1][1] == safe_label(XSS) and heat.customdata[0][0] == "Ġthe"
    assert list(fig.layout.yaxis.ticktext) == ["0", "1", "2"]
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # layer 0 on top
    with pytest.raises(ValueError):
        logit_lens_figure([[("a", 1.0)], []])
