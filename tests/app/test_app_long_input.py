"""Long texts in, and progress that tells the truth (issue 17).

The Attention page's text area: the token count against the model's limit under it, a
warning naming exactly what the engine cuts, a refusal of huge texts, the token list in a
box of fixed height; the Masks page takes long pastes and says what it cut; spinners name
the computation ("Computing attention for N tokens…", never "Loading" around a cached run),
the engine's per-layer callback draws "layer k of n", and the Variants page's slow tab names
its steps. Spinner and bar texts are read by wrapping `st.spinner` and
`DeltaGenerator.progress` (AppTest runs the page in this process); texts are unique per test
so that the cached passes really run.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re

import pytest
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.scriptrunner_utils.exceptions import StopException
from streamlit.testing.v1 import AppTest

import engine
from app_pages.shared import progress as progress_ui
from app_pages.shared import result_cache
from app_pages.shared.long_text import MAX_CHARS, count_tokens, first_tokens
from engine.text.codec import HashWordCodec
from tests import app_helpers
from tests.app_helpers import keyed, rerun
from tests.conftest import tiny
from tests.engine.test_contributions import loaded
from viz.style import visible_token

ATTENTION = "app_pages/attention/page.py"
MASKS = "app_pages/masks/page.py"
VARIANTS = "app_pages/variants/page.py"
TIMEOUT = 300
FRESH = itertools.count()


def fresh(words: int = 3) -> str:
    """A text no earlier run cached (a cached pass runs no layer and draws no bar)."""
    n = next(FRESH)
    return " ".join(["Quiet", "rivers", "carry", "stones"][: max(1, words)]) + f" {n} {id(FRESH)}."


def long_text(n: int = 300) -> str:
    return " ".join(f"word{i} is here." for i in range(n))  # ~6 MiniLM tokens per item


@pytest.fixture(scope="module")
def minilm():
    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("minilm is not installed: " + (engine.MODELS["minilm"].install or ""))
    return engine.load("minilm", device="cpu")


@pytest.fixture
def said(monkeypatch):
    """Every spinner text and progress-bar text the pages show, in order."""
    seen = {"spinner": [], "progress": []}
    spinner = st.spinner

    @contextlib.contextmanager
    def recording_spinner(text="", *args, **kwargs):
        seen["spinner"].append(text)
        with spinner(text, *args, **kwargs):
            yield

    bar = DeltaGenerator.progress

    def recording_progress(self, value, text=None, *args, **kwargs):
        seen["progress"].append(text)
        return bar(self, value, text, *args, **kwargs)

    monkeypatch.setattr(st, "spinner", recording_spinner)
    monkeypatch.setattr(DeltaGenerator, "progress", recording_progress)
    return seen


def attention(**state):
    return app_helpers.open_page(ATTENTION, TIMEOUT, **state)


def type_text(at, text: str):
    at.text_area(key="attn_text").set_value(text)
    return rerun(at)


def captions(at) -> list[str]:
    return [str(c.value) for c in at.caption]


# ----------------------------------------------------------------------------- text area

def test_the_text_box_is_a_text_area_that_says_when_it_applies(minilm):
    at = attention()
    assert [w.key for w in at.text_input if w.key == "attn_text"] == []
    box = at.text_area(key="attn_text")
    assert box.value == "The animal didn't cross the street because it was too tired."
    assert "Ctrl+Enter" in box.help and "keystroke" in box.help
    n = len(minilm.codec.encode(box.value).ids)
    assert f"{n} tokens · minilm reads up to 512" in captions(at)
    at.session_state["lang"] = "zh"
    rerun(at)
    assert f"{n} 个词元 · minilm 最多读取 512 个" in captions(at)
    assert "Ctrl+Enter" in at.text_area(key="attn_text").help


def test_the_text_survives_a_page_switch(minilm):
    at = attention()
    type_text(at, "A sentence typed before visiting the masks page.")
    at.switch_page(MASKS)
    rerun(at)
    at.switch_page(ATTENTION)
    rerun(at)
    assert at.text_area(key="attn_text").value == "A sentence typed before visiting the masks page."


def test_over_the_limit_the_warning_names_exactly_what_is_cut(minilm):
    text = long_text()
    at = type_text(attention(), text)
    n = minilm.codec.encode(text).n_original
    rec = minilm.attend(text, layers=[0], outputs=False)  # what the engine reads
    assert len(rec.tokens) == 512 < n
    assert f"{n:,} tokens · minilm reads up to 512" in captions(at)
    (warning,) = [str(w.value) for w in at.warning]
    count = count_tokens(minilm.codec, text)
    assert warning == (f"Over the limit: minilm reads the first 512 of these {n:,} tokens; the "
                       f"last {n - 512:,}, from character {count.cut_at:,} of the text on, "
                       "are cut.")
    # the character named is where the unread part starts: the text before it is what is read
    assert minilm.codec.encode(text[:count.cut_at]).tokens == rec.tokens
    at.session_state["lang"] = "zh"
    rerun(at)
    (warning,) = [str(w.value) for w in at.warning]
    assert warning == (f"超出上限:minilm 只读取这 {n:,} 个词元中的前 512 个;从文本第 "
                       f"{count.cut_at:,} 个字符起的最后 {n - 512:,} 个词元将被截去。")


def test_no_warning_within_the_limit(minilm):
    at = type_text(attention(), long_text(60))  # ~360 tokens: long, not over 512
    assert at.warning.len == 0
    assert any("tokens · minilm reads up to 512" in c for c in captions(at))


def test_a_huge_text_is_refused_and_kept_in_the_box(minilm):
    at = attention()
    huge = "x" * (MAX_CHARS + 1)
    type_text(at, huge)
    assert [str(e.value) for e in at.error] == [
        "The text has 100,001 characters, more than the 100,000 this page takes: paste a "
        "shorter part (the model reads at most 512 tokens of it anyway)."]
    assert at.get("plotly_chart") == [] or len(at.get("plotly_chart")) == 0
    assert at.text_area(key="attn_text").value == huge
    at.session_state["lang"] = "zh"
    rerun(at)
    assert [str(e.value) for e in at.error] == [
        "文本有 100,001 个字符,超过本页接受的 100,000 个:请粘贴较短的一段(模型无论如何最多只读取"
        "其中 512 个词元)。"]


def test_a_text_of_max_chars_is_read_not_refused(minilm):
    text = ("It was the best of times, it was the worst of times. " * 2000)[:MAX_CHARS]
    at = type_text(attention(), text)
    assert at.error.len == 0
    assert any("cut to 512 tokens" in str(i.value) for i in at.info)  # the engine's notice


@pytest.mark.skipif(not engine.MODELS["gemma3-270m"].is_installed(),
                    reason="gemma3-270m is not installed")
def test_gemma_says_its_trained_length_beside_what_the_app_reads():
    at = attention(attn_model="gemma3-270m", attn_text="A short text for Gemma.")
    model = engine.load("gemma3-270m", device="cpu")
    n = len(model.codec.encode("A short text for Gemma.").ids)
    assert (f"{n} tokens · gemma3-270m reads up to 8,192 (trained on 32,768 positions; maps "
            "grow with the square of the length, so the app records fewer)") in captions(at)


def test_decoder_generate_and_encoder_decoder_target_inputs_still_work():
    at = attention(attn_model="transformer-base")
    assert at.text_input(key="attn_target") is not None  # a target stays one line
    at.text_input(key="attn_target").set_value("le chat")
    rerun(at)
    assert at.exception.len == 0
    if engine.MODELS["smollm2-135m"].is_installed():
        at = attention(attn_model="smollm2-135m", attn_text=fresh())
        at.number_input(key="attn_generate").set_value(2)
        rerun(at)
        assert at.exception.len == 0


# ----------------------------------------------------------------------------- token list

def test_the_token_list_scrolls_in_a_box_of_fixed_height(minilm):
    text = long_text()
    at = type_text(attention(), text)
    box = keyed(at, "attn_token_list")
    assert box.proto.height_config.pixel_height == 260
    rec = minilm.attend(text, layers=[0], outputs=False)
    (code,) = [c for c in box.children.values() if str(getattr(c, "value", "")).startswith("0:")]
    assert str(code.value) == "  ".join(f"{i}:{visible_token(t)}"
                                        for i, t in enumerate(rec.tokens))  # raw tokens


def test_a_short_token_list_keeps_its_own_height(minilm):
    at = attention()
    box = keyed(at, "attn_token_list")
    assert box.proto.height_config.use_content and not box.proto.height_config.pixel_height


# ----------------------------------------------------------------------------- masks page

def mask_figure(at) -> dict:
    (el,) = [e for e in at.get("plotly_chart") if e.proto.id.endswith("-fig_masks")]
    return json.loads(el.proto.spec)


def test_the_masks_page_takes_a_long_paste_and_says_what_it_cut(minilm):
    at = app_helpers.open_page(MASKS, TIMEOUT)
    assert not at.text_input(key="masks_text").max_chars  # no silent cut at 4,000 characters
    text = long_text(800)
    at.text_input(key="masks_text").set_value(text)
    rerun(at)
    prefix, kept, n = first_tokens(minilm.codec, text, 512)
    assert kept <= 512 < n and len(text) > 4000 and text.startswith(prefix)
    assert [str(i.value) for i in at.info][0] == (
        f"Only the first {kept} of the text's {n:,} tokens are drawn: this page draws at most "
        f"three {kept} × {kept} maps, so the text was cut there.")
    assert not any("cut to" in str(i.value) for i in at.info)  # the engine had nothing to cut
    z = app_helpers.arr(mask_figure(at)["data"][0]["z"])
    assert z.shape == (kept, kept)
    at.session_state["lang"] = "zh"
    rerun(at)
    assert [str(i.value) for i in at.info][0] == (
        f"只绘制了文本 {n:,} 个词元中的前 {kept} 个:本页最多绘制三张 {kept} × {kept} 的图,"
        "所以文本在此处截断。")


def test_the_masks_second_sentence_is_cut_with_a_note(minilm):
    at = app_helpers.open_page(MASKS, TIMEOUT, masks_mode="padding")
    at.text_input(key="masks_text2").set_value(long_text())
    rerun(at)
    _, kept, n = first_tokens(minilm.codec, long_text(), 512)
    assert (f"Second sentence: only the first {kept} of its {n:,} tokens are used (the page "
            f"draws at most {kept} × {kept} maps).") in [str(i.value) for i in at.info]


def test_the_masks_page_refuses_a_huge_paste(minilm):
    at = app_helpers.open_page(MASKS, TIMEOUT)
    at.text_input(key="masks_text").set_value("y " * MAX_CHARS)
    rerun(at)
    assert [str(e.value) for e in at.error] == [
        f"The text has {2 * MAX_CHARS:,} characters, more than the 100,000 this page takes: "
        "paste a shorter part (the model reads at most 512 tokens of it anyway)."]


def test_first_tokens_cuts_at_a_token_of_the_whole_text(minilm):
    text = long_text()
    prefix, kept, n = first_tokens(minilm.codec, text, 100)
    assert text.startswith(prefix) and n == minilm.codec.encode(text).n_original
    enc = minilm.codec.encode(prefix)
    assert len(enc.ids) == kept <= 100
    whole = minilm.codec.encode(text).tokens
    assert enc.tokens[:-1] == whole[: kept - 1]  # the same tokens, then its own [SEP]
    assert first_tokens(minilm.codec, "A short one.", 100) == ("A short one.", 6, 6)
    words = HashWordCodec(100, 16)  # no offsets: the text comes back whole
    assert first_tokens(words, "a b c d e f", 3) == ("a b c d e f", 6, 6)


# ----------------------------------------------------------------------------- progress

def test_the_spinner_names_the_computation_and_the_bar_counts_layers(minilm, said):
    text = fresh()
    at = attention(attn_text=text)
    n = len(minilm.codec.encode(text).ids)
    assert f"Computing attention for {n} tokens…" in said["spinner"]
    # "Loading" is get_model's alone (Streamlit shows it only while a load takes > 0.5 s):
    # the spinner around the computation says what it computes
    assert all(s == "Loading minilm…" for s in said["spinner"] if "Loading" in s)
    assert [p for p in said["progress"] if p and p.startswith("layer")] == [
        f"layer {k} of 6" for k in range(1, 7)]
    said["progress"].clear()
    rerun(at)  # a cache hit: no layer runs, no bar, and the replay does not trip on the bar
    assert [p for p in said["progress"] if p and p.startswith("layer")] == []


def test_the_progress_texts_in_chinese(minilm, said):
    text = fresh()
    attention(attn_text=text, lang="zh")
    n = len(minilm.codec.encode(text).ids)
    assert f"正在计算 {n} 个词元的注意力…" in said["spinner"]
    assert [p for p in said["progress"] if p and p.startswith("第")] == [
        f"第 {k} 层 / 共 6 层" for k in range(1, 7)]


def test_a_long_input_counts_the_layers_its_pass_runs(minilm, said):
    text = fresh() + " " + long_text(40)  # > 128 tokens: one layer, a pass that stops there
    at = attention(attn_text=text, attn_layer=2)
    n = len(minilm.codec.encode(text).ids)
    assert n > 128 and at.exception.len == 0
    assert f"Computing attention for {n} tokens up to layer 2…" in said["spinner"]
    bars = [p for p in said["progress"] if p and p.startswith("layer")]
    assert bars[:3] == [f"layer {k} of 3" for k in range(1, 4)]
    # a run after the first finds the background pass over all 6 layers going, and waits
    # for it to reach layer 2 under its own bar
    assert all(re.fullmatch(r"layer [0-6] of 6", p) for p in bars[3:]), "|".join(bars)


def test_the_ablation_says_what_it_runs_with_a_bar_over_its_layers(minilm, said):
    at = app_helpers.open_tab(attention(attn_text=fresh()), "attn_tab", "Ablation")
    said["spinner"].clear()
    said["progress"].clear()
    at.multiselect(key="attn_ablate").set_value(["encoder.self.1:3", "encoder.self.4:0"])
    rerun(at)
    assert at.exception.len == 0
    assert ("Running the model with 2 heads switched off "
            "(encoder.self.1 · H3, encoder.self.4 · H0)…") in said["spinner"]
    assert [p for p in said["progress"] if p and p.startswith("layer")] == [
        f"layer {k} of 6" for k in range(1, 7)]
    at.multiselect(key="attn_ablate").set_value(["encoder.self.2:1"])
    rerun(at)
    assert "Running the model with encoder.self.2 · H1 switched off…" in said["spinner"]


def test_a_layer_that_crowds_the_result_cache_says_so(minilm, monkeypatch):
    text = fresh() + " " + long_text(40)  # > 128 tokens: a long input, one layer recorded
    at = attention(attn_text=text)
    assert at.exception.len == 0 and not [w for w in at.warning if "MiB" in w.value]
    n = len(minilm.codec.encode(text).ids)
    layer = 12 * n * n * 4  # MiniLM's 12 heads, float32
    want = 2 ** math.ceil(math.log2(8 * layer / 2**20))  # 8 layers' worth, in MiB
    # room for 3 such layers: it fits, but crowds out the page's other results
    monkeypatch.setattr(result_cache.CACHE, "max_bytes", 3 * layer)
    at.session_state["attn_layer"] = 1
    rerun(at)
    assert at.exception.len == 0
    assert [w.value for w in at.warning if "MiB" in w.value] == [
        f"This layer's maps take {layer / 2**20:,.0f} MiB of the {3 * layer / 2**20:,.0f} MiB "
        "result cache: the tabs' results push each other out of it, and views you return to "
        f"are computed again. Start the app with ATTENTION_STUDIO_CACHE_MB={want} (MiB) to "
        "keep them."]
    # more than the whole budget: never kept
    monkeypatch.setattr(result_cache.CACHE, "max_bytes", layer // 2)
    at.session_state["attn_layer"] = 2
    rerun(at)
    assert [w.value for w in at.warning if "MiB" in w.value][0].startswith(
        f"This layer's maps take {layer / 2**20:,.0f} MiB, more than the whole result cache")
    at.session_state["lang"] = "zh"
    rerun(at)
    assert any("超过整个结果缓存" in w.value for w in at.warning)


CACHED_PASS = """
import streamlit as st
from app_pages.shared.progress import computing
from tests.conftest import tiny
from tests.engine.test_contributions import loaded

@st.cache_resource
def model():
    return loaded(tiny("decoder", n_decoder_layers=3))

@st.cache_data
def tokens(text):
    return model().attend(text).tokens

with computing("Computing"):
    st.text(len(tokens("the cat sat")))
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_a_bar_drawn_inside_st_cache_data_replays(guarded, monkeypatch):
    """The bar lives outside the cached call (a placeholder made before it): its updates are
    written unrecorded, else the cache hit's replay cannot find the placeholder (control)."""
    if not guarded:
        monkeypatch.setattr(progress_ui, "_not_recorded", contextlib.nullcontext)
    st.cache_data.clear()
    at = AppTest.from_string(CACHED_PASS, default_timeout=60)
    at.run()
    assert at.exception.len == 0
    at.run()  # the hit
    if guarded:
        assert at.exception.len == 0 and at.text[0].value == "3"
    else:
        assert "created outside the function" in at.exception[0].value


def test_a_rerun_raised_by_the_bar_waits_for_the_pass():
    """A Streamlit stop/rerun raised by a bar update is held until the engine's pass is done
    (the pass completes and can be cached), then raised."""
    model = loaded(tiny("decoder", n_decoder_layers=3))

    class Raising:
        def progress(self, *args, **kwargs):
            raise StopException()

        def empty(self):
            pass

    with pytest.raises(StopException), progress_ui.computing("x") as bar:
        bar.slot = Raising()
        rec = model.attend("the cat sat")
        assert rec.tokens and bar.calls == 3  # every layer reported, the pass went on
    assert bar.held is not None


def test_the_variants_memory_tab_names_its_steps(said, monkeypatch):
    bars: list[progress_ui.StepBar] = []
    make = progress_ui.StepBar.__init__

    def keep(self, total):
        make(self, total)
        bars.append(self)

    monkeypatch.setattr(progress_ui.StepBar, "__init__", keep)
    monkeypatch.setattr(progress_ui.StepBar, "STEP_DELAY_S", 0.0)  # draw the bar every time
    at = app_helpers.open_page(VARIANTS, TIMEOUT, var_tab="Parameters & KV cache")
    assert at.exception.len == 0 and bars
    texts = bars[-1].texts
    trained = [n for n in ("seq2seq-mha", "seq2seq-gqa", "seq2seq-mqa")
               if engine.MODELS[n].is_installed()]
    if trained:
        assert texts[0] == f"Loading the {len(trained)} trained date models"
    assert sum(t.startswith("Counting the parameters of ") for t in texts) >= 3
    assert any(t.startswith("Measuring the KV cache of ") and "16–1,024 tokens" in t
               for t in texts)
    assert len(texts) == bars[-1].total
    assert [f"{t}…" for t in texts] == [s for s in said["spinner"] if s[:-1] in texts]
    steps = [p for p in said["progress"] if p and p.startswith("step")]
    assert steps == [f"step {k} of {len(texts)}" for k in range(1, len(texts) + 1)]
    said["progress"].clear()
    monkeypatch.setattr(progress_ui.StepBar, "STEP_DELAY_S", 60.0)
    rerun(at)  # served from caches within the delay: no bar flashes
    assert [p for p in said["progress"] if p and p.startswith("step")] == []


def test_count_tokens_matches_the_engine(minilm):
    text = long_text()
    c = count_tokens(minilm.codec, text)
    rec = minilm.attend(text, layers=[0], outputs=False)
    (cut,) = [n for n in rec.meta["notices"] if n.code == "truncated"]
    assert (c.n, c.kept, c.limit, c.cut) == (cut.args["had"], len(rec.tokens), 512, True)
    short = count_tokens(minilm.codec, "The cat sat.")
    assert (short.kept, short.cut, short.cut_at) == (short.n, False, None)
