"""Every figure and table of every page in 中文 carries no untranslated interface word.

An AppTest sweep opens each page (and each tab of the pages with tabs) under 中文, reads
every figure the page sent (title, axis titles, colour-bar titles, subplot titles, legend
names) and every table's column names, and looks for English words from a list of the
interface's words. Token text, model names and formulas are not words of the interface and
are not scanned (tick labels are tokens; hover templates are left out).

The same sweep under English checks that the pages still run and draw.
"""

from __future__ import annotations

import json
import re

import pytest

import engine
from app_pages.attention.text import ATTENTION_TEXT
from app_pages.positions.text import POSITIONS_TEXT
from app_pages.variants.text import VARIANTS_TEXT
from tests import app_helpers

TIMEOUT = 300

# English words of the interface that must not survive in 中文 (whole words, any case).
ENGLISH_UI = (
    "query", "queries", "key", "keys", "value", "values", "weight", "weights", "mean", "head",
    "heads", "layer", "layers", "dimension", "rollout", "scores", "score", "cache", "formula",
    "measured", "generation", "step", "token", "tokens", "probability", "model", "intact",
    "position", "positions", "similarity", "bias", "slope", "entropy", "distance", "latency",
    "parameters", "bytes", "block", "blocks", "overview", "masked", "mask", "decoder",
    "encoder", "source", "sequence", "length", "output", "outputs", "exact", "seed", "seconds",
    "median", "speed", "device", "bandwidth", "memory", "share", "previous", "first", "self",
    "cross", "attention", "keys", "per", "and", "of", "the", "top",
)
WORD = re.compile(r"[A-Za-z][A-Za-z_]*")


def english_words(text: str) -> set[str]:
    """The interface words of ENGLISH_UI in `text` (snake_case parts count as words)."""
    found = set()
    for w in WORD.findall(text or ""):
        for part in w.lower().split("_"):
            if part in ENGLISH_UI:
                found.add(part)
    return found


def figure_words(spec: dict) -> list[str]:
    """The interface text of one Plotly spec: titles, axis and colour-bar titles, subplot
    titles (annotations), legend names of traces shown in the legend."""
    out = []
    layout = spec.get("layout", {})

    def text_of(t):
        if isinstance(t, dict):
            return t.get("text", "")
        return t if isinstance(t, str) else ""

    out.append(text_of(layout.get("title")))
    for k, v in layout.items():
        if isinstance(v, dict):
            if re.match(r"[xy]axis\d*$", k):
                out.append(text_of(v.get("title")))
            if k.startswith("coloraxis"):
                out.append(text_of((v.get("colorbar") or {}).get("title")))
    for a in layout.get("annotations", []) or []:
        if not a.get("xref", "").startswith("x") or a.get("xref") == "paper":
            out.append(a.get("text", ""))
    for t in spec.get("data", []):
        out.append(text_of((t.get("colorbar") or {}).get("title")))
        out.append(text_of(((t.get("marker") or {}).get("colorbar") or {}).get("title")))
        if t.get("showlegend", True) is not False and t.get("name"):
            out.append(t["name"])
    return [o for o in out if o]


def table_words(at) -> list[str]:
    cols = []
    for df in at.dataframe:
        value = df.value
        cols += [str(c) for c in getattr(value, "columns", [])]
        if getattr(value, "index", None) is not None and value.index.name:
            cols.append(str(value.index.name))
    return cols


def untranslated(at) -> dict[str, set[str]]:
    """{text: its English interface words} over every figure and table on the page."""
    bad = {}
    for el in at.get("plotly_chart"):
        for text in figure_words(json.loads(el.proto.spec)):
            if words := english_words(text):
                bad[text] = words
    for text in table_words(at):
        if words := english_words(text):
            bad[f"[column] {text}"] = words
    for ms in at.multiselect:  # Streamlit's own "Choose options" unless the page says it
        if not ms.proto.placeholder or re.search(r"choose|options", ms.proto.placeholder, re.I):
            bad[f"[placeholder] {ms.label}"] = {"choose options"}
    return bad


def zh(table: dict, key: str) -> str:
    return table[key][1]


PAGES = [  # (page, tab state key, tab labels in 中文)
    ("app_pages/attention/page.py", "attn_tab",
     [zh(ATTENTION_TEXT, k) for k in ("tab_head", "tab_model", "tab_lines", "tab_qk",
                                      "tab_metrics", "tab_agg", "tab_ablation")]),
    ("app_pages/masks/page.py", None, [None]),
    ("app_pages/variants/page.py", "var_tab",
     [zh(VARIANTS_TEXT, k) for k in ("tab_trained", "tab_minilm", "tab_memory", "tab_latency",
                                     "tab_gpu")]),
    ("app_pages/positions/page.py", "pos_tab",
     [zh(POSITIONS_TEXT, k) for k in ("tab_sin", "tab_learned", "tab_rope", "tab_alibi")]),
    ("app_pages/steps/page.py", None, [None]),
]


@pytest.fixture(scope="module")
def minilm():
    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("minilm is not installed")
    return engine.load("minilm", device="cpu")


def test_english_words_finds_what_it_should():
    assert english_words("mean weight") == {"mean", "weight"}
    assert english_words("mean_abs_delta") == {"mean"}
    assert not english_words("注意力权重(softmax 之后)") and not english_words("MHA / GQA")


@pytest.mark.parametrize("page,tab_key,tabs", PAGES, ids=[p[0].split("/")[1] for p in PAGES])
def test_every_figure_and_table_is_in_chinese(minilm, page, tab_key, tabs):
    at = app_helpers.open_page(page, TIMEOUT, lang="zh")
    bad = {}
    drawn = 0
    for label in tabs:
        if label is not None:
            app_helpers.open_tab(at, tab_key, label)
        drawn += len(at.get("plotly_chart")) + len(at.dataframe)
        for text, words in untranslated(at).items():
            bad[f"{label or page}: {text}"] = words
    assert drawn, "the sweep saw no figure and no table"
    assert not bad, "\n".join(f"{t!r}: {sorted(w)}" for t, w in bad.items())


def test_model_descriptions_are_in_chinese(minilm):
    from app_pages.shared.models import SUMMARY_ZH

    at = app_helpers.open_page("app_pages/attention/page.py", TIMEOUT, lang="zh")
    options = at.selectbox(key="attn_model").options
    assert options
    for option in options:
        name, _, summary = option.partition(" — ")
        if name in SUMMARY_ZH:
            assert summary == SUMMARY_ZH[name]
            assert re.search(r"[\u4e00-\u9fff]", summary)
