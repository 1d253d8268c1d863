"""Rough edges of issue 18 in a real browser: a model-view thumbnail opens its head when
clicked near its corner (not only at its centre), and the page asks nothing of any other
origin than the app's own (it must work offline).

    .venv/bin/pytest -q -m browser tests/browser/test_browser_rough_edges.py
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from tests.browser_helpers import new_page, require_browser

STEP_TIMEOUT = 120_000  # ms

pytestmark = pytest.mark.browser

require_browser()


def test_thumbnail_opens_when_clicked_near_its_corner(browser, app_url):
    page = new_page(browser, app_url, 1500, 1500)
    try:
        page.get_by_role("tab", name="Model view").click(timeout=STEP_TIMEOUT)
        page.wait_for_function(
            "() => document.querySelectorAll('.js-plotly-plot .hm image').length >= 72",
            timeout=STEP_TIMEOUT)
        target = page.locator(".js-plotly-plot .scatterlayer .point").nth(30)
        box = target.bounding_box()
        assert box["width"] > 60, box  # the target spans the thumbnail
        x, y = box["x"] + 0.25 * box["width"], box["y"] + 0.25 * box["height"]  # off-centre
        page.mouse.move(x, y)
        page.wait_for_function(
            "() => (document.querySelector('.hoverlayer')?.textContent || '').includes('open')",
            timeout=STEP_TIMEOUT)
        layer, head = re.search(r"L(\d+) H(\d+)", page.locator(".hoverlayer").text_content()
                                ).groups()
        page.mouse.click(x, y)
        page.wait_for_function(
            "w => Array.from(document.querySelectorAll('.js-plotly-plot .gtitle'))"
            ".some(t => t.textContent.includes(w))", arg=f"encoder.self.{layer} · head {head}",
            timeout=STEP_TIMEOUT)
    finally:
        page.context.close()


def test_no_request_leaves_the_machine(browser, app_url):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    own = urlparse(app_url).netloc
    elsewhere = []
    ctx.on("request", lambda r: elsewhere.append(r.url)
           if urlparse(r.url).scheme in ("http", "https", "ws", "wss")
           and urlparse(r.url).netloc != own else None)
    page = ctx.new_page()
    try:
        page.goto(app_url)
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".some(p => (p.data || []).some(t => t.type === 'heatmap'))", timeout=STEP_TIMEOUT)
        page.wait_for_timeout(2000)  # late fonts and icons
        assert elsewhere == [], elsewhere
    finally:
        ctx.close()
