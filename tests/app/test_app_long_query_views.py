"""The Attention page's head view and Q·K on a long input (> LONG_INPUT tokens), headless: a
tiny random decoder (registered for the test) reads a 200-word text; both tabs open on the
last token, draw a selection of keys whose weights are the record's own, and follow their
controls (query, window, number of strongest keys); under 中文 no English word shows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

import engine
from app_pages.attention import query_tabs
from engine.api import LoadedModel
from engine.models.common import ModelEntry
from engine.models.registry import MODELS
from engine.text.codec import TokenizerCodec
from tests import app_helpers
from tests.app.test_app_zh_sweep import english_words, untranslated
from tests.app_helpers import arr, figure, rerun
from tests.conftest import tiny
from viz.figures.key_selection import MAX_SHOWN, select_keys
from viz.figures.long_input import LONG_INPUT

PAGE = "app_pages/attention/page.py"
NAME = "tiny-decoder-long"
TEXT = " ".join(f"word{i % 37} said" for i in range(100))  # 200 tokens
KEY = "decoder.self.1"
TIMEOUT = 300


def word_codec() -> TokenizerCodec:
    """One token per word of TEXT (a decoder's next-token table needs a real tokenizer)."""
    words = ["<pad>", "<unk>", "said", *(f"word{i}" for i in range(37))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return TokenizerCodec(tok, 512, pad_token="<pad>", unk_token="<unk>")


def build(device, progress=None, dtype=None) -> LoadedModel:
    return LoadedModel(NAME, tiny("decoder", max_len=512), word_codec(), torch.device("cpu"),
                       "a tiny random decoder (test)")


@pytest.fixture
def model(monkeypatch):
    entry = ModelEntry(NAME, "decoder", "tiny random decoder (test)", None, lambda: True,
                       build, lambda: build("cpu").config)
    monkeypatch.setitem(MODELS, NAME, entry)
    loaded = engine.load(NAME, device="cpu")
    assert len(loaded.codec.encode(TEXT).ids) > LONG_INPUT
    return loaded


def open_long(tab: str, **state):
    at = app_helpers.open_page(PAGE, TIMEOUT, attn_model=NAME, attn_text=TEXT, attn_layer=1,
                               attn_head=2, **state)
    return app_helpers.open_tab(at, "attn_tab", tab)


def key_rows(spec):
    """(shown key positions, the weights the hover carries [N, heads]) of a head view."""
    right = [t for t in spec.data if getattr(t, "mode", None) == "text"
             and t.textposition == "middle right" and "key" in t.hovertemplate][0]
    keys = [int(c[0].split(":")[0]) for c in right.customdata]
    return keys, np.array([c[1:] for c in right.customdata], dtype=np.float32)


def test_the_controls_stay_under_the_label_cap():
    for half, k in ((query_tabs.LINES_HALF, query_tabs.LINES_K),
                    (query_tabs.QK_HALF, query_tabs.QK_K)):
        assert 2 * half[2] + 1 + k[2] <= MAX_SHOWN  # at their highest
        assert half[1] <= half[3] <= half[2] and k[1] <= k[3] <= k[2]  # defaults in range


def test_head_view_of_a_long_input_shows_one_query_and_follows_its_controls(model):
    at = open_long("Head view")
    rec = model.attend(TEXT, layers=[KEY], outputs=False)
    w, t = rec[KEY], len(rec.tokens)
    assert at.session_state["attn_lines_long_query"] == t - 1  # a decoder: the last token
    keys, hover = key_rows(figure(at, "attn_lines"))
    sel = select_keys(w[[2], t - 1], t - 1, half_width=24, k=8)
    assert keys == sel.keys.tolist() and len(keys) == 49 + 8  # the window looks back
    np.testing.assert_allclose(hover[:, 0], w[2, t - 1, keys], atol=1e-6)
    assert figure(at, "attn_lines").layout.height < 2400

    at.selectbox(key="attn_lines_long_query").set_value(100)
    at.slider(key="attn_lines_half").set_value(5)
    at.slider(key="attn_lines_k").set_value(3)
    at.multiselect(key="attn_lines_heads").set_value([0, 3])
    rerun(at)
    spec = figure(at, "attn_lines")
    keys, hover = key_rows(spec)
    sel = select_keys(w[[0, 3], 100], 100, half_width=5, k=3)
    assert keys == sel.keys.tolist() and len(keys) == 11 + 3
    np.testing.assert_allclose(hover, w[[0, 3]][:, 100, keys].T, atol=1e-6)
    assert "query 100" in spec.layout.title.subtitle.text
    assert "keys 90–100 and its 3 strongest keys of 200" in spec.layout.title.subtitle.text


def test_qk_of_a_long_input_draws_a_selection_with_the_records_weights(model):
    at = open_long("Q·K")
    rec = model.attend(TEXT, scores=True, qk=True, layers=[KEY], outputs=False)
    w, s, t = rec[KEY], rec.scores[KEY], len(rec.tokens)
    assert at.session_state["attn_qk_long_query"] == t - 1

    def check(query, k, half):
        spec = figure(at, "attn_qk")
        bars = {b.name: b for b in spec.data if b.type == "bar"}
        sel = select_keys(w[2, query], query, half_width=half, k=k, outside_window=False)
        n = len(arr(bars["weight"].y))
        assert n == len(sel.keys)
        # the model's weights (a softmax over all 200 keys), not a softmax over the bars
        np.testing.assert_allclose(arr(bars["weight"].y), w[2, query, sel.keys], atol=1e-6)
        shown = s[2, query, sel.keys]
        np.testing.assert_allclose(arr(bars["score"].y),
                                   np.where(np.isneginf(shown), np.nan, shown), atol=1e-5)
        line = spec.data[0]
        assert len(arr(line.x)) == t  # the whole row, one trace
        assert f"a selection of {n} of 200 keys" in spec.layout.title.subtitle.text

    check(t - 1, 32, 8)
    at.selectbox(key="attn_qk_long_query").set_value(150)
    at.slider(key="attn_qk_k").set_value(5)
    at.slider(key="attn_qk_half").set_value(2)
    rerun(at)
    check(150, 5, 2)


def test_both_long_views_speak_chinese(model):
    for tab in ("连线视图", "Q·K"):
        at = open_long(tab, lang="zh")
        assert at.get("plotly_chart")
        bad = untranslated(at)
        for el in at.get("plotly_chart"):  # the sweep reads titles, not their subtitles
            sub = json.loads(el.proto.spec)["layout"]["title"]["subtitle"]["text"]
            if words := english_words(sub):
                bad[sub] = words
        assert not bad, bad
