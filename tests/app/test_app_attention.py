"""Headless AppTest runs of the Attention page: widgets change, and every figure's data
equal the engine's record for that input (decoded from the Plotly spec Streamlit sends)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import engine
from tests import app_helpers
from tests.app_helpers import arr, chart, rerun, specs
from viz.aggregate import rollout_layers
from viz.metrics import head_metrics, metrics_grid
from viz.style import safe_labels

ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/attention/page.py"
TEXT = "The animal didn't cross the street because it was too tired."
HOSTILE = "<img src=x onerror=alert(1)>"
TIMEOUT = 300


# ----------------------------------------------------------------------------- helpers


def open_page(page: str = PAGE, **state) -> AppTest:
    return app_helpers.open_page(page, TIMEOUT, **state)


def open_tab(at: AppTest, label: str) -> AppTest:
    return app_helpers.open_tab(at, "attn_tab", label)


@pytest.fixture(scope="module")
def minilm():
    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("minilm is not installed: " + (engine.MODELS["minilm"].install or ""))
    return engine.load("minilm", device="cpu")


@pytest.fixture(scope="module")
def base_model():
    return engine.load("transformer-base", device="cpu")


# ----------------------------------------------------------------------------- tests

def test_default_heatmap_equals_record(minilm):
    at = open_page()
    rec = minilm.attend(TEXT)
    spec = chart(at, "encoder.self.0 · head 0")
    heat = spec["data"][0]
    assert heat["type"] == "heatmap"
    np.testing.assert_allclose(arr(heat["z"]), rec["encoder.self.0"][0], atol=1e-6)
    assert spec["layout"]["xaxis"]["ticktext"] == safe_labels(rec.tokens)
    assert spec["layout"]["yaxis"]["ticktext"] == safe_labels(rec.tokens)
    # hover names the query token, the key token and the weight
    assert "customdata[0]" in heat["hovertemplate"] and "%{z" in heat["hovertemplate"]
    # the repeated 'the' keeps its own row: 16 positions, 16 rows
    assert arr(heat["z"]).shape == (len(rec.tokens), len(rec.tokens))


def test_layer_head_and_text_change_the_figure(minilm):
    at = open_page()
    at.selectbox(key="attn_layer").set_value(3)
    at.selectbox(key="attn_head").set_value(5)
    rerun(at)
    rec = minilm.attend(TEXT)
    z = arr(chart(at, "encoder.self.3 · head 5")["data"][0]["z"])
    np.testing.assert_allclose(z, rec["encoder.self.3"][5], atol=1e-6)

    text = "A teacher needs a clear figure for tomorrow's slides."
    at.text_area(key="attn_text").set_value(text)
    rerun(at)
    rec = minilm.attend(text)
    z = arr(chart(at, "encoder.self.3 · head 5")["data"][0]["z"])
    np.testing.assert_allclose(z, rec["encoder.self.3"][5], atol=1e-6)


def test_model_view_has_every_head_and_opens_one(minilm):
    at = open_tab(open_page(), "Model view")
    rec = minilm.attend(TEXT)
    spec = specs(at)[0]
    heat = [t for t in spec["data"] if t["type"] == "heatmap"]
    assert len(heat) == 6 * 12
    # one click target per thumbnail, pointing back at its heatmap (l · 12 + h)
    targets = [t for t in spec["data"] if t["type"] == "scatter"]
    assert [int(arr(t["customdata"])[0]) for t in targets] == list(range(72))
    for i, trace in enumerate(heat):
        layer, head = divmod(i, 12)
        np.testing.assert_allclose(arr(trace["z"]), rec[f"encoder.self.{layer}"][head],
                                   atol=1e-6)
    assert all(t["coloraxis"] == "coloraxis" for t in heat)  # one shared scale
    at.selectbox(key="attn_open_choice").set_value((4, 7))
    rerun(at)
    at.button(key="attn_open_btn").click()
    rerun(at)
    assert at.session_state["attn_layer"] == 4 and at.session_state["attn_head"] == 7
    assert at.session_state["attn_tab"] == "Head"
    z = arr(chart(at, "encoder.self.4 · head 7")["data"][0]["z"])
    np.testing.assert_allclose(z, rec["encoder.self.4"][7], atol=1e-6)


def test_head_view_lines_follow_the_weights(minilm):
    at = open_tab(open_page(), "Head view")
    at.selectbox(key="attn_lines_query").set_value(10)
    at.slider(key="attn_lines_min").set_value(0.0)
    rerun(at)
    rec = minilm.attend(TEXT)
    spec = specs(at)[0]
    lines = [t for t in spec["data"] if t.get("mode") == "lines" and t.get("x") is not None
             and len(arr(t["x"])) > 1]
    n_segments = sum(len(arr(t["x"])) // 3 for t in lines)
    assert n_segments == int((rec["encoder.self.0"][0, 10] >= 0.0).sum())


def test_qk_view_equals_scores_and_weights(minilm):
    at = open_tab(open_page(), "Q·K")
    at.selectbox(key="attn_qk_query").set_value(10)
    rerun(at)
    rec = minilm.attend(TEXT, scores=True, qk=True, layers=["encoder.self.0"])
    spec = specs(at)[0]
    bars = {t["name"]: arr(t["y"]) for t in spec["data"] if t["type"] == "bar"}
    np.testing.assert_allclose(bars["score"], rec.scores["encoder.self.0"][0, 10], atol=1e-5)
    np.testing.assert_allclose(bars["weight"], rec["encoder.self.0"][0, 10], atol=1e-6)


def test_metrics_table_and_grid_equal_viz_metrics(minilm):
    at = open_tab(open_page(), "Head metrics")
    at.selectbox(key="attn_metric").set_value("distance")
    rerun(at)
    rec = minilm.attend(TEXT)
    rows = head_metrics({k: rec[k] for k in rec.blocks("encoder.self")})
    z = arr(specs(at)[0]["data"][0]["z"])
    np.testing.assert_allclose(z, metrics_grid(rows, "distance"), atol=1e-6)
    table = at.dataframe[-1].value
    assert len(table) == 72
    np.testing.assert_allclose(table["entropy"].to_numpy(),
                               np.round([r["entropy"] for r in rows], 4), atol=1e-4)


def test_aggregations_equal_mean_and_rollout(minilm):
    at = open_page()
    at.selectbox(key="attn_layer").set_value(2)
    rerun(at)
    open_tab(at, "Aggregations")
    rec = minilm.attend(TEXT)
    mean = arr(chart(at, "mean over heads")["data"][0]["z"])
    np.testing.assert_allclose(mean, rec["encoder.self.2"].mean(0), atol=1e-6)
    roll = arr(chart(at, "rollout")["data"][0]["z"])
    expect = rollout_layers([rec[f"encoder.self.{i}"] for i in range(3)])[-1]
    np.testing.assert_allclose(roll, expect, atol=1e-5)


def test_ablation_reports_embedding_cosine(minilm):
    at = open_tab(open_page(), "Ablation")
    at.multiselect(key="attn_ablate").set_value(["encoder.self.0:0", "encoder.self.1:3"])
    rerun(at)
    rec = minilm.attend(TEXT)
    off = minilm.attend(TEXT, heads_off={"encoder.self.0": [0], "encoder.self.1": [3]})
    e0, e1 = rec.outputs["embedding"], off.outputs["embedding"]
    cos = float(np.dot(e0, e1) / (np.linalg.norm(e0) * np.linalg.norm(e1)))
    assert float(at.metric[0].value) == pytest.approx(cos, abs=1e-4)
    delta = arr(specs(at)[0]["data"][0]["z"])
    assert delta.shape == (6, 12)
    assert delta[0].max() == 0.0 or delta[1:].max() > 0  # later layers move
    np.testing.assert_allclose(
        delta[2], np.abs(off["encoder.self.2"] - rec["encoder.self.2"]).mean(axis=(1, 2)),
        atol=1e-6)


def test_encoder_decoder_cross_attention_and_steps(base_model):
    at = open_page()
    at.selectbox(key="attn_model").set_value("transformer-base")
    rerun(at)
    target = "Das Tier ging nicht"
    at.text_input(key="attn_target").set_value(target)
    at.session_state["attn_layer"] = 1
    rerun(at)
    rec = base_model.attend(TEXT, target=target)
    open_tab(at, "Cross-attention")
    z = arr(chart(at, "decoder.cross.1 · head 0")["data"][0]["z"])
    np.testing.assert_allclose(z, rec["decoder.cross.1"][0], atol=1e-6)
    open_tab(at, "Generation steps")
    at.slider(key="attn_step").set_value(2)
    rerun(at)
    spec = chart(at, "step 2")
    heat = [t for t in spec["data"] if t["type"] == "heatmap"]
    np.testing.assert_allclose(arr(heat[0]["z"]), rec["decoder.self.1"][:, 2, :3], atol=1e-6)
    np.testing.assert_allclose(arr(heat[1]["z"]), rec["decoder.cross.1"][:, 2, :], atol=1e-6)
    per = base_model.config.kv_cache_bytes_per_token(4)
    assert any(f"{3 * per:,}" in m.value for m in at.markdown)
    kv = chart(at, "KV cache")
    measured = [t for t in kv["data"] if t["type"] == "scatter"][0]
    np.testing.assert_array_equal(arr(measured["y"]),
                                  per * np.arange(1, len(rec.target_tokens) + 1))


def test_language_switch_keeps_the_open_tab(minilm):
    at = open_tab(open_page(), "Model view")
    at.session_state["lang"] = "zh"
    rerun(at)
    assert at.session_state["attn_tab"] == "模型总览"
    assert at.title[0].value == "每个注意力头在看哪里?"
    assert sum(t["type"] == "heatmap" for t in specs(at)[0]["data"]) == 72


def test_hostile_text_is_shown_as_text(minilm):
    at = open_page()
    at.text_area(key="attn_text").set_value(HOSTILE)
    rerun(at)
    spec = chart(at, "encoder.self.0 · head 0")
    ticks = spec["layout"]["xaxis"]["ticktext"]
    assert all("<" not in t for t in ticks)
    assert "&lt;" in ticks
    assert not at.get("html")


def test_empty_text_gives_a_notice_not_an_error(minilm):
    at = open_page()
    at.text_area(key="attn_text").set_value("   ")
    rerun(at)
    assert at.warning and "empty" in at.warning[0].value


@pytest.mark.slow
def test_512_token_minilm_renders_long_views(minilm, monkeypatch):
    text = " ".join(["the quick brown fox jumps over the lazy dog"] * 70)
    calls = []
    real_attend = engine.LoadedModel.attend

    def spy(self, text_, **kw):
        calls.append(kw)
        return real_attend(self, text_, **kw)

    monkeypatch.setattr(engine.LoadedModel, "attend", spy)
    st.cache_data.clear()
    at = open_page()
    at.text_area(key="attn_text").set_value(text)
    rerun(at)
    assert any("cut to 512" in i.value for i in at.info)
    # A long input's record is maps only: its pass stops after the chosen layer.
    assert {"layers": ["encoder.self.0"], "outputs": False}.items() <= calls[-1].items()
    rec = minilm.attend(text, layers=["encoder.self.0"])
    # full resolution: one PNG pixel per cell, each its weight's colour on the shared range
    w0 = rec["encoder.self.0"]
    assert_image_is(chart(at, "encoder.self.0 · head 0"), w0[0], float(w0.max()))
    for view, shape in (("v_overview", (128, 128)), ("v_window", (256, 256))):
        at.segmented_control(key="attn_long_view").set_value(view)
        rerun(at)
        assert arr(specs(at)[0]["data"][0]["z"]).shape == shape
    z = arr(specs(at)[0]["data"][0]["z"])
    np.testing.assert_allclose(z, w0[0, :256, :256], atol=1e-6)
    at.segmented_control(key="attn_long_view").set_value("v_overview")
    rerun(at)
    at.toggle(key="attn_log").set_value(False)
    rerun(at)
    z = arr(specs(at)[0]["data"][0]["z"])  # blocks of 4 tokens, each its max
    np.testing.assert_allclose(z, w0[0].reshape(128, 4, 128, 4).max(axis=(1, 3)), rtol=1e-6)
    at.toggle(key="attn_log").set_value(True)
    at.segmented_control(key="attn_long_view").set_value("v_topk")
    rerun(at)
    assert specs(at)[0]["data"][0]["type"] == "scatter"
    open_tab(at, "Model view")
    heat = [t for t in specs(at)[0]["data"] if t["type"] == "heatmap"]
    assert len(heat) == 72 and arr(heat[0]["z"]).shape == (64, 64)
    full = minilm.attend(text)
    np.testing.assert_allclose(arr(heat[5 * 12 + 7]["z"]),
                               full["encoder.self.5"][7].reshape(64, 8, 64, 8).max(axis=(1, 3)),
                               rtol=1e-5, atol=1e-7)
    # another layer now comes from the background pass's q and k: the same map
    open_tab(at, "Head")
    at.segmented_control(key="attn_long_view").set_value("v_full")
    at.selectbox(key="attn_layer").set_value(4)
    rerun(at)
    w4 = full["encoder.self.4"]
    assert_image_is(chart(at, "encoder.self.4 · head 0"), w4[0], float(w4.max()))
    from app_pages.attention.long_layers import replayed_layer
    again = replayed_layer("minilm", "auto", text, "encoder.self", "encoder.self.4")
    assert again is not None  # the pass held layer 4
    np.testing.assert_allclose(again["encoder.self.4"], w4, atol=1e-6)
    from app_pages.attention.long_layers import qk_record
    got = qk_record("minilm", "auto", text, "encoder.self", "encoder.self.2")
    want = minilm.attend(text, scores=True, qk=True, layers=["encoder.self.2"])
    assert "encoder.self.2" in got.meta["replayed"]  # from the pass, not a new one
    assert got.meta["settings"]["layers"] == ["encoder.self.2"]
    # Layers 0..1 ran recorded in the background pass (on its own thread, its own thread
    # count) and fused in `want`: float32 rounding, about 1e-5 on q and k of magnitude 8.
    for field in ("maps", "scores", "q", "k"):
        np.testing.assert_allclose(getattr(got, field)["encoder.self.2"],
                                   getattr(want, field)["encoder.self.2"], rtol=1e-5,
                                   atol=3e-5)
    open_tab(at, "Q·K")
    assert not at.exception


def assert_image_is(spec: dict, w: np.ndarray, zmax: float) -> None:
    """The figure's image is `w` at one pixel per cell, coloured on the log scale long maps
    start with, up to zmax."""
    import base64

    from viz.raster import colour_indices, decode_indexed_png, log_floor

    image = spec["data"][0]
    assert image["type"] == "image"
    idx, _ = decode_indexed_png(base64.b64decode(image["source"].split(",", 1)[1]))
    np.testing.assert_array_equal(idx, colour_indices(w, log_floor(w, zmax), zmax, log=True))


def test_download_menu_offers_formats_and_exports_only_on_click(minilm, monkeypatch):
    import app_pages.shared.download as dl
    import viz.export

    def boom(*a, **k):
        raise AssertionError("exported during a script run")

    monkeypatch.setattr(viz.export, "figure_bytes", boom)
    monkeypatch.setattr(viz.export, "data_bytes", boom)
    at = open_page()
    buttons = at.get("download_button")
    assert buttons, "no download control"
    monkeypatch.undo()
    fmt = at.segmented_control(key="dl_head_fmt")
    assert fmt.options == ["PNG", "SVG", "PDF", "HTML", "CSV", "JSON", "NPZ"] or \
        list(fmt.proto.options) == ["PNG", "SVG", "PDF", "HTML", "CSV", "JSON", "NPZ"]
    # the numbers behind the heatmap: tidy CSV of exactly that head
    rec = minilm.attend(TEXT)
    csv = dl.make_bytes(None, "csv", rec, block="encoder.self", layer=0, head=0).decode()
    lines = csv.strip().split("\n")
    assert lines[0] == "block,layer,head,query_index,query_token,key_index,key_token,weight"
    assert len(lines) == 1 + len(rec.tokens) ** 2
    first = lines[1].split(",")
    assert float(first[-1]) == pytest.approx(float(rec["encoder.self.0"][0, 0, 0]))


def test_download_menu_without_chromium(minilm, monkeypatch):
    import app_pages.shared.download as dl

    monkeypatch.setattr(dl, "chromium_available", lambda: False)
    at = open_page()
    warnings = [w.value for w in at.warning]
    assert any("Chromium" in w for w in warnings)  # PNG is the default format
    button = [b for b in at.get("download_button") if b.key == "dl_head_btn"][0]
    assert button.proto.disabled
    at.segmented_control(key="dl_head_fmt").set_value("csv")
    rerun(at)
    button = [b for b in at.get("download_button") if b.key == "dl_head_btn"][0]
    assert not button.proto.disabled


def test_four_sessions_get_their_own_sentences(minilm):
    texts = ["One cat sat.", "Two dogs ran far away.", "Three birds sang at dawn today.",
             "Four fish swam in the cold blue lake."]
    sessions = []
    for t in texts:
        at = open_page()
        at.text_area(key="attn_text").set_value(t)
        sessions.append(rerun(at))
    for at, t in zip(sessions, texts, strict=True):
        z = arr(chart(at, "encoder.self.0 · head 0")["data"][0]["z"])
        np.testing.assert_allclose(z, minilm.attend(t)["encoder.self.0"][0], atol=1e-6)


def test_no_raw_html_in_my_files():
    for rel in ("app_pages/attention/page.py", "app_pages/attention/tabs.py",
                "app_pages/attention/passes.py", "app_pages/variants/page.py",
                "app_pages/shared/download.py", "viz/figures/heads_row.py",
                "viz/figures/kv_sharing.py", "viz/figures/kv_cache.py", "viz/figures/bars.py",
                "viz/figures/decoding.py", "viz/figures/window.py"):
        src = (ROOT / rel).read_text()
        assert "unsafe_allow_html" not in src, rel
        assert "st.html(" not in src, rel


@pytest.fixture(scope="module")
def gemma():
    if not engine.MODELS["gemma3-270m"].is_installed():
        pytest.skip("gemma3-270m is not installed: " + (engine.MODELS["gemma3-270m"].install or ""))
    return engine.load("gemma3-270m", device="cpu")


def test_decoder_generates_and_ablation_moves_the_next_token(gemma):
    at = open_page()
    at.selectbox(key="attn_model").set_value("gemma3-270m")
    rerun(at)
    at.number_input(key="attn_generate").set_value(3)
    rerun(at)
    rec = gemma.attend(TEXT, generate=3)
    z = arr(chart(at, "decoder.self.0 · head 0")["data"][0]["z"])
    np.testing.assert_allclose(z, rec["decoder.self.0"][0], atol=1e-5)
    assert np.allclose(np.triu(z, 1), 0)  # causal: no weight on later tokens
    assert any(rec.outputs["generated"].strip() == c.value.strip() for c in at.code)
    open_tab(at, "Ablation")
    at.multiselect(key="attn_ablate").set_value(["decoder.self.17:0", "decoder.self.17:1"])
    rerun(at)
    off = gemma.attend(TEXT, generate=3, heads_off={"decoder.self.17": [0, 1]})
    bars = {t["name"]: arr(t["y"]) for t in chart(at, "next token")["data"]}
    tokens = list(dict.fromkeys([t for t, _ in rec.outputs["top_k"]]
                                + [t for t, _ in off.outputs["top_k"]]))
    intact = dict(rec.outputs["top_k"])
    np.testing.assert_allclose(bars["intact"][: len(intact)],
                               [intact[t] for t in tokens[: len(intact)]], rtol=1e-5)


@pytest.mark.slow
def test_2048_token_gemma_renders(gemma):
    text = " ".join(["The quick brown fox jumps over the lazy dog."] * 205)
    n = len(gemma.codec.encode(text).ids)
    assert n >= 2048
    at = open_page()
    at.selectbox(key="attn_model").set_value("gemma3-270m")
    rerun(at)
    at.text_area(key="attn_text").set_value(text)
    rerun(at)
    assert any("long input" in i.value for i in at.info)
    image = specs(at)[0]["data"][0]  # one PNG of n × n pixels, no array of numbers
    assert image["type"] == "image" and image["source"].startswith("data:image/png;base64,")
    assert len(json.dumps(specs(at)[0])) < 4_000_000
    open_tab(at, "Model view")
    heat = [t for t in specs(at)[0]["data"] if t["type"] == "heatmap"]
    assert len(heat) == 18 * 4
    assert all(arr(t["z"]).shape[0] <= 64 for t in heat)
