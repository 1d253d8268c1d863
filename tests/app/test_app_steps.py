"""AppTest of the Step-by-step page: its tables and figures equal engine.lessons.worked_example.

The page runs through app.py (st.navigation + switch_page) when every page app.py names
exists; while some are still being written it runs under a harness that builds the same
sidebar and navigates to this one page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.lessons.worked_example import worked_example
from tests import app_helpers
from viz.figures.steps import fmt

ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/steps/page.py"


def open_page(page: str = PAGE, timeout: float = 120) -> AppTest:
    return app_helpers.open_page(page, timeout)


def table(at: AppTest, key: str):
    """The DataFrame inside the keyed container `key`."""
    return app_helpers.keyed(at, key).dataframe[0].value


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture(scope="module")
def page() -> AppTest:
    return open_page()


def test_default_tables_equal_the_worked_example(page):
    no_exception(page)
    ex = worked_example()
    for key, name in (("steps_q", "queries"), ("steps_k", "keys"), ("steps_v", "values"),
                      ("steps_scores", "scores"), ("steps_weights", "weights"),
                      ("steps_outputs", "outputs"), ("steps_seed_weights", "seed_rounded_weights"),
                      ("steps_seed_outputs", "seed_outputs"),
                      ("steps_difference", "seed_difference")):
        np.testing.assert_allclose(table(page, key).to_numpy(), ex[name].numpy(), rtol=0,
                                   atol=1e-12, err_msg=key)
    # the seed's printed numbers show as such
    assert table(page, "steps_scores").to_numpy().tolist() == [[2, 4, 4], [4, 16, 12],
                                                              [4, 12, 10]]
    np.testing.assert_allclose(table(page, "steps_seed_weighted").to_numpy(),
                               [[0, 0, 0], [1, 4, 0], [1, 3, 1.5]], atol=1e-12)
    mh = ex["multi_head"]
    np.testing.assert_allclose(table(page, "steps_mh_outputs").to_numpy(), mh["outputs"].numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(table(page, "steps_mh_concat").to_numpy(), mh["concat"].numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(table(page, "steps_mh_head_queries_1").to_numpy(),
                               mh["head_queries"][1].numpy(), atol=1e-12)


def test_default_figures_equal_the_worked_example(page):
    ex = worked_example()
    fig = app_helpers.figure(page, "fig_steps_weights")
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=np.float64), ex["weights"].numpy(),
                               rtol=1e-6)
    # cell text at the sidebar's default precision (3 significant digits)
    assert fig.data[0].text[0][0] == "0.0634" and fig.data[0].text[1][0] == "6.03e-06"
    heads = app_helpers.figure(page, "fig_steps_heads")
    for h in range(2):
        np.testing.assert_allclose(np.asarray(heads.data[h].z, dtype=np.float64),
                                   ex["multi_head"]["head_weights"][h].numpy(), rtol=1e-6)
    compare = app_helpers.figure(page, "fig_steps_compare")
    bars = [np.asarray(t.y, dtype=np.float64) for t in compare.data]
    np.testing.assert_allclose(bars[0], ex["outputs"][0].numpy())
    np.testing.assert_allclose(bars[1], ex["seed_outputs"][0].numpy())


def test_scaling_toggle_changes_the_softmax():
    at = open_page()
    at.toggle(key="steps_scale").set_value(True).run()
    no_exception(at)
    ex = worked_example(scale=True)
    np.testing.assert_allclose(table(at, "steps_scaled").to_numpy(), ex["scaled_scores"].numpy())
    np.testing.assert_allclose(table(at, "steps_weights").to_numpy(), ex["weights"].numpy())
    np.testing.assert_allclose(table(at, "steps_outputs").to_numpy(), ex["outputs"].numpy())
    # the seed's rounded path belongs to the unscaled example: the page says so instead
    assert any("scaling" in i.value for i in at.info)
    np.testing.assert_allclose(
        table(at, "steps_mh_outputs").to_numpy(), ex["multi_head"]["outputs"].numpy()
    )


def test_edited_cells_flow_through_and_reset_restores_the_seed():
    at = open_page()
    at.session_state["steps_x"] = {
        "edited_rows": {0: {"x2": 3.0}}, "added_rows": [], "deleted_rows": []
    }
    at.session_state["steps_wo"] = {
        "edited_rows": {5: {"y4": 2.0}}, "added_rows": [], "deleted_rows": []
    }
    at.run()
    no_exception(at)
    x = worked_example()["x"].numpy().copy()
    x[0, 1] = 3.0
    w_out = worked_example()["multi_head"]["w_out"].numpy().copy()
    w_out[5, 3] = 2.0
    ex = worked_example(x=x, w_out=w_out)
    for key, name in (("steps_q", "queries"), ("steps_scores", "scores"),
                      ("steps_weights", "weights"), ("steps_outputs", "outputs")):
        np.testing.assert_allclose(table(at, key).to_numpy(), ex[name].numpy(), err_msg=key)
    np.testing.assert_allclose(table(at, "steps_mh_outputs").to_numpy(),
                               ex["multi_head"]["outputs"].numpy())
    at.button(key="steps_reset").click().run()
    no_exception(at)
    np.testing.assert_allclose(table(at, "steps_q").to_numpy(),
                               worked_example()["queries"].numpy())


def test_empty_cell_shows_an_error_not_an_exception():
    at = open_page()
    at.session_state["steps_wk"] = {
        "edited_rows": {1: {"k2": None}}, "added_rows": [], "deleted_rows": []
    }
    at.run()
    no_exception(at)
    assert at.error and "W_K" in at.error[0].value


def test_precision_query_and_language_widgets():
    at = open_page()
    at.slider(key="precision").set_value(5).run()
    fig = app_helpers.figure(at, "fig_steps_weights")
    assert fig.data[0].text[0][0] == fmt(0.0633789, 5) == "0.063379"
    at.radio(key="steps_query").set_value(2).run()
    no_exception(at)
    ex = worked_example()
    weighted = table(at, "steps_weighted").to_numpy()
    np.testing.assert_allclose(weighted[:3, 0], ex["weights"][2].numpy())
    np.testing.assert_allclose(weighted[:3, 1:], ex["weighted_values"][:, 2, :].numpy())
    np.testing.assert_allclose(weighted[3, 1:], ex["outputs"][2].numpy())
    at.radio(key="lang").set_value("zh").run()
    no_exception(at)
    assert at.title[0].value.startswith("逐步计算")
