"""Every palette looks on screen as in the exported file: the colour scale the page's Plotly
received (after Streamlit's front end rewrote the figure's JSON) equals the figure's.

Streamlit's Plotly front end swaps the literal colours #000001-#000040 for its theme's, so
magma's darkest stop `#000004` used to reach the browser as another colour while exports,
drawn on the server, kept it.

    .venv/bin/pytest -q -m browser tests/browser/test_browser_palettes.py
"""

from __future__ import annotations

import plotly.colors as pcolors
import pytest

from app_pages.shared.sidebar import PALETTES
from tests.browser_helpers import new_page, require_browser

STEP_TIMEOUT = 120_000  # ms

pytestmark = pytest.mark.browser

require_browser()


def as_rgb(color: str) -> tuple[int, int, int]:
    """'#rrggbb' or 'rgb(r, g, b)' → (r, g, b)."""
    if color.startswith("#"):
        return tuple(int(v) for v in pcolors.hex_to_rgb(color))
    return tuple(int(round(float(v))) for v in pcolors.unlabel_rgb(color)[:3])


def exported_scale(name: str) -> list[tuple[float, tuple[int, int, int]]]:
    """The stops an export draws: Plotly's own scale of that name, read independently of
    viz.style."""
    return [(round(float(p), 6), as_rgb(c)) for p, c in pcolors.get_colorscale(name)]


def screen_scale(page) -> list[tuple[float, tuple[int, int, int]]]:
    """The first heatmap's colour scale as the page's Plotly holds it."""
    scale = page.evaluate(
        "() => { for (const p of document.querySelectorAll('.js-plotly-plot'))"
        " for (const t of (p.data || [])) if (t.type === 'heatmap' && t.colorscale)"
        " return t.colorscale; return null; }")
    assert scale, "no heatmap with a colour scale on the page"
    return [(round(float(p), 6), as_rgb(c)) for p, c in scale]


def test_every_palette_reaches_the_screen_as_exported(browser, app_url):
    page = new_page(browser, app_url, 1500, 1200)
    try:
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".some(p => (p.data || []).some(t => t.type === 'heatmap'))", timeout=STEP_TIMEOUT)
        sidebar = page.locator('[data-testid="stSidebar"]')
        for name in PALETTES:
            box = sidebar.get_by_role("combobox", name="Colour scale", exact=True)
            box.click()
            page.get_by_role("option", name=name, exact=True).click()
            want = exported_scale(name)
            # until the redrawn heatmap carries this palette's number of stops and last stop
            page.wait_for_function(
                "([n, last]) => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                ".some(p => (p.data || []).some(t => t.type === 'heatmap' && t.colorscale"
                " && t.colorscale.length === n"
                " && JSON.stringify(t.colorscale[n - 1][1]) === JSON.stringify(last)))",
                arg=[len(want), _last_stop(name)], timeout=STEP_TIMEOUT)
            assert screen_scale(page) == want, name
    finally:
        page.context.close()


def _last_stop(name: str) -> str:
    from viz.style import Style, colorscale

    return colorscale(Style(palette=name))[-1][1]
