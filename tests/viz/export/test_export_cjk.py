"""A figure built in 中文 exports in 中文: its CJK title is drawn with glyphs in PNG, and
SVG and PDF carry the text with a CJK font (kaleido with Debian's Chromium;
fonts-wqy-microhei installed).

Glyphs, not boxes: two titles of the same length but different characters give different
PNG pixels only when a font has those characters (missing glyphs all draw the same box)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from app_pages.shared.figure_words import FIGURE_WORDS_ZH
from viz import export
from viz.figures.heatmap import head_heatmap
from viz.style import Style

pytestmark = pytest.mark.skipif(not export.chromium_available(),
                                reason="image export needs Debian's Chromium")

ZH = Style(words=tuple(FIGURE_WORDS_ZH.items()))
TOKENS = ["猫", "坐", "在", "垫子", "上"]


def figure(title: str):
    w = np.random.default_rng(0).dirichlet(np.ones(5), size=5).astype(np.float32)
    return head_heatmap(w, TOKENS, style=ZH, title=title)


def pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16)


def test_a_chinese_figure_keeps_its_words():
    fig = figure("注意力权重")
    assert fig.layout.xaxis.title.text == "键" and fig.layout.yaxis.title.text == "查询"
    assert fig.data[0].colorbar.title.text == "注意力权重"


def test_png_draws_cjk_glyphs():
    a = pixels(export.figure_bytes(figure("注意力权重"), "png"))
    b = pixels(export.figure_bytes(figure("掩码分数值"), "png"))
    assert a.shape == b.shape
    top = slice(0, 60)  # the title band: different characters, different pixels
    assert np.abs(a[top] - b[top]).sum() > 0
    # and the title is not blank: ink where the title is
    assert (a[top] < 128).sum() > 50


def test_svg_and_pdf_carry_the_cjk_text_and_font():
    svg = export.figure_bytes(figure("注意力权重"), "svg").decode("utf-8")
    assert "注意力权重" in svg and "查询" in svg
    assert "WenQuanYi Micro Hei" in svg
    pdf = export.figure_bytes(figure("注意力权重"), "pdf")
    assert pdf.startswith(b"%PDF")
    assert b"WenQuanYi" in pdf or b"WQY" in pdf.upper(), "no CJK font embedded in the PDF"


@pytest.mark.skipif(shutil.which("fc-list") is None, reason="fontconfig's fc-list is missing")
def test_the_cjk_font_of_the_style_is_installed():
    import subprocess

    names = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True,
                           text=True).stdout
    assert any(f.strip() in names for f in ZH.font_family.split(","))
