"""A real browser: a long text pasted into the Attention page's text area applies on
Ctrl+Enter, the count under it follows, and the opened token list stays a box of fixed
height (4,446 tokens once made the page 9,000 px long).

    .venv/bin/pytest -q tests/browser/test_browser_long_input.py
"""

from __future__ import annotations

import pytest

from tests.browser_helpers import new_page, require_browser

STEP = 180_000  # ms: the machine is shared and busy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

sync_api = require_browser()

LONG = " ".join(f"word{i} is here." for i in range(300))  # 1,730 MiniLM tokens


@pytest.fixture(scope="module")
def minilm():
    import engine

    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("the Attention page opens on minilm, which is not installed")
    return engine.load("minilm", device="cpu")


def test_a_long_paste_applies_on_ctrl_enter_and_the_token_list_scrolls(browser, app_url,
                                                                       minilm):
    page = new_page(browser, app_url, 1400, 1000)
    page.wait_for_selector(".js-plotly-plot .xtick text", timeout=STEP)
    box = page.get_by_role("textbox", name="Text", exact=True)
    assert box.evaluate("e => e.tagName") == "TEXTAREA"
    n = minilm.codec.encode(LONG).n_original
    box.fill(LONG)
    box.press("Control+Enter")
    page.get_by_text(f"{n:,} tokens · minilm reads up to 512").wait_for(timeout=STEP)
    page.get_by_text("Over the limit: minilm reads the first 512", exact=False).wait_for(
        timeout=STEP)
    page.get_by_text("Tokens (512)").click()  # open the token list
    tokens = page.locator(".st-key-attn_token_list")
    tokens.get_by_text("511:[SEP]", exact=False).wait_for(timeout=STEP)
    height = tokens.evaluate("e => e.getBoundingClientRect().height")
    inner = tokens.evaluate("e => e.scrollHeight")
    assert height <= 270, height  # the fixed box (260 px), not the list's own height
    assert inner > 2 * height, (inner, height)  # the list is long: it scrolls inside the box
