"""Palettes survive Streamlit's front end: no colour of any scale a figure uses is one of the
literal strings Streamlit rewrites (#000001-#000040), and each stop is still the same colour.

The swapped set is read from Streamlit's own bundled PlotlyChart script when it is here, so
the test follows Streamlit upgrades instead of trusting viz's list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import plotly.colors as pcolors
import pytest

from app_pages.shared.sidebar import PALETTES
from viz.figures.heatmap import head_heatmap
from viz.style import SEQUENTIAL, Style, colorscale


def swapped_by_streamlit() -> set[str]:
    """The colour literals Streamlit's Plotly front end replaces (from its bundled JS)."""
    import streamlit

    js = Path(streamlit.__file__).parent / "static" / "static" / "js"
    found: set[str] = set()
    for f in js.glob("PlotlyChart*.js"):
        text = f.read_text(errors="replace")
        for m in re.finditer(r"function \w+\(e,t,n\)\{let ((?:\w=`#[0-9a-fA-F]{6}`,?)+);", text):
            found |= {c.lower() for c in re.findall(r"#[0-9a-fA-F]{6}", m.group(1))}
    return found


def as_rgb(color: str) -> tuple[int, int, int]:
    if color.startswith("#"):
        return tuple(int(v) for v in pcolors.hex_to_rgb(color))
    return tuple(int(round(float(v))) for v in pcolors.unlabel_rgb(color)[:3])


def test_streamlit_swaps_magmas_darkest_stop():
    swapped = swapped_by_streamlit()
    if not swapped:
        pytest.skip("Streamlit's PlotlyChart bundle was not found")
    assert "#000004" in swapped  # the reason for screen_safe_color
    assert pcolors.get_colorscale("magma")[0][1] == "#000004"


@pytest.mark.parametrize("name", sorted({*PALETTES, *SEQUENTIAL, "puor"}))
def test_no_stop_is_rewritten_on_screen(name):
    swapped = swapped_by_streamlit() or {f"#{i:06d}" for i in range(1, 41)}
    ours = colorscale(Style(palette=name))
    plotly_own = pcolors.get_colorscale(name)
    assert [p for p, _ in ours] == pytest.approx([p for p, _ in plotly_own])
    assert [as_rgb(c) for _, c in ours] == [as_rgb(c) for _, c in plotly_own]
    assert not {c.lower() for _, c in ours} & swapped


def test_magma_heatmap_json_has_no_swapped_literal():
    swapped = swapped_by_streamlit() or {f"#{i:06d}" for i in range(1, 41)}
    a = np.full((2, 2), 0.5, np.float32)
    spec = json.dumps(head_heatmap(a, ["a", "b"], style=Style(palette="magma")).to_plotly_json(),
                      default=str).lower()
    assert not [c for c in swapped if c in spec]
