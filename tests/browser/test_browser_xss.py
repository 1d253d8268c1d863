"""A real browser against the real server: hostile HTML typed into the Attention page runs
nothing and is shown as text, and four sessions at once each get their own sentence.

The app starts with the README's command (`.venv/bin/streamlit run app.py`, headless, on a
free port) and Playwright drives Debian's Chromium (never a downloaded browser):

    .venv/bin/pytest -q tests/browser/test_browser_xss.py
"""

from __future__ import annotations

import pytest

from tests.browser_helpers import new_page, require_browser

XSS = "<img src=x onerror=alert(1)>"
STEP = 120_000  # ms

pytestmark = [pytest.mark.browser, pytest.mark.slow]

sync_api = require_browser()


@pytest.fixture(scope="module")
def minilm_tokens():
    import engine

    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("the Attention page opens on minilm, which is not installed")
    codec = engine.load("minilm", device="cpu").codec
    return lambda text: codec.encode(text).tokens


def open_page(browser, url):
    page = new_page(browser, url, 1400, 1000)
    page.wait_for_selector(".js-plotly-plot .xtick text", timeout=STEP)
    return page


def type_text(page, text: str) -> None:
    box = page.get_by_role("textbox", name="Text", exact=True)
    box.fill(text)
    box.press("Control+Enter")  # the Attention page's text area applies on Ctrl+Enter


def wait_for_tick(page, token: str) -> None:
    page.wait_for_function(
        "t => Array.from(document.querySelectorAll('.js-plotly-plot .xtick text'))"
        ".some(e => e.textContent === t)", arg=token, timeout=STEP)


def wait_for_ticks_within(page, allowed: list[str]) -> None:
    """Until every drawn x tick is one of `allowed` (the previous run's figure is gone)."""
    page.wait_for_function(
        "ok => { const t = Array.from(document.querySelectorAll('.js-plotly-plot .xtick text'))"
        ".map(e => e.textContent); return t.length > 0 && t.every(x => ok.includes(x)); }",
        arg=allowed, timeout=STEP)


def x_ticks(page) -> list[str]:
    return page.eval_on_selector_all(
        ".js-plotly-plot .xtick text", "els => els.map(e => e.textContent)")


def test_html_typed_into_the_text_box_runs_nothing_and_shows_as_text(browser, app_url,
                                                                     minilm_tokens):
    page = open_page(browser, app_url)
    try:
        type_text(page, XSS)
        expected = minilm_tokens(XSS)
        wait_for_tick(page, "##rro")  # the heatmap now shows the typed text's tokens
        wait_for_ticks_within(page, expected)
        page.wait_for_timeout(1500)  # time for any injected handler to fire
        assert page.dialogs == [], page.dialogs
        assert page.locator('img[src="x"]').count() == 0
        ticks = x_ticks(page)
        assert "<" in ticks and ">" in ticks  # literal characters, not markup
        assert set(ticks) <= set(expected), (ticks, expected)
        # the token list (plain text in a code block) holds them literally too
        page.get_by_text("Tokens (", exact=False).first.click()
        code = page.locator('[data-testid="stExpander"] code').first
        code.wait_for(timeout=STEP)
        assert "1:<" in code.inner_text() and "16:>" in code.inner_text()
        assert page.dialogs == []
        # control: the listener does see a dialog when script really runs one
        page.evaluate("setTimeout(() => alert('control'), 0)")
        page.wait_for_timeout(500)
        assert page.dialogs == ["control"]
    finally:
        page.context.close()


def test_four_concurrent_sessions_each_get_their_own_sentence(browser, app_url, minilm_tokens):
    sentences = {"cat": "One cat sat.", "dogs": "Two dogs ran far away.",
                 "birds": "Three birds sang at dawn today.",
                 "fish": "Four fish swam in the cold blue lake."}
    pages = {w: open_page(browser, app_url) for w in sentences}
    try:
        for word, page in pages.items():  # typed back to back: the runs overlap
            type_text(page, sentences[word])
        for word, page in pages.items():
            wait_for_tick(page, word)
            wait_for_ticks_within(page, minilm_tokens(sentences[word]))
            ticks = x_ticks(page)
            assert set(ticks) <= set(minilm_tokens(sentences[word])), (word, ticks)
            others = {w for w in sentences if w != word}
            assert not others & set(ticks), (word, ticks)
            assert page.dialogs == []
    finally:
        for page in pages.values():
            page.context.close()
