"""Headless AppTest runs of the Attention page's Contributions tab: for an encoder (MiniLM),
an encoder-decoder's cross-attention (seq2seq-mha) and a decoder (SmolLM2, logit lens), every
figure's data equal the engine's own norm / flow / logit-lens numbers for that input (decoded
from the Plotly spec Streamlit sends), and the pass behind the maps records the chosen layer
only."""

from __future__ import annotations

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import engine
from engine.contributions import flow_across_layers
from tests import app_helpers
from tests.app_helpers import arr, figure, rerun
from viz.style import safe_labels

PAGE = "app_pages/attention/page.py"
TEXT = "The animal didn't cross the street because it was too tired."
DATE = "March 3rd, 2021"
TIMEOUT = 300


def open_contributions(**state) -> AppTest:
    at = app_helpers.open_page(PAGE, TIMEOUT, **state)
    return app_helpers.open_tab(at, "attn_tab", "Contributions")


def open_decoder(name: str, text: str, layer: int, head: int) -> AppTest:
    """The Contributions tab of decoder `name` on `text`, at `layer` and `head`."""
    at = app_helpers.open_page(PAGE, TIMEOUT)
    at.selectbox(key="attn_model").set_value(name)
    rerun(at)
    at.text_area(key="attn_text").set_value(text)
    at.selectbox(key="attn_layer").set_value(layer)
    at.selectbox(key="attn_head").set_value(head)
    return app_helpers.open_tab(rerun(at), "attn_tab", "Contributions")


def need(name: str) -> engine.LoadedModel:
    if not engine.MODELS[name].is_installed():
        pytest.skip(f"{name} is not installed: " + (engine.MODELS[name].install or ""))
    return engine.load(name, device="cpu")


@pytest.fixture
def attend_calls(monkeypatch):
    """Every LoadedModel.attend call's keyword arguments (the app's cache cleared first)."""
    calls: list[dict] = []
    real = engine.LoadedModel.attend

    def spy(self, text_, **kw):
        calls.append(kw)
        return real(self, text_, **kw)

    monkeypatch.setattr(engine.LoadedModel, "attend", spy)
    st.cache_data.clear()
    return calls


def check_maps(spec, rec, key: str, head: int) -> None:
    """The three panels and the residual column equal the record's weight, norm and flow
    maps; ticks are the readable labels; hover carries all three numbers."""
    heat = spec.data
    assert [t.type for t in heat] == ["heatmap"] * 4
    t_k = rec[key].shape[2]
    flow = rec[f"flow.{key}"]
    np.testing.assert_allclose(arr(heat[0].z), rec[key][head], atol=1e-6)
    np.testing.assert_allclose(arr(heat[1].z), rec[f"norm.{key}"][head], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(arr(heat[2].z), flow[:, :t_k], atol=1e-6)
    np.testing.assert_allclose(arr(heat[3].z)[:, 0], flow[:, t_k], atol=1e-6)
    custom = arr(heat[1].customdata)
    np.testing.assert_allclose(custom[..., 1], rec[f"norm.{key}"][head], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(custom[..., 2], flow[:, :t_k], atol=1e-6)
    assert all(f"customdata[{n}]" in heat[0].hovertemplate for n in range(3))
    q_lab, k_lab = rec.axis_labels(key)
    assert spec.layout.xaxis.ticktext == safe_labels(k_lab)
    assert spec.layout.yaxis.ticktext == safe_labels(q_lab)
    assert spec.layout.xaxis2.matches == "x" and spec.layout.yaxis3.matches == "y"


def test_minilm_maps_flow_across_and_no_lens(attend_calls):
    model = need("minilm")
    at = app_helpers.open_page(PAGE, TIMEOUT)
    at.selectbox(key="attn_layer").set_value(3)
    at.selectbox(key="attn_head").set_value(5)
    at = app_helpers.open_tab(rerun(at), "attn_tab", "Contributions")
    key = "encoder.self.3"
    # the tab's maps come from one pass that records the chosen layer only, maps only
    assert {"layers": [key], "contributions": True, "outputs": False}.items() <= \
        next(c for c in attend_calls if c.get("contributions") and
             c["layers"] == [key]).items()
    rec = model.attend(TEXT, layers=[key], contributions=True)
    check_maps(figure(at, "attn_contrib"), rec, key, 5)
    # flow across layers 0..3 into position 2 ("animal")
    at.selectbox(key="attn_contrib_pos").set_value(2)
    rerun(at)
    keys = [f"encoder.self.{i}" for i in range(4)]
    full = model.attend(TEXT, layers=keys, contributions=True)
    want = flow_across_layers([full[f"flow.{k}"] for k in keys])[2]
    bars = figure(at, "attn_contrib_across").data[0]
    assert bars.type == "bar"
    np.testing.assert_allclose(arr(bars.y), want, atol=1e-5)
    assert abs(float(arr(bars.y).sum()) - 1.0) < 1e-4
    assert any("only decoder models" in i.value for i in at.info)  # no logit lens here


def test_minilm_in_chinese_and_its_exports():
    import app_pages.shared.download as dl

    model = need("minilm")
    at = open_contributions(lang="zh")
    assert any("注意力不等于解释" in c.value for c in at.caption)
    assert any("接近度" in c.value for c in at.caption)
    fmt = at.segmented_control(key="dl_contrib_fmt")
    assert list(fmt.options) == ["PNG", "SVG", "PDF", "HTML", "CSV", "JSON", "NPZ"]
    # the numbers behind the figure: tidy rows of weight, norm, flow and the residual share
    key = "encoder.self.0"
    rec = model.attend(TEXT, layers=[key], contributions=True)
    from app_pages.attention.contributions import contributions_table

    q_tok, k_tok = rec.axis_tokens(key)
    table = contributions_table(rec[key][0], rec[f"norm.{key}"][0], rec[f"flow.{key}"],
                                q_tok, k_tok)
    lines = dl.table_bytes(table, "csv").decode().strip().split("\n")
    assert lines[0] == ("query_index,query_token,key_index,key_token,weight,norm,flow,"
                        "residual_share")
    assert len(lines) == 1 + len(rec.tokens) ** 2
    row = lines[1 + 2 * len(rec.tokens) + 3].split(",")  # query 2, key 3
    assert float(row[5]) == pytest.approx(float(rec[f"norm.{key}"][0, 2, 3]), rel=1e-5)
    assert float(row[7]) == pytest.approx(float(rec[f"flow.{key}"][2, -1]), rel=1e-5)


def test_encoder_decoder_cross_attention():
    model = need("seq2seq-mha")
    at = app_helpers.open_page(PAGE, TIMEOUT)
    at.selectbox(key="attn_model").set_value("seq2seq-mha")
    rerun(at)
    at.text_area(key="attn_text").set_value(DATE)
    at.text_input(key="attn_target").set_value("2021-03-03")
    rerun(at)
    at.segmented_control(key="attn_kind").set_value("decoder.cross")
    rerun(at)
    at.selectbox(key="attn_layer").set_value(1)
    at.selectbox(key="attn_head").set_value(2)
    at = app_helpers.open_tab(rerun(at), "attn_tab", "Contributions")
    key = "decoder.cross.1"
    rec = model.attend(DATE, target="2021-03-03", layers=[key], contributions=True)
    spec = figure(at, "attn_contrib")
    check_maps(spec, rec, key, 2)
    assert arr(spec.data[0].z).shape == (len(rec.target_tokens), len(rec.tokens))
    infos = [i.value for i in at.info]
    assert any("self-attention" in i for i in infos)  # no flow across a cross block
    assert any("only decoder models" in i for i in infos)


def test_decoder_logit_lens_table():
    model = need("smollm2-135m")
    text = "The capital of France is"
    at = open_decoder("smollm2-135m", text, 20, 3)
    key = "decoder.self.20"
    rec = model.attend(text, layers=[key], contributions=True, logit_lens=True)
    check_maps(figure(at, "attn_contrib"), rec, key, 3)
    last = len(rec.tokens) - 1
    assert at.session_state["attn_contrib_pos"] == last
    lens = figure(at, "attn_contrib_lens").data[0]
    rows = rec.outputs["logit_lens"]
    assert rec.outputs["logit_lens_position"] == last
    assert arr(lens.z).shape == (model.config.n_decoder_layers, len(rows[0]))
    # the app reads the lens off a fused pass (layers=[]), this record off a recorded one
    np.testing.assert_allclose(arr(lens.z), [[p for _, p in r] for r in rows], atol=1e-6)
    assert lens.customdata[-1] == safe_labels(t for t, _ in rows[-1])
    # the last layer's lens is the model's own next-token distribution
    assert [t for t, _ in rows[-1][:5]] == [t for t, _ in rec.outputs["top_k"][:5]]
    table = at.dataframe[-1].value
    assert table.shape == (model.config.n_decoder_layers, len(rows[0]))
    assert table.iloc[-1, 0].startswith(model.codec.labels([rows[-1][0][0]])[0])


def test_long_input_gets_overview_topk_and_window():
    model = need("minilm")
    text = " ".join(["the quick brown fox jumps over the lazy dog"] * 22)  # 200 tokens
    at = app_helpers.open_page(PAGE, TIMEOUT)
    at.text_area(key="attn_text").set_value(text)
    at = app_helpers.open_tab(rerun(at), "attn_tab", "Contributions")
    key = "encoder.self.0"
    rec = model.attend(text, layers=[key], contributions=True)
    t = len(rec.tokens)
    assert t > 128
    spec = figure(at, "attn_contrib")  # the overview by default: 2 × 2 blocks
    assert arr(spec.data[1].z).shape == (-(-t // 2), -(-t // 2))
    assert np.isfinite(arr(spec.data[2].z)).all()
    at.segmented_control(key="attn_contrib_view").set_value("v_window")
    rerun(at)
    at.slider(key="attn_contrib_wq").set_value(40)
    rerun(at)
    spec = figure(at, "attn_contrib")
    np.testing.assert_allclose(arr(spec.data[1].z), rec[f"norm.{key}"][0, 40:168, :128],
                               rtol=1e-5, atol=1e-6)
    at.segmented_control(key="attn_contrib_view").set_value("v_topk")
    rerun(at)
    spec = figure(at, "attn_contrib")
    assert [d.type for d in spec.data] == ["scatter"] * 3 + ["heatmap"]
    assert len(arr(spec.data[0].x)) == t * 8


@pytest.mark.slow
def test_a_long_decoder_reads_the_background_pass(attend_calls):
    """Past LONG_INPUT tokens the contributions run the chosen layer alone, an ablation runs
    from its first switched-off layer (both from the streams the background pass kept) and
    the logit lens reads those streams: every number as a whole pass gives it."""
    model = need("gemma3-270m")
    text = " ".join(["The quick brown fox jumps over the lazy dog."] * 30)
    at = open_decoder("gemma3-270m", text, 6, 1)
    key = "decoder.self.6"
    assert [kw["resume"][0] for kw in attend_calls if kw.get("resume") is not None] == [6]
    at.segmented_control(key="attn_contrib_view").set_value("v_window")
    spec = figure(rerun(at), "attn_contrib")
    assert not any(kw.get("logit_lens") for kw in attend_calls)  # the lens: no pass of its own
    rec = model.attend(text, layers=[key], contributions=True, outputs=False)
    t = len(rec.tokens)
    assert t > 256
    np.testing.assert_allclose(arr(spec.data[1].z), rec[f"norm.{key}"][1, :128, :128],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(arr(spec.data[2].z), rec[f"flow.{key}"][:128, :128], atol=1e-5)
    lens = arr(figure(at, "attn_contrib_lens").data[0].z)
    want = model.attend(text, layers=[], logit_lens=True).outputs["logit_lens"]
    np.testing.assert_allclose(lens, [[p for _, p in r] for r in want], atol=1e-5)

    at = app_helpers.open_tab(at, "attn_tab", "Ablation")
    at.multiselect(key="attn_ablate").set_value(["decoder.self.10:0"])
    rerun(at)
    assert [kw["resume"][0] for kw in attend_calls if kw.get("resume") is not None][-1] == 10
    off = model.attend(text, layers=[], heads_off={"decoder.self.10": [0]}).outputs["top_k"]
    bars = {tr.name: tr for tr in figure(at, "attn_ablate_topk").data}
    got = dict(zip(bars["heads off"].x, arr(bars["heads off"].y), strict=True))
    for token, p in off:
        assert got[safe_labels([token])[0]] == pytest.approx(p, rel=1e-4, abs=1e-6)
    assert any("does not change" in i.value for i in at.info)  # layer 6 < 10
    at.multiselect(key="attn_ablate").set_value(["decoder.self.6:0"])  # its own layer: the same
    rerun(at)
    assert any("does not change" in i.value for i in at.info)
    at.multiselect(key="attn_ablate").set_value(["decoder.self.3:2"])
    rerun(at)
    delta = arr(figure(at, "attn_ablate_delta").data[0].z)
    moved = model.attend(text, layers=[key], heads_off={"decoder.self.3": [2]})
    np.testing.assert_allclose(delta[0], np.abs(moved[key] - rec[key]).mean(axis=(1, 2)),
                               rtol=1e-3, atol=1e-6)
    assert not at.exception


def test_a_layer_too_big_for_the_cache_keeps_the_chosen_heads_maps(attend_calls, monkeypatch):
    """When a layer's contributions record (every head's weights and norms, the flow) would
    not fit the result cache, the chosen head's maps are kept: a rerun for the same head
    runs no pass, another head does, and the numbers are the record's."""
    from app_pages.shared import result_cache

    model = need("minilm")
    text = " ".join(["the quick brown fox jumps over the lazy dog"] * 22)  # 200 tokens
    key = "encoder.self.0"
    rec = model.attend(text, layers=[key], contributions=True)
    t = len(rec.tokens)
    layer_bytes, head_bytes = 2 * rec[key].nbytes + rec[key][0].nbytes, 3 * t * t * 4
    monkeypatch.setattr(result_cache.CACHE, "max_bytes", (layer_bytes + 8 * head_bytes) // 2)
    assert not result_cache.keeps(layer_bytes) and result_cache.keeps(4 * head_bytes)
    at = app_helpers.open_page(PAGE, TIMEOUT)
    at.text_area(key="attn_text").set_value(text)
    at = app_helpers.open_tab(rerun(at), "attn_tab", "Contributions")
    at.segmented_control(key="attn_contrib_view").set_value("v_window")
    rerun(at)
    np.testing.assert_allclose(arr(figure(at, "attn_contrib").data[1].z),
                               rec[f"norm.{key}"][0, :128, :128], rtol=1e-5, atol=1e-6)

    def contribution_passes() -> int:
        return sum(bool(c.get("contributions")) for c in attend_calls)

    before = contribution_passes()
    at.slider(key="attn_contrib_wq").set_value(40)  # the same head: its maps are kept
    rerun(at)
    assert at.exception.len == 0 and contribution_passes() == before
    np.testing.assert_allclose(arr(figure(at, "attn_contrib").data[2].z),
                               rec[f"flow.{key}"][40:168, :128], atol=1e-6)
    at.selectbox(key="attn_head").set_value(3)  # another head: the layer runs again
    rerun(at)
    assert contribution_passes() == before + 1
    np.testing.assert_allclose(arr(figure(at, "attn_contrib").data[1].z),
                               rec[f"norm.{key}"][3, 40:168, :128], rtol=1e-5, atol=1e-6)
