"""The three bugs of issue 18, each reproduced headlessly.

- The Ablation head picker showed nothing while heads-off results were displayed: a browser
  run stopped for a rerun (a click while a long pass computes) keeps a hidden widget's
  state, so the picker, mounted afresh, drew its empty default while the page computed with
  the stored heads. The picker must always carry the heads the result used.
- Step by step: "Restore the seed's numbers" must reset the matrix editors visibly, and an
  invalid entry ("abc") is refused with a hint, the old value kept.
"""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.runtime.state.session_state import SessionState

import engine
from tests import app_helpers
from tests.app_helpers import rerun

PAGE = "app_pages/attention/page.py"
TEXT = "The animal didn't cross the street because it was too tired."
TIMEOUT = 300


@pytest.fixture(scope="module")
def minilm():
    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("minilm is not installed: " + (engine.MODELS["minilm"].install or ""))
    return engine.load("minilm", device="cpu")


def shown_on_mount(el) -> list[str]:
    """What a freshly mounted multiselect shows in the browser: the value the server sends
    with `set_value`, else its default (the front end has no value of its own yet)."""
    p = el.proto
    if p.set_value:
        return list(p.raw_values)
    return [p.options[i] for i in p.default]


def stopped_for_rerun(monkeypatch):
    """Make the next runs end as runs stopped for a rerun do: stale widget state is kept."""
    real = SessionState.on_script_finished

    def keep_stale(self, ids, *, remove_stale_widgets=True):
        return real(self, ids, remove_stale_widgets=False)

    monkeypatch.setattr(SessionState, "on_script_finished", keep_stale)
    return lambda: monkeypatch.setattr(SessionState, "on_script_finished", real)


def test_ablation_picker_shows_the_heads_of_the_result(minilm, monkeypatch):
    at = app_helpers.open_tab(app_helpers.open_page(PAGE, TIMEOUT), "attn_tab", "Ablation")
    heads = ["encoder.self.0:0", "encoder.self.1:3"]
    at.multiselect(key="attn_ablate").set_value(heads)
    rerun(at)
    restore = stopped_for_rerun(monkeypatch)
    # switch view, layer and text while the picker is hidden; each run is cut by the next click
    app_helpers.open_tab(at, "attn_tab", "Head")
    at.selectbox(key="attn_layer").set_value(2)
    rerun(at)
    text = "Attention lets every token look at every other token."
    at.text_area(key="attn_text").set_value(text)
    rerun(at)
    app_helpers.open_tab(at, "attn_tab", "Ablation")
    restore()
    picker = at.multiselect(key="attn_ablate")
    shown = [o.replace(" · H", ":") for o in shown_on_mount(picker)]
    assert shown == heads, "the picker must show the heads the result was computed with"
    # ... and the result is the one for those heads
    rec = minilm.attend(text)
    off = minilm.attend(text, heads_off={"encoder.self.0": [0], "encoder.self.1": [3]})
    e0, e1 = rec.outputs["embedding"], off.outputs["embedding"]
    cos = float(np.dot(e0, e1) / (np.linalg.norm(e0) * np.linalg.norm(e1)))
    assert float(at.metric[0].value) == pytest.approx(cos, abs=1e-4)


# ----------------------------------------------------------------------------- step by step

STEPS = "app_pages/steps/page.py"


def editor_frame(at, key: str):
    """The data editor whose widget key is `key` or one of its later generations
    (`key~N`): (its widget key, the numbers it shows)."""
    found = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            proto = getattr(child, "proto", None)
            if proto is not None and getattr(proto, "editing_mode", 0):
                wkey = proto.id.rsplit("-", 1)[-1]
                if wkey == key or wkey.startswith(key + "~"):
                    found.append((wkey, child.value))
            walk(child)

    walk(at.main)
    assert len(found) == 1, found
    wkey, df = found[0]
    return wkey, df.to_numpy(dtype=str).astype(np.float64)


def edit(at, wkey: str, rows: dict) -> None:
    at.session_state[wkey] = {"edited_rows": rows, "added_rows": [], "deleted_rows": []}
    rerun(at)


def test_restore_resets_the_editors_visibly():
    from engine.lessons.worked_example import SEED_X

    at = app_helpers.open_page(STEPS, 120)
    wkey, shown = editor_frame(at, "steps_x")
    np.testing.assert_allclose(shown, SEED_X)
    edit(at, wkey, {0: {"x2": "3"}})
    at.button(key="steps_reset").click()
    rerun(at)
    new_key, shown = editor_frame(at, "steps_x")
    # a new widget: the browser mounts it afresh, without the edit it kept for the old one
    assert new_key != wkey
    np.testing.assert_allclose(shown, SEED_X)
    q = app_helpers.keyed(at, "steps_q").dataframe[0].value.to_numpy()
    from engine.lessons.worked_example import worked_example

    np.testing.assert_allclose(q, worked_example()["queries"].numpy())


def test_invalid_entry_is_refused_with_a_hint_and_the_old_value_kept():
    from engine.lessons.worked_example import SEED_X, worked_example

    at = app_helpers.open_page(STEPS, 120)
    wkey, _ = editor_frame(at, "steps_x")
    assert SEED_X[0][0] != 0  # so "kept" and "became 0" differ
    edit(at, wkey, {0: {"x1": "abc", "x3": "2.5"}})
    assert at.error and "abc" in at.error[0].value and "X" in at.error[0].value
    new_key, shown = editor_frame(at, "steps_x")
    want = np.array(SEED_X, dtype=np.float64)
    want[0, 2] = 2.5  # the valid edit stays, the invalid cell shows its old value again
    assert new_key != wkey
    np.testing.assert_allclose(shown, want)
    q = app_helpers.keyed(at, "steps_q").dataframe[0].value.to_numpy()
    np.testing.assert_allclose(q, worked_example(x=want)["queries"].numpy())


# ----------------------------------------------------------------------------- notices

def test_engine_notices_carry_codes_and_read_in_chinese(minilm):
    from app_pages.shared.notices import NOTICE_TEXT

    text = " ".join(["the quick brown fox jumps over the lazy dog"] * 70)
    rec = minilm.attend(text, layers=["encoder.self.0"], outputs=False)
    (cut,) = [n for n in rec.meta["notices"] if getattr(n, "code", "") == "truncated"]
    assert "cut to 512" in cut and cut.args["n"] == 512 and cut.args["max"] == 512
    base = engine.load("transformer-base", device="cpu")
    assert [n.code for n in base.attend("hi", target="hi").meta["notices"]] == ["random_weights"]
    at = app_helpers.open_page(PAGE, TIMEOUT, lang="zh")
    at.text_area(key="attn_text").set_value(text)
    rerun(at)
    want = NOTICE_TEXT["truncated"][1].format(**cut.args)
    assert any(i.value == want for i in at.info), [i.value for i in at.info]


# ----------------------------------------------------------------------------- download

def test_download_names_choice_and_exported_title(minilm):
    import app_pages.shared.download as dl

    at = app_helpers.open_page(PAGE, TIMEOUT)
    fmt = at.segmented_control(key="dl_head_fmt")
    assert fmt.proto.required  # clicking the chosen format keeps it chosen
    rec = minilm.attend(TEXT)
    assert dl.download_stem(None, rec, "encoder.self", 3, 5) == "minilm_L3_H5"
    assert dl.download_stem(None, rec, "decoder.cross", 1, 0) == "minilm_cross_L1_H0"
    assert dl.download_stem("minilm_ablation_delta", rec, None, None, None) == \
        "minilm_ablation_delta"
    from viz.figures.heatmap import head_heatmap

    shown = head_heatmap(rec["encoder.self.3"][5], rec.tokens, title="encoder.self.3 · head 5")
    titled = dl.titled_for_export(shown, rec)
    assert "minilm" in titled.layout.title.text and "The animal didn" in titled.layout.title.text
    assert "encoder.self.3 · head 5" in titled.layout.title.text
    assert shown.layout.title.text == "encoder.self.3 · head 5"  # the page's figure unchanged
    hostile = minilm.attend("<img src=x onerror=alert(1)>")
    assert "<img" not in dl.titled_for_export(shown, hostile).layout.title.text


# ----------------------------------------------------------------------------- masks

def test_masked_weights_are_marked_and_an_empty_row_is_warned(minilm):
    at = app_helpers.open_page("app_pages/masks/page.py", TIMEOUT)
    text = at.text_input[0].value  # the page's sentence
    tokens = minilm.attend(text, layers=["encoder.self.0"]).tokens
    at.radio(key="masks_mode").set_value("causal")
    at.multiselect(key=f"masks_knock_{len(tokens)}").set_value([0])
    rerun(at)
    # causal + key 0 knocked out: query 0 may read no key at all
    assert any("0: " + tokens[0] in w.value for w in at.warning), [w.value for w in at.warning]
    rec = minilm.attend(text, mask="causal", knockout=[0], layers=["encoder.self.0"],
                        scores=True)
    blocked = ~rec.mask("encoder.self.0")[0].astype(bool)
    fig = app_helpers.figure(at, "fig_masks")
    marks = [t for t in fig.data if t.type == "scatter" and getattr(t, "xaxis", "") == "x3"]
    assert marks, "the weights panel marks no masked cell"
    cells = set(zip(np.asarray(marks[0].y).tolist(), np.asarray(marks[0].x).tolist(),
                    strict=True))
    assert cells == set(zip(*np.nonzero(blocked), strict=True))


def test_unknown_token_notice_suggests_gemma_for_chinese_only(minilm):
    emoji = minilm.attend("😀😀😀 🎉🎉", layers=["encoder.self.0"]).meta["notices"]
    assert [n.code for n in emoji] == ["unknown_tokens_other"]
    assert "Chinese" not in emoji[0] and "[UNK]" in emoji[0]
    zh = minilm.attend("我们今天去公园散步", layers=["encoder.self.0"]).meta["notices"]
    assert [n.code for n in zh] == ["unknown_tokens"] and "gemma3-270m" in zh[0]


# ----------------------------------------------------------------------------- variants GPU

def test_gpu_tab_shows_no_machine_path_and_explains_shares_above_one():
    from app_pages.variants.bench_results import kv_results
    from app_pages.variants.text import VARIANTS_TEXT

    results = kv_results()
    if not results:
        pytest.skip("no bench/results/kv_*.json")
    at = app_helpers.open_page("app_pages/variants/page.py", TIMEOUT)
    app_helpers.open_tab(at, "var_tab", VARIANTS_TEXT["tab_gpu"][0])
    captions = [c.value for c in at.caption]
    assert not [c for c in captions if "/root" in c or "/home/" in c], captions
    device = at.session_state["var_gpu_device"]
    shares = [v for p in results[device]["points"] for k, v in p.items()
              if k.endswith("fraction") and isinstance(v, (int, float))]
    explained = any(VARIANTS_TEXT["gpu_over_100"][0][:40] in c for c in captions)
    assert explained == any(v > 1 for v in shares)
