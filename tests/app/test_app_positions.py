"""AppTest of the Positions page: every figure's data equal engine.core.positions (and MiniLM's
learned position table) for the settings on the page.

The page runs through app.py (switch_page) when every page app.py names exists, else under
a harness with the same sidebar. Its tabs are lazy: a test opens one by setting the tabs'
state ("pos_tab") to the tab's label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import engine
from engine.core.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    rope_cos_sin,
    sinusoidal_table,
)
from engine.models.registry import MODELS
from tests import app_helpers
from viz.figures.positions import similarity

ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/positions/page.py"
TAB = {"sin": "Sinusoidal", "learned": "Learned (MiniLM)", "rope": "RoPE", "alibi": "ALiBi"}


def open_page(page: str = PAGE, timeout: float = 180) -> AppTest:
    return app_helpers.open_page(page, timeout)


def z(fig, i: int = 0) -> np.ndarray:
    return np.asarray([t for t in fig.data if t.type == "heatmap"][i].z, dtype=np.float64)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def open_tab(at: AppTest, name: str) -> AppTest:
    at.session_state["pos_tab"] = TAB[name]
    return at.run()


@pytest.fixture
def page() -> AppTest:
    at = open_page()
    no_exception(at)
    return at


def test_sinusoidal_views_equal_the_engine_table(page):
    table = sinusoidal_table(64, 64, 10_000.0).numpy()
    np.testing.assert_allclose(z(app_helpers.figure(page, "fig_pos_sinusoidal")), table, atol=1e-7)
    curves = app_helpers.figure(page, "fig_pos_curves")
    dims = page.multiselect(key="pos_dims_64").value
    assert len(curves.data) == len(dims) == 5
    for trace, d in zip(curves.data, dims, strict=True):
        np.testing.assert_allclose(np.asarray(trace.y, dtype=np.float64), table[:, d],
                                   atol=1e-7)
    np.testing.assert_allclose(z(app_helpers.figure(page, "fig_pos_similarity")),
                               similarity(table, "dot"), rtol=1e-5, atol=1e-5)
    page.radio(key="pos_sim").set_value("cosine").run()
    np.testing.assert_allclose(z(app_helpers.figure(page, "fig_pos_similarity")),
                               similarity(table, "cosine"), atol=1e-6)
    # independent check of the cosine similarity on the diagonal
    assert np.allclose(np.diag(z(app_helpers.figure(page, "fig_pos_similarity"))), 1.0, atol=1e-6)


def test_d_model_length_and_base_are_editable(page):
    page.number_input(key="pos_d_model").set_value(32)
    page.number_input(key="pos_length").set_value(20)
    page.number_input(key="pos_base").set_value(100.0)
    page.run()
    no_exception(page)
    np.testing.assert_allclose(z(app_helpers.figure(page, "fig_pos_sinusoidal")),
                               sinusoidal_table(20, 32, 100.0).numpy(), atol=1e-7)
    page.multiselect(key="pos_dims_32").set_value([3, 31]).run()
    curves = app_helpers.figure(page, "fig_pos_curves")
    assert [t.name for t in curves.data] == ["dim 3", "dim 31"]


def test_learned_positions_of_minilm(page):
    if not MODELS["minilm"].is_installed():
        pytest.skip("minilm is not installed")
    open_tab(page, "learned")
    no_exception(page)
    weight = engine.load("minilm", "auto").transformer.encoder.embed.positions.weight
    table = weight.detach().float().numpy()[:64]
    np.testing.assert_allclose(z(app_helpers.figure(page, "fig_pos_learned")), table, atol=1e-7)
    np.testing.assert_allclose(z(app_helpers.figure(page, "fig_pos_learned_similarity")),
                               similarity(table, "cosine"), atol=1e-5)


def test_rope_rotation_and_relative_distance(page):
    open_tab(page, "rope")
    no_exception(page)
    cos, sin = (a.numpy() for a in rope_cos_sin(torch.arange(64), 64, 10_000.0))
    circle = app_helpers.figure(page, "fig_pos_rope_circle")
    pairs = page.multiselect(key="pos_rope_pairs_64").value
    assert pairs == [0, 8, 31]
    arrows = [t for t in circle.data if getattr(t, "name", "").startswith("position")]
    assert len(arrows) == len(pairs) * 6
    for i, trace in enumerate(arrows):
        pair, pos = pairs[i // 6], i % 6
        assert trace.x[1] == pytest.approx(cos[pos, pair], abs=1e-6)
        assert trace.y[1] == pytest.approx(sin[pos, pair], abs=1e-6)
    # q·k of a rotated q and k, computed here from engine.core.positions with the same seed
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(64, generator=g), torch.randn(64, generator=g)
    c, s = rope_cos_sin(torch.arange(64), 64, 10_000.0)
    want = (apply_rope(q.expand(1, 1, 64, 64), c, s)[0, 0]
            @ apply_rope(k.expand(1, 1, 64, 64), c, s)[0, 0].T).numpy()
    np.testing.assert_allclose(z(app_helpers.figure(page, "fig_pos_rope_matrix")), want, rtol=1e-5,
                               atol=1e-5)
    curves = app_helpers.figure(page, "fig_pos_rope_distance")
    by_distance: dict[int, list[float]] = {}
    for trace in curves.data:
        for x, y in zip(trace.x, trace.y, strict=True):
            by_distance.setdefault(int(x), []).append(float(y))
    assert len(curves.data) == 3
    assert max(np.ptp(v) for v in by_distance.values()) < 1e-3  # only n − m matters
    page.number_input(key="pos_rope_seed").set_value(7).run()
    no_exception(page)
    assert not np.allclose(z(app_helpers.figure(page, "fig_pos_rope_matrix")), want)


def test_alibi_bias_per_head(page):
    open_tab(page, "alibi")
    no_exception(page)
    fig = app_helpers.figure(page, "fig_pos_alibi")
    bias = alibi_bias(8, 64, 64).numpy()
    for h in range(8):
        np.testing.assert_allclose(z(fig, h), bias[h], atol=1e-7)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "head 1: slope 1/2" and titles[-1] == "head 8: slope 1/256"
    slopes = page.dataframe[0].value
    np.testing.assert_allclose(slopes.iloc[:, 1].to_numpy(), alibi_slopes(8).numpy())
    np.testing.assert_allclose(slopes.iloc[:, 2].to_numpy(), 2.0 ** np.arange(1, 9))
    page.number_input(key="pos_alibi_heads").set_value(6)
    page.toggle(key="pos_alibi_causal").set_value(True)
    page.run()
    no_exception(page)
    fig = app_helpers.figure(page, "fig_pos_alibi")
    bias = alibi_bias(6, 64, 64).numpy()
    upper = np.triu(np.ones((64, 64), dtype=bool), 1)
    for h in range(6):
        got = z(fig, h)
        assert np.isnan(got[upper]).all()
        np.testing.assert_allclose(got[~upper], bias[h][~upper], atol=1e-7)


def test_language_switch_keeps_the_open_tab(page):
    open_tab(page, "rope")
    page.radio(key="lang").set_value("zh").run()
    no_exception(page)
    assert page.title[0].value.startswith("位置编码")
    app_helpers.figure(page, "fig_pos_rope_matrix")  # still on the RoPE tab


@pytest.mark.parametrize("d_model,length,base", [(2, 2, 1.0001), (7, 3, 2.0), (1024, 512, 1e8)])
def test_extreme_settings_give_no_exception(page, d_model, length, base):
    page.number_input(key="pos_d_model").set_value(d_model)
    page.number_input(key="pos_length").set_value(length)
    page.number_input(key="pos_base").set_value(base)
    page.run()
    no_exception(page)
    for name in ("rope", "alibi", "learned"):
        open_tab(page, name)
        no_exception(page)
        if name == "rope" and d_model % 2:
            assert any("even" in i.value for i in page.info)
