"""Real-browser check of the Contributions tab: Playwright drives Debian's Chromium against
the app started with the README's command; it opens the tab for MiniLM layer 3 head 5, sees
three heatmaps drawn side by side (weights, norm, flow) beside the residual's column, hovers
a cell of the norm map and reads all three numbers, and takes the README's screenshot.

    ATTENTION_STUDIO_SAVE_SCREENSHOTS=1 .venv/bin/pytest -q -m browser \
        tests/browser/test_browser_contributions.py      # also refreshes docs/screenshots/
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.browser_helpers import ROOT, new_page, require_browser

STEP_TIMEOUT = 120_000  # ms

pytestmark = pytest.mark.browser

playwright_api = require_browser()

# the plot whose traces are the side-by-side maps: its first three traces are heatmaps
MAPS_PLOT = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).find(p =>
    (p.data || []).length === 4 && p.data.every(t => t.type === 'heatmap')
    && (p.layout.xaxis2 || {}).matches === 'x')"""


def wait_idle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')", timeout=STEP_TIMEOUT)


def choose(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_contributions_tab_shows_three_heatmaps(browser, app_url, tmp_path):
    page = new_page(browser, app_url, 1600, 1400)
    try:
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.js-plotly-plot .xtick text'))"
            ".some(t => t.textContent === 'animal')", timeout=STEP_TIMEOUT)
        choose(page, "Layer", "3")
        choose(page, "Head", "5")
        wait_idle(page)
        page.get_by_role("tab", name="Contributions").click()
        page.wait_for_function(f"() => !!({MAPS_PLOT})()", timeout=STEP_TIMEOUT)
        # drawn, not only sent: the three maps and the residual column as heatmap images
        page.wait_for_function(
            f"() => ({MAPS_PLOT})().querySelectorAll('.hm image').length === 4",
            timeout=STEP_TIMEOUT)
        titles = page.evaluate(
            f"() => Array.from(({MAPS_PLOT})().querySelectorAll('.annotation-text'))"
            ".map(t => t.textContent)")
        assert titles[:4] == ["weight", "norm ‖αWv‖", "flow share", "residual"]
        wait_idle(page)
        # hover a cell of the norm map: the label carries weight, norm and flow
        box = page.evaluate_handle(f"() => ({MAPS_PLOT})()").as_element().query_selector(
            ".xy2 .nsewdrag, .x2y2 .nsewdrag, .nsewdrag[data-subplot='x2y2']")
        if box is None:  # Plotly names the drag layer by subplot: take the second one
            box = page.evaluate_handle(
                f"() => ({MAPS_PLOT})().querySelectorAll('.nsewdrag')[1]").as_element()
        b = box.bounding_box()
        page.mouse.move(b["x"] + b["width"] * 0.3, b["y"] + b["height"] * 0.4)
        page.wait_for_function(
            "() => { const t = document.querySelector('.hoverlayer')?.textContent || '';"
            " return t.includes('weight') && t.includes('norm') && t.includes('flow'); }",
            timeout=STEP_TIMEOUT)
        page.mouse.move(5, 5)
        page.get_by_text("Flow across layers 0..3", exact=False).first.wait_for(
            timeout=STEP_TIMEOUT)
        wait_idle(page)
        shot = tmp_path / "contributions.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"\nscreenshot: {shot}")
        if os.environ.get("ATTENTION_STUDIO_SAVE_SCREENSHOTS"):
            dest = ROOT / "docs" / "screenshots"
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, dest / "contributions.png")
        assert page.dialogs == []
    finally:
        page.context.close()
