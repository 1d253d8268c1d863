"""A real browser: a long input's map arrives as one image (one pixel a cell, no array of
numbers), and hovering it shows the exact query token, key token and weight of the cell
under the pointer, before and after zooming in.

    .venv/bin/pytest -q tests/browser/test_browser_image_map.py
"""

from __future__ import annotations

import re
import time

import pytest

from tests.browser_helpers import new_page, require_browser
from viz.style import visible_token

STEP = 180_000  # ms: the machine is shared and busy
pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_browser()

TEXT = " ".join(["the quick brown fox jumps over the lazy dog"] * 25)  # 227 MiniLM tokens
IMAGE_PLOT = ("() => [...document.querySelectorAll('.js-plotly-plot')].some(g => g.data && "
              "g.data[0].type === 'image' && g.querySelector('g.imagelayer image'))")


@pytest.fixture(scope="module")
def minilm():
    import engine

    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("the Attention page opens on minilm, which is not installed")
    return engine.load("minilm", device="cpu")


def readout_at(page, plot, fx: float, fy: float, timeout_s: float = 60.0) -> str:
    """Move the pointer to (fx, fy) of the plot area, as a reader's hand does (a little,
    again and again: Plotly hovers on movement, and the readout attaches once its weights
    have arrived), and read the readout's text."""
    area = plot.locator(".nsewdrag").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    tip = page.locator("#attn-readout-tip")
    deadline = time.time() + timeout_s
    step = 0
    while time.time() < deadline:
        step += 1
        dx = 0.01 * (step % 2)  # to another cell: Plotly reports a hover when its cell changes
        page.mouse.move(box["x"] + box["width"] * (fx + dx), box["y"] + box["height"] * fy)
        time.sleep(0.3)
        if tip.count() and tip.is_visible() and "weight " in tip.inner_text():
            return tip.inner_text()  # (before, the weights are still arriving)
    state = page.evaluate("() => JSON.stringify({hooks: !!window.__attnReadout, maps: "
                          "window.__attnReadout && Object.keys(window.__attnReadout.maps), "
                          "hooked: [...document.querySelectorAll('.js-plotly-plot')]"
                          ".map(g => !!g.__attnHooked)})")
    raise AssertionError(f"no readout after {timeout_s:.0f} s of hovering: {state} {box}")


def check(text: str, rec, tokens) -> None:
    m = re.search(r"query (\d+): (.*)\nkey (\d+): (.*)\nweight ([0-9.e+-]+)", text)
    assert m, text
    q, k = int(m.group(1)), int(m.group(3))
    assert m.group(2) == tokens[q] and m.group(4) == tokens[k]
    assert float(m.group(5)) == pytest.approx(float(rec[q, k]), rel=1e-5, abs=1e-9)


def test_long_map_is_an_image_with_exact_hover_at_any_zoom(browser, app_url, minilm):
    page = new_page(browser, app_url, 1400, 1100)
    page.wait_for_selector(".js-plotly-plot .xtick text", timeout=STEP)
    box = page.get_by_role("textbox", name="Text", exact=True)
    box.fill(TEXT)
    box.press("Control+Enter")
    page.wait_for_function(IMAGE_PLOT, timeout=STEP, polling=200)
    gd = page.locator(".js-plotly-plot").filter(has=page.locator("g.imagelayer image")).first
    kinds = gd.evaluate("g => g.data.map(t => t.type + ':' + (t.z ? 'z' : '-'))")
    assert kinds[0] == "image:-"  # the map is an image source, not a z array
    src = gd.evaluate("g => g.data[0].source")
    assert src.startswith("data:image/png;base64,")
    rec = minilm.attend(TEXT, layers=["encoder.self.0"])
    w = rec["encoder.self.0"][0]
    tokens = [visible_token(t) for t in rec.axis_labels("encoder.self.0")[0]]
    check(readout_at(page, gd, 0.6, 0.7), w, tokens)
    # zoom in with a drag over a small box, then read a cell there
    area = gd.locator(".nsewdrag").first
    b = area.bounding_box()
    page.mouse.move(b["x"] + b["width"] * 0.30, b["y"] + b["height"] * 0.30)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] * 0.36, b["y"] + b["height"] * 0.36, steps=5)
    page.mouse.up()
    page.wait_for_function("g => g._fullLayout.xaxis.range[1] - g._fullLayout.xaxis.range[0]"
                           " < 40", arg=gd.element_handle(), timeout=STEP)
    check(readout_at(page, gd, 0.5, 0.5), w, tokens)
    # the same map redrawn (linear colours): its weights are not sent again, and are reused
    page.evaluate("() => { window.__w0 = window.__attnReadout.maps.attn_heatmap.weights; }")
    page.get_by_text("Log colour scale").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')].some(g => g.data && "
        "g.data[1] && g.data[1].marker && !(g.data[1].marker.colorbar.title.text || '')"
        ".includes('log'))", timeout=STEP, polling=200)
    gd = page.locator(".js-plotly-plot").filter(has=page.locator("g.imagelayer image")).first
    check(readout_at(page, gd, 0.4, 0.6), w, tokens)
    assert page.evaluate("() => window.__attnReadout.maps.attn_heatmap.weights === window.__w0")
