"""Hostile strings typed into every text input of every page (headless AppTest).

The inputs are found at run time (`at.text_input`, `at.text_area` of each view below), so a
text box added to a page later is driven too. Each gets: empty, whitespace, a pasted book
(100,000 characters), HTML/JS, Markdown and LaTeX fragments, and hostile Unicode. After every
run: no exception element; empty text gives a notice, not an error; the book gives a visible
truncation notice; the user's text never reaches a Markdown-rendered element (title, text,
caption, notice), figures label tokens only with escaped text, and token tables hold the
tokens literally.
"""

from __future__ import annotations

import ast
import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from engine.models.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
ATTENTION = "app_pages/attention/page.py"
TIMEOUT = 300

BOOK = ("It was the best of times, it was the worst of times; <b>$x$</b> **bold** 🙂 "
        * 1300)[:100_000]
MARKUP = ("<script>alert(1)</script> <img src=x onerror=alert(1)> **bold** __under__ `code` "
          "$$x^2$$ \\(y\\) # heading [link](javascript:alert(1)) {{7*7}} &amp; |a|b|")
UNICODE = "\x00NUL 👩‍👩‍👧‍👦 \u200fשלום\u202e עולם \ufeffe\u0301 中文 \x1b[31m \u2028x"
HOSTILE = {"empty": "", "whitespace": " \t \u3000 ", "book": BOOK, "markup": MARKUP,
           "unicode": UNICODE}
# Fragments of MARKUP/BOOK that must never appear in a Markdown-rendered element.
MARKUP_FRAGMENTS = ("<script", "onerror", "**bold**", "$$x^2$$", "javascript:", "$x$")
TRUNCATION = re.compile(r"cut to \d+|only the first \d+|truncat", re.IGNORECASE)


# ----------------------------------------------------------------------------- helpers

@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread for these many small runs (a second OpenMP thread spinning on a
    shared 2-core machine made them several times slower); put back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def app_pages() -> list[str]:
    """The page files app.py names (any string literal ending in .py) that exist now."""
    tree = ast.parse((ROOT / "app.py").read_text())
    names = [n.value for n in ast.walk(tree)
             if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and n.value.endswith(".py")]
    pages = [n if n.startswith("app_pages/") else f"app_pages/{n}" for n in names]
    return [p for p in dict.fromkeys(pages) if (ROOT / p).is_file()]


def open_app(page: str = ATTENTION, state: dict | None = None) -> AppTest:
    """The page as a user sees it: app.py (sidebar + navigation), then the page."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for k, v in {"device": "cpu", **(state or {})}.items():
        at.session_state[k] = v
    at.run()
    assert_no_exception(at)
    if page != ATTENTION:
        at.switch_page(page)
        at.run()
        assert_no_exception(at)
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def rendered_texts(at: AppTest) -> list[str]:
    """Text of every element Streamlit renders as Markdown."""
    out = []
    for group in (at.title, at.header, at.subheader, at.markdown, at.caption, at.info,
                  at.warning, at.error, at.success, at.toast):
        out += [str(e.value) for e in group]
    return out


def notices(at: AppTest) -> list[str]:
    return [str(e.value) for e in (*at.info, *at.warning, *at.error)]


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def spec_title(spec: dict) -> str:
    t = spec.get("layout", {}).get("title") or {}
    return t.get("text", "") if isinstance(t, dict) else str(t)


def plotly_array(value) -> np.ndarray:
    """A Plotly JSON array: a typed-array dict {dtype, bdata, shape} or a nested list."""
    if isinstance(value, dict) and "bdata" in value:
        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if value.get("shape"):
            a = a.reshape([int(s) for s in str(value["shape"]).split(",")])
        return a
    return np.asarray(value, dtype=float)


def _label_strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _label_strings(v)]
    return []


def assert_figures_label_tokens_as_text(at: AppTest) -> None:
    for spec in plotly_specs(at):
        labels = []
        for name, axis in spec.get("layout", {}).items():
            if name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
                labels += _label_strings(axis.get("ticktext"))
        for trace in spec.get("data", []):
            for attr in ("text", "customdata", "hovertext"):
                labels += [re.sub(r"</?b>|<br>", "", s) for s in _label_strings(trace.get(attr))]
        bad = [s for s in labels if re.search(r"[<>$\n]", s)]
        assert not bad, f"raw markup in figure labels: {bad[:5]}"


def shown_tokens(at: AppTest) -> list[str]:
    """Tokens the page lists as plain text: code blocks of `i:token` items and the cells of
    dataframe columns named like "token"."""
    out = []
    for code in at.code:
        for part in str(code.value).split("  "):
            m = re.fullmatch(r"(\d+):(.*)", part, flags=re.DOTALL)
            if m:
                out.append(m.group(2))
    for df in at.dataframe:
        value = df.value
        for col in getattr(value, "columns", []):
            if "token" in str(col):
                out += [str(v) for v in value[col]]
    return out


def check_run(at: AppTest, key: str, kind: str, where: str) -> list[str]:
    """Problems after typing HOSTILE[kind] into `key` (empty list: all good)."""
    problems = []
    if at.exception:
        return [f"{where}: exception {[e.value for e in at.exception]}"]
    if at.get("html"):
        problems.append(f"{where}: raw HTML element on the page")
    text = HOSTILE[kind]
    if kind in ("empty", "whitespace") and not notices(at):
        problems.append(f"{where}: no notice for {kind} text")
    if kind == "book" and not any(TRUNCATION.search(n) for n in notices(at)):
        problems.append(f"{where}: no visible truncation notice for a 100,000-character text "
                        f"(notices: {notices(at)})")
    if kind in ("markup", "book"):
        leaked = [(f, t[:120]) for t in rendered_texts(at) for f in MARKUP_FRAGMENTS
                  if f in t and f in text]
        if leaked:
            problems.append(f"{where}: user text inside a Markdown element: {leaked[:3]}")
    try:
        assert_figures_label_tokens_as_text(at)
    except AssertionError as exc:
        problems.append(f"{where}: {exc}")
    return problems


# Views: (page, state that shows the inputs, the text input keys expected there). Inputs
# found beyond the expected ones are driven too; the expectation only guards that the
# setup really shows the inputs it is meant to.
def views() -> list:
    def have(name):
        return name in MODELS and MODELS[name].is_installed()

    out = [
        ("attention", ATTENTION, {}, {"attn_text"}),
        ("attention-transformer-base", ATTENTION, {"attn_model": "transformer-base"},
         {"attn_text", "attn_target"}),
        ("masks-padding", "app_pages/masks/page.py", {"masks_mode": "padding"},
         {"masks_text", "masks_text2"}),
        ("variants-trained", "app_pages/variants/page.py", {}, set()),
        ("variants-minilm", "app_pages/variants/page.py", {"var_tab": "MiniLM in G groups"},
         {"var_text"} if have("minilm") else set()),
        ("positions", "app_pages/positions/page.py", {}, set()),
        ("steps", "app_pages/steps/page.py", {}, set()),
        ("census-upload", "app_pages/census/page.py", {"census_source": "upload"},
         {"census_field"}),
    ]
    if not have("minilm"):
        out = [v for v in out if v[0] not in ("attention", "masks-padding")]
    pages = set(app_pages())
    return [pytest.param(*v[1:], id=v[0]) for v in out if v[1] in pages]


# Known gaps, reported to the lead (see docs/hostile.md): inputs whose truncation is silent.
SILENT_TRUNCATION: dict = {}  # (page, input key) → known silent cut; none remain


@pytest.mark.slow
@pytest.mark.parametrize("page, state, expected", views())
def test_every_text_input_survives_hostile_strings(page, state, expected):
    at = open_app(page, state)
    keys = [w.key for w in (*at.text_input, *at.text_area) if w.key]
    assert expected <= set(keys), f"the view does not show {expected - set(keys)}: {keys}"
    problems, known = [], []
    for key in keys:
        for kind, text in HOSTILE.items():
            widget = next(w for w in (*at.text_input, *at.text_area) if w.key == key)
            widget.set_value(text)
            at.run()
            found = check_run(at, key, kind, f"{key}={kind}")
            gap = SILENT_TRUNCATION.get((page, key))
            if gap and kind == "book":
                known += [p for p in found if "truncation" in p]
                found = [p for p in found if "truncation" not in p]
            problems += found
            if at.exception:  # start over from a clean session for the next string
                at = open_app(page, state)
        # restore a normal sentence so the next input is driven on a working page
        widget = next(w for w in (*at.text_input, *at.text_area) if w.key == key)
        widget.set_value("The cat sat on the mat.")
        at.run()
        assert_no_exception(at)
    assert not problems, "\n".join(problems)
    if known:  # everything else passed; the known silent truncation remains
        pytest.xfail("known gap (reported): " + "; ".join(
            sorted({SILENT_TRUNCATION[(page, k)] for k in keys if (page, k) in SILENT_TRUNCATION})))


@pytest.mark.skipif(not MODELS["minilm"].is_installed(), reason="minilm is not installed")
def test_attention_tokens_are_shown_literally():
    """The token list holds `<`, `script`, `$` as typed; the heatmap's ticks escape them."""
    at = open_app()
    at.text_area(key="attn_text").set_value(MARKUP)
    at.run()
    assert_no_exception(at)
    tokens = shown_tokens(at)
    assert {"<", "script", ">", "$", "*"} <= set(tokens), tokens[:40]
    ticks = [t for s in plotly_specs(at)
             for t in _label_strings(s["layout"].get("xaxis", {}).get("ticktext"))]
    assert "&lt;" in ticks and "&#36;" in ticks and "<" not in ticks


def test_the_views_cover_every_page():
    covered = {v.values[0] for v in views()}
    assert covered == set(app_pages()), set(app_pages()) - covered


def test_the_checks_catch_what_they_ban():
    """A control: a script that renders user text as Markdown, puts raw `<` in a tick label
    and shows no notices is caught on every count."""
    script = (
        "import streamlit as st, plotly.graph_objects as go\n"
        "text = st.text_input('Text', key='t')\n"
        "st.markdown(text)\n"
        "fig = go.Figure(go.Heatmap(z=[[1]]))\n"
        "fig.update_xaxes(tickmode='array', tickvals=[0], ticktext=['<script>'])\n"
        "st.plotly_chart(fig)\n"
    )
    at = AppTest.from_string(script, default_timeout=60)
    at.run()
    at.text_input(key="t").set_value(MARKUP)
    at.run()
    found = " | ".join(check_run(at, "t", "markup", "control"))
    assert "Markdown element" in found and "raw markup in figure labels" in found, found
    at.text_input(key="t").set_value(BOOK)
    at.run()
    assert "no visible truncation notice" in " | ".join(check_run(at, "t", "book", "c"))
    at.text_input(key="t").set_value("")
    at.run()
    assert "no notice for empty text" in " | ".join(check_run(at, "t", "empty", "c"))
