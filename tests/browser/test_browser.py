"""Real-browser suite: Playwright drives Debian's Chromium against the app started with the
README's command (`streamlit run app.py`). It types a sentence, changes layer and head,
toggles a mask, switches language, saves screenshots, and checks that a token written as
HTML (`<img src=x onerror=alert(1)>`) is shown as text and runs nothing.

    .venv/bin/pytest -q -m browser tests/browser/test_browser.py
Screenshots go to a temporary directory (printed) and one is copied to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.browser_helpers import ROOT, new_page, require_browser

HOSTILE = "<img src=x onerror=alert(1)>"
STEP_TIMEOUT = 120_000  # ms

pytestmark = pytest.mark.browser

playwright_api = require_browser()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots: {d}")
    return d


@pytest.fixture
def page(browser, app_url):
    pg = new_page(browser, app_url, 1500, 1500)
    wait_tick(pg, "animal")
    yield pg
    pg.context.close()


# ----------------------------------------------------------------------------- helpers

def wait_tick(page, text: str, axis: str = "xtick") -> None:
    """Until a drawn Plotly tick label reads `text` (the figure was redrawn)."""
    page.wait_for_function(
        "([cls, w]) => Array.from(document.querySelectorAll(`.js-plotly-plot .${cls} text`))"
        ".some(t => t.textContent === w)", arg=[axis, text], timeout=STEP_TIMEOUT)


def wait_title(page, text: str) -> None:
    page.wait_for_function(
        "w => Array.from(document.querySelectorAll('.js-plotly-plot .gtitle'))"
        ".some(t => t.textContent.includes(w))", arg=text, timeout=STEP_TIMEOUT)


def wait_idle(page) -> None:
    """Until the script run is over: no 'running' indicator and no stale (faded) element."""
    page.wait_for_timeout(300)  # the indicator appears a moment after the action
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')",
        timeout=STEP_TIMEOUT)


def type_text(page, label: str, text: str) -> None:
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(text)
    box.press("Control+Enter")  # the Attention page's text area applies on Ctrl+Enter


def choose(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


# ----------------------------------------------------------------------------- tests

def test_type_sentence_change_layer_and_head(page, shots):
    type_text(page, "Text", "Attention lets every token look at every other token.")
    wait_tick(page, "lets")
    choose(page, "Layer", "3")
    wait_title(page, "encoder.self.3 · head 0")
    choose(page, "Head", "5")
    wait_title(page, "encoder.self.3 · head 5")
    wait_idle(page)
    page.screenshot(path=str(shots / "attention_head.png"), full_page=True)
    if os.environ.get("ATTENTION_STUDIO_SAVE_SCREENSHOTS"):  # refresh the README's pictures
        dest = ROOT / "docs" / "screenshots"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / "attention_head.png", dest / "attention_head.png")
    page.get_by_role("tab", name="Model view").click()
    page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot .hm image').length >= 72",
        timeout=STEP_TIMEOUT)
    wait_idle(page)
    page.screenshot(path=str(shots / "attention_model_view.png"), full_page=True)
    if os.environ.get("ATTENTION_STUDIO_SAVE_SCREENSHOTS"):
        shutil.copy(shots / "attention_model_view.png", dest / "attention_model_view.png")
    # clicking a thumbnail opens that head in the Head tab
    target = page.locator(".js-plotly-plot .scatterlayer .point").nth(30)
    box = target.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "() => (document.querySelector('.hoverlayer')?.textContent || '').includes('open')",
        timeout=STEP_TIMEOUT)
    label = page.locator(".hoverlayer").text_content()
    layer, head = re.search(r"L(\d+) H(\d+)", label).groups()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_title(page, f"encoder.self.{layer} · head {head}")


def test_toggle_a_mask(page, shots):
    if not (ROOT / "app_pages" / "masks" / "page.py").exists():
        pytest.skip("app_pages/masks/page.py is not written yet")
    page.locator('[data-testid="stSidebarNav"] a', has_text="Masks").click()
    page.get_by_text("Masks: which keys may a query read?").wait_for(timeout=STEP_TIMEOUT)
    wait_title(page, "head 0")
    wait_idle(page)
    page.get_by_text("causal (no future keys)", exact=True).click()
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".some(p => (p.data || []).some(t => (t.name || '').includes('masked')))",
        timeout=STEP_TIMEOUT)
    wait_idle(page)
    page.screenshot(path=str(shots / "masks_causal.png"), full_page=True)


def test_switch_language(page, shots):
    page.locator('[data-testid="stSidebar"]').get_by_text("中文", exact=True).click()
    page.get_by_text("每个注意力头在看哪里?").wait_for(timeout=STEP_TIMEOUT)
    page.get_by_role("tab", name="模型总览").wait_for(timeout=STEP_TIMEOUT)
    page.get_by_text("行是查询词元", exact=False).wait_for(timeout=STEP_TIMEOUT)
    wait_idle(page)
    page.screenshot(path=str(shots / "attention_zh.png"), full_page=True)
    page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True).click()
    page.get_by_text("Where does each head look?").wait_for(timeout=STEP_TIMEOUT)


def test_html_token_stays_inert(page, shots):
    type_text(page, "Text", HOSTILE)
    wait_tick(page, "alert")
    wait_tick(page, "<")  # Plotly shows the escaped '<' as a literal character
    wait_idle(page)
    page.wait_for_timeout(1500)  # give any injected handler time to fire
    assert page.dialogs == []
    assert page.locator('img[src="x"]').count() == 0
    page.screenshot(path=str(shots / "hostile.png"), full_page=True)


def test_variants_page_renders(page, shots):
    page.locator('[data-testid="stSidebarNav"] a', has_text="Variants").click()
    page.get_by_text("MHA, GQA and MQA", exact=True).wait_for(timeout=STEP_TIMEOUT)
    page.wait_for_selector(".js-plotly-plot", timeout=STEP_TIMEOUT)
    wait_idle(page)
    page.screenshot(path=str(shots / "variants.png"), full_page=True)
