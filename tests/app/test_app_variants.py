"""Headless AppTest runs of the Variants page (MHA / GQA / MQA): widgets change, and the
figures' data equal the engine's records and the KV-cache formula."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import engine
from engine.models.registry import MODELS
from tests import app_helpers
from tests.app_helpers import arr, chart, rerun, specs

ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/variants/page.py"
TEXT = "The animal didn't cross the street because it was too tired."
TIMEOUT = 300
TRAINED = ("seq2seq-mha", "seq2seq-gqa", "seq2seq-mqa")



def open_page(**state) -> AppTest:
    return app_helpers.open_page(PAGE, TIMEOUT, **state)


def open_tab(at: AppTest, label: str) -> AppTest:
    return app_helpers.open_tab(at, "var_tab", label)


def heatmaps(spec: dict) -> list[np.ndarray]:
    return [arr(t["z"]) for t in spec["data"] if t["type"] == "heatmap"]


@pytest.fixture(scope="module")
def minilm():
    if not MODELS["minilm"].is_installed():
        pytest.skip("minilm is not installed")
    return engine.load("minilm", device="cpu")


def test_trained_variants_side_by_side_or_how_to_train():
    at = open_page()
    installed = [n for n in TRAINED if MODELS[n].is_installed()]
    if not installed:
        assert any("not in assets/seq2seq" in i.value for i in at.info)
        assert any("engine.train.dates" in c.value for c in at.code)
        return
    text = at.session_state["var_date"]
    models = {n: engine.load(n, device="cpu") for n in installed}
    ref = "seq2seq-mha" if "seq2seq-mha" in models else installed[0]
    shared = models[ref].attend(text).outputs["generated"]
    key = "decoder.cross.0"
    for n, m in models.items():
        rec = m.attend(text, target=shared)
        maps = heatmaps(chart(at, f"{n} · {key}"))
        assert len(maps) == m.config.n_heads
        for h, z in enumerate(maps):
            np.testing.assert_allclose(z, rec[key][h], atol=1e-6)
        frames = {sh["line"]["color"] for sh in chart(at, f"{n} · {key}")["layout"]["shapes"]}
        assert len(frames) == m.config.kv_heads  # one frame colour per K/V head


def test_minilm_groups_maps_and_differences(minilm):
    at = open_tab(open_page(), "MiniLM in G groups")
    at.segmented_control(key="var_groups").set_value(4)
    at.selectbox(key="var_mlayer").set_value(2)
    rerun(at)
    key = "encoder.self.2"
    base, conv = minilm.attend(TEXT), minilm.attend(TEXT, kv_heads=4)
    maps = heatmaps(chart(at, f"minilm G=4 · {key}"))
    assert len(maps) == 12
    for h, z in enumerate(maps):
        np.testing.assert_allclose(z, conv[key][h], atol=1e-6)
    diffs = heatmaps(chart(at, f"GQA-4 − MHA · {key}"))
    for h, z in enumerate(diffs):
        np.testing.assert_allclose(z, conv[key][h] - base[key][h], atol=1e-6)
    e0, e1 = base.outputs["embedding"], conv.outputs["embedding"]
    cos = float(np.dot(e0, e1) / (np.linalg.norm(e0) * np.linalg.norm(e1)))
    assert float(at.metric[0].value) == pytest.approx(cos, abs=1e-4)
    # frames: query heads 0-2 share K/V head 0, heads 3-5 K/V head 1, ...
    spec = chart(at, f"minilm G=4 · {key}")
    colors = [s["line"]["color"] for s in spec["layout"]["shapes"]]
    assert len(set(colors)) == 4 and colors[0] == colors[2] != colors[3]


def test_memory_table_and_measured_bytes_match_the_formula():
    at = open_tab(open_page(), "Parameters & KV cache")
    table = at.dataframe[0].value
    for _, row in table.iterrows():
        expect = 2 * row["decoder layers"] * row["K/V heads"] * row["head dim"] * 4
        assert row["KV bytes / token (fp32)"] == expect
    mha = table[table["model"] == "transformer-base MHA"].iloc[0]
    mqa = table[table["model"] == "transformer-base MQA"].iloc[0]
    assert mha["parameters"] > mqa["parameters"]
    assert mha["KV bytes / token (fp32)"] == 8 * mqa["KV bytes / token (fp32)"]
    spec = chart(at, "KV cache vs sequence length")
    lines = {t["name"]: (arr(t["x"]), arr(t["y"])) for t in spec["data"]}
    for name in ("small-MHA", "small-GQA-2", "small-MQA"):
        fx, fy = lines[f"{name} (formula)"]
        mx, my = lines[f"{name} (measured)"]
        np.testing.assert_array_equal(fx, mx)
        np.testing.assert_array_equal(fy, my)  # cache.bytes_used == formula
    assert lines["small-MHA (formula)"][1][-1] == 4 * lines["small-GQA-2 (formula)"][1][-1]


def test_latency_is_measured_on_request():
    at = open_tab(open_page(), "Latency here")
    assert any("Press the button" in i.value for i in at.info)
    at.segmented_control(key="var_context").set_value(64)
    rerun(at)
    at.button(key="var_measure").click()
    rerun(at)
    table = at.dataframe[0].value
    assert {"small-MHA", "small-GQA-2", "small-MQA"} <= set(table["model"])
    assert (table["ms / token"] > 0).all()
    assert len(chart(at, "decode latency")["data"][0]["x"]) == len(table)


def test_gpu_tab_shows_results_or_how_to_make_them():
    at = open_tab(open_page(), "GPU benchmark")
    results = ROOT / "bench" / "results"
    found = {}
    for path in sorted(results.glob("kv_*.json")) if results.is_dir() else []:
        data = json.loads(path.read_text())
        if not path.name.startswith("kv_figures_") and data.get("points"):
            found[path.stem.removeprefix("kv_")] = data
    if not found:
        assert any("No KV benchmark results" in i.value for i in at.info)
        assert any("bench_kv.py" in c.value for c in at.code)
        return
    device = at.session_state["var_gpu_device"]
    result = found[device]
    head = result.get("headline")
    if head:
        table = at.dataframe[0].value
        for _, row in table.iterrows():
            assert row["decode_ms"] == pytest.approx(head[row["variant"]]["decode_ms"], abs=1e-3)
            if "graph_decode_ms" in head[row["variant"]]:
                assert row["graph_bandwidth_fraction"] == pytest.approx(
                    head[row["variant"]]["graph_bandwidth_fraction"], abs=1e-3)
    if "graph_decode_ms" in result["points"][0]:
        assert any("graph decode" in c.value for c in at.caption)
    assert len(at.dataframe[-1].value) == len(result["points"])
    figs = results / f"kv_figures_{device}.json"
    if figs.exists():
        assert len(specs(at)) == len(json.loads(figs.read_text()))
    else:
        assert specs(at)


def test_language_switch(minilm):
    at = open_tab(open_page(), "MiniLM in G groups")
    at.session_state["lang"] = "zh"
    rerun(at)
    assert at.title[0].value == "MHA、GQA 与 MQA"
    assert at.session_state["var_tab"] == "MiniLM 转为 G 组"
    assert specs(at)


def test_pretrained_mha_gqa_and_mqa_side_by_side():
    """MiniLM (MHA), SmolLM2 (GQA, 9 query heads on 3 K/V heads) and Gemma (MQA) each show
    a middle layer's query heads, framed by the K/V head they read, equal to the record."""
    present = [n for n in ("minilm", "smollm2-135m", "gemma3-270m") if MODELS[n].is_installed()]
    if not present:
        pytest.skip("none of the pretrained models is installed")
    at = open_tab(open_page(), "Pretrained MHA / GQA / MQA")
    for name in present:
        m = engine.load(name, device="cpu")
        c = m.config
        kind = "encoder.self" if c.arch == "encoder" else "decoder.self"
        key = f"{kind}.{c.n_layers_total // 2}"
        rec = m.attend(TEXT, layers=[key], outputs=False)
        spec = chart(at, f"{name} · ")
        maps = heatmaps(spec)
        assert len(maps) == c.n_heads
        for h, z in enumerate(maps):
            np.testing.assert_allclose(z, rec[key][h], atol=1e-6)
        colors = [s["line"]["color"] for s in spec["layout"]["shapes"]]
        g = c.n_heads // c.kv_heads  # query heads h and h' read the same K/V head iff h//g
        assert all(colors[h] == colors[h - h % g] for h in range(c.n_heads))
        assert len(set(colors)) == min(c.kv_heads, 8)  # the palette has 8 colours
