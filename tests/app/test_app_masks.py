"""AppTest of the Masks page: the mask, scores and weights it draws equal the engine's record.

The page runs through app.py (switch_page) when every page app.py names exists, else under
a harness with the same sidebar (see test_app_steps.open_page).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import engine
from engine.models.registry import MODELS
from tests import app_helpers

ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/masks/page.py"
TEXT = "The cat sat on the mat because it was tired."
TEXT2 = "A second, longer sentence in the same batch makes the first one padded."
HOSTILE = ["", "   ", "<script>alert(1)</script>", "**bold** __x__", "$$x^2$$ $y$",
           "<img src=x onerror=alert(1)>"]


def open_page(page: str = PAGE, timeout: float = 180) -> AppTest:
    return app_helpers.open_page(page, timeout)


def figure(at: AppTest, key: str = "fig_masks"):
    return app_helpers.figure(at, key)


def panels(at: AppTest):
    """(mask, scores with −∞ restored, weights, key tick labels) from the masks figure."""
    fig = figure(at)
    heat = [t for t in fig.data if t.type == "heatmap"]
    mask = np.asarray(heat[0].z, dtype=np.float32) > 0.5
    finite = np.asarray(heat[1].z, dtype=np.float32)
    scores = np.where(np.isnan(finite), -np.inf, finite)
    weights = np.asarray(heat[-1].z, dtype=np.float32)
    return mask, scores, weights, list(fig.layout.xaxis.ticktext)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def metric(at: AppTest, key: str) -> str:
    return app_helpers.keyed(at, key).metric[0].value


@pytest.fixture(scope="module")
def minilm():
    if not MODELS["minilm"].is_installed():
        pytest.skip("minilm is not installed")
    return engine.load("minilm", "auto")


@pytest.fixture
def page(minilm) -> AppTest:
    at = open_page()
    no_exception(at)
    return at


def check_against(at, rec, block, head, n_real=None):
    mask, scores, weights, ticks = panels(at)
    t = len(rec.tokens)
    assert mask.shape == scores.shape == weights.shape == (t, t)
    np.testing.assert_allclose(weights, rec[block][head], rtol=0, atol=1e-7)
    want = rec.scores[block][head]
    assert np.array_equal(np.isneginf(scores), np.isneginf(want))
    np.testing.assert_allclose(scores[np.isfinite(want)], want[np.isfinite(want)], rtol=1e-6)
    # the boolean mask drawn is exactly where the engine's scores are finite
    assert np.array_equal(mask, np.isfinite(want))
    assert np.all(weights[~mask] == 0)
    assert len(ticks) == t
    return mask


def test_default_is_causal_and_equals_the_engine(page, minilm):
    assert page.radio(key="masks_mode").value == "causal"
    rec = minilm.attend(TEXT, mask="causal", scores=True, layers=["encoder.self.0"])
    mask = check_against(page, rec, "encoder.self.0", 0)
    assert np.array_equal(mask, np.tril(np.ones_like(mask)))


def test_no_mask_equals_the_engine_and_changes_nothing(page, minilm):
    page.radio(key="masks_mode").set_value("none").run()
    no_exception(page)
    rec = minilm.attend(TEXT, mask="auto", scores=True, layers=["encoder.self.0"])
    mask = check_against(page, rec, "encoder.self.0", 0)
    assert mask.all()
    assert metric(page, "masks_metric_head") == "0"
    assert metric(page, "masks_metric_cosine").startswith("1.000")


def test_causal_layer_and_head(page, minilm):
    page.selectbox(key="masks_block").set_value("encoder.self.3")
    page.slider(key="masks_head").set_value(5)
    page.run()
    no_exception(page)
    rec = minilm.attend(TEXT, mask="causal", scores=True, layers=["encoder.self.3"])
    mask = check_against(page, rec, "encoder.self.3", 5)
    assert np.array_equal(mask, np.tril(np.ones_like(mask)))
    base = minilm.attend(TEXT, scores=True, layers=["encoder.self.3"])
    cos = float(metric(page, "masks_metric_cosine"))
    e1, e2 = rec.outputs["embedding"], base.outputs["embedding"]
    assert cos == pytest.approx(float(e1 @ e2 / np.linalg.norm(e1) / np.linalg.norm(e2)),
                                abs=1e-4)
    assert cos < 0.9999


def test_window_and_knockout(page, minilm):
    tokens = minilm.attend(TEXT, layers=["encoder.self.0"]).tokens
    page.radio(key="masks_mode").set_value("causal")
    page.number_input(key="masks_window").set_value(3)
    page.multiselect(key=f"masks_knock_{len(tokens)}").set_value([1, 4])
    page.run()
    no_exception(page)
    rec = minilm.attend(TEXT, mask="causal", window=3, knockout=[1, 4], scores=True,
                        layers=["encoder.self.0"])
    mask = check_against(page, rec, "encoder.self.0", 0)
    assert mask.sum(axis=1).max() <= 3
    assert not mask[:, [1, 4]].any()
    assert metric(page, "masks_metric_cells") == f"{int((~mask).sum())} / {mask.size}"


def test_padding_batch_shows_pad_tokens(page, minilm):
    page.radio(key="masks_mode").set_value("padding").run()
    no_exception(page)
    recs = minilm.attend_batch([TEXT, TEXT2], mask="auto", scores=True,
                               layers=["encoder.self.0"])
    rec = recs[0]
    n_real = rec.meta["n_real"]
    assert n_real < len(rec.tokens)
    mask = check_against(page, rec, "encoder.self.0", 0)
    assert not mask[:, n_real:].any() and mask[:, :n_real].all()
    ticks = panels(page)[3]
    assert ticks[n_real:] == ["[PAD]"] * (len(rec.tokens) - n_real)
    assert any("pad" in i.value for i in page.info)
    # padding leaves the real tokens' sentence embedding unchanged
    assert float(metric(page, "masks_metric_cosine")) == pytest.approx(1.0, abs=1e-4)
    # the second sentence is the longer one: no padding, and the page says so
    page.radio(key="masks_item").set_value(1).run()
    no_exception(page)
    check_against(page, recs[1], "encoder.self.0", 0)
    assert any("no padding" in i.value for i in page.info)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_gives_no_exception(page, hostile):
    page.text_input(key="masks_text").set_value(hostile).run()
    no_exception(page)
    if not hostile.strip():
        assert page.info and not page.get("plotly_chart")
        return
    ticks = panels(page)[3]
    assert not any("<" in t for t in ticks)  # markup reaches Plotly escaped
    page.radio(key="masks_mode").set_value("padding").run()
    page.text_input(key="masks_text2").set_value(hostile).run()
    no_exception(page)


def test_language_switch(page):
    page.radio(key="lang").set_value("zh").run()
    no_exception(page)
    assert page.title[0].value.startswith("掩码")


@pytest.mark.slow
def test_decoder_next_token_top_k_changes_without_the_causal_mask(page):
    if not MODELS["gemma3-270m"].is_installed():
        pytest.skip("gemma3-270m is not installed")
    try:
        gemma = engine.load("gemma3-270m", "auto")
    except ImportError as exc:  # loader still being written
        pytest.skip(str(exc))
    page.selectbox(key="masks_model").set_value("gemma3-270m").run()
    page.radio(key="masks_mode").set_value("none")
    page.selectbox(key="masks_block").set_value("decoder.self.5")
    page.run()
    no_exception(page)
    rec = gemma.attend(TEXT, mask="none", scores=True, layers=["decoder.self.5"])
    check_against(page, rec, "decoder.self.5", 0)
    base = gemma.attend(TEXT, mask="auto", layers=["decoder.self.5"])

    def topk(key):
        return app_helpers.keyed(page, key).dataframe[0].value

    shown_default, shown_masked = topk("masks_topk_default"), topk("masks_topk_masked")
    np.testing.assert_allclose(shown_default.iloc[:, 1].to_numpy(),
                               [p for _, p in base.outputs["top_k"]], rtol=1e-6)
    np.testing.assert_allclose(shown_masked.iloc[:, 1].to_numpy(),
                               [p for _, p in rec.outputs["top_k"]], rtol=1e-6)
    # a causal LM reading the future predicts something else
    assert not np.allclose(shown_default.iloc[:, 1].to_numpy(),
                           shown_masked.iloc[:, 1].to_numpy())
    # padding under a decoder: causal and padding together
    page.radio(key="masks_mode").set_value("padding").run()
    no_exception(page)
    rec = gemma.attend_batch([TEXT, TEXT2], mask="auto", scores=True,
                             layers=["decoder.self.5"])[0]
    mask = check_against(page, rec, "decoder.self.5", 0)
    n = rec.meta["n_real"]
    assert np.array_equal(mask[:, :n], np.tril(np.ones((len(rec.tokens), n), bool)))
