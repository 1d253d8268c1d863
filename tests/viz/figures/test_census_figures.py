"""The census figures: trace types, z shape and values, tick labels, gaps instead of NaN,
one legend entry and colour per type, escaped labels, and the distribution's points."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from engine.census import labels
from viz.figures.census import (
    TYPE_COLORS,
    TYPES,
    census_heatmap,
    distribution_figure,
    type_heatmap,
)
from viz.style import Style

XSS = "<img src=x onerror=alert(1)>"


def no_nan(fig: go.Figure) -> None:
    """Plotly's JSON has no NaN anywhere (json.loads would accept it: check the text)."""
    text = fig.to_json()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)


def test_types_and_colours_match_the_engine_labels():
    assert TYPES == labels.TYPES  # viz may not import the engine: the test ties them
    assert set(TYPE_COLORS) == set(TYPES) and len(set(TYPE_COLORS.values())) == len(TYPES)


def test_census_heatmap_z_ticks_hover_and_gaps():
    rng = np.random.default_rng(0)
    grid = rng.random((6, 12))
    grid[2, 3] = np.nan  # a head without a value is a gap
    spread = rng.random((6, 12)) / 10
    fig = census_heatmap(grid, "entropy (nats)", spread=spread, title="t",
                         style=Style(precision=4))
    (heat,) = fig.data
    assert heat.type == "heatmap"
    z = np.array(heat.z, dtype=object)
    assert z.shape == (6, 12) and z[2, 3] is None
    finite = np.array([[np.nan if v is None else v for v in row] for row in heat.z])
    np.testing.assert_array_equal(np.isnan(finite), np.isnan(grid))
    np.testing.assert_allclose(finite[~np.isnan(grid)], grid[~np.isnan(grid)], rtol=0, atol=0)
    np.testing.assert_allclose(np.array(heat.customdata, dtype=float), spread)
    assert list(fig.layout.xaxis.tickvals) == list(range(12))
    assert list(fig.layout.yaxis.tickvals) == list(range(6))
    assert tuple(fig.layout.yaxis.range) == (5.5, -0.5)  # layer 0 on top
    assert "± %{customdata:.4f}" in heat.hovertemplate
    no_nan(fig)


def test_census_heatmap_rejects_what_is_not_a_grid():
    with pytest.raises(ValueError, match="layers, heads"):
        census_heatmap(np.zeros(5), "x")
    with pytest.raises(ValueError, match="spread"):
        census_heatmap(np.zeros((2, 3)), "x", spread=np.zeros((3, 2)))


def test_type_heatmap_codes_colours_and_legend():
    grid = [["induction", "sink", "broad"], ["mixed", None, "previous-token"]]
    names = {"sink": "汇聚(sink)", "mixed": XSS}
    fig = type_heatmap(grid, names=names, title="types")
    heat, *legend = fig.data
    assert heat.type == "heatmap" and all(t.type == "scatter" for t in legend)
    code = np.array(heat.z, dtype=object)
    assert code.shape == (2, 3) and code[1, 1] is None
    assert [TYPES[c] for c in (code[0, 0], code[0, 1], code[0, 2], code[1, 0], code[1, 2])] \
        == ["induction", "sink", "broad", "mixed", "previous-token"]
    # code i sits mid-band (i + 0.5) / n of the scale, whose two stops are its type's colour
    scale, n = heat.colorscale, len(TYPES)
    for i, t in enumerate(TYPES):
        (p0, c0), (p1, c1) = scale[2 * i], scale[2 * i + 1]
        assert (p0, p1) == pytest.approx((i / n, (i + 1) / n)) and c0 == c1 == TYPE_COLORS[t]
        assert (i - heat.zmin) / (heat.zmax - heat.zmin) == pytest.approx((i + 0.5) / n)
    assert (heat.zmin, heat.zmax) == (-0.5, len(TYPES) - 0.5) and heat.showscale is False
    # one legend entry per type, in label order, with its colour; names shown escaped
    assert [t.marker.color for t in legend] == [TYPE_COLORS[t] for t in TYPES]
    assert legend[TYPES.index("sink")].name == "汇聚(sink)"
    assert "<" not in legend[TYPES.index("mixed")].name
    assert heat.text[1][0] == "&lt;img src=x onerror=alert(1)&gt;"
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2]
    no_nan(fig)


def test_type_heatmap_refuses_unknown_types_and_ragged_grids():
    with pytest.raises(ValueError, match="unknown head types"):
        type_heatmap([["sinky"]])
    with pytest.raises(ValueError, match="grid"):
        type_heatmap([["sink", "self"], ["self"]])


def test_distribution_has_every_finite_text_and_marks_the_best():
    values = np.array([0.1, np.nan, 0.7, 0.3, 0.9])
    ids = np.array([10, 11, 12, 13, 14])
    fig = distribution_figure(values, "self share", text_ids=ids, marked=14,
                              count_title="texts")
    box, hist = fig.data
    assert (box.type, hist.type) == ("box", "histogram")
    np.testing.assert_allclose(box.x, [0.1, 0.7, 0.3, 0.9])
    assert list(box.customdata) == [10, 12, 13, 14]
    np.testing.assert_allclose(hist.x, box.x)
    assert fig.layout.shapes and all(s.x0 == s.x1 == 0.9 for s in fig.layout.shapes)
    assert fig.layout.xaxis2.title.text == "self share"
    no_nan(fig)
    with pytest.raises(ValueError, match="text ids"):
        distribution_figure(values, "x", text_ids=ids[:2])


def test_default_words_go_through_the_style():
    """Without explicit titles, the figures' words come from Style.say (the app's 中文)."""
    style = Style(words=(("head", "头"), ("layer", "层"), ("type", "类型"), ("texts", "文本数")))
    fig = census_heatmap(np.ones((2, 2)), "x", style=style)
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("头", "层")
    fig = type_heatmap([["sink"]], style=style)
    assert fig.layout.legend.title.text == "类型" and fig.layout.xaxis.title.text == "头"
    fig = distribution_figure([0.5, 0.6], "x", style=style)
    assert fig.layout.yaxis2.title.text == "文本数"
