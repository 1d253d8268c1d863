"""Shared look of every figure: palettes, fonts, colour range, number precision, safe labels.

Sequential palettes are the perceptually uniform, colour-blind-safe ones (cividis by default:
Nuñez et al., 2018, "Optimizing colormaps with consideration for color vision deficiency");
head colours use the Okabe & Ito (2008) qualitative set.

Token text reaches Plotly only through `safe_label`: Plotly renders tick labels, hover text
and annotations with a small HTML subset (`<b>`, `<a href>`, `<br>`, entities, `$...$` as TeX
when MathJax is loaded), so a token such as `<img src=x onerror=alert(1)>` must be escaped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go

SEQUENTIAL = ("cividis", "viridis", "magma", "inferno", "plasma", "greys", "blues")
OKABE_ITO = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7",
    "#56B4E9", "#D55E00", "#F0E442", "#000000",
)
MASKED_COLOR = "#d9d9d9"  # not in cividis/viridis: masked (-inf) cells stay distinguishable


@dataclass(frozen=True)
class Style:
    """Print and screen settings shared by all figure builders.

    palette: a name from SEQUENTIAL (or any Plotly colour scale name).
    shared_range: one colour range for all heads/layers in a figure (else per head).
    zmin/zmax: fix the colour range (e.g. 0..1) instead of taking it from the data.
    precision: decimals shown in hover text and tables.
    """

    palette: str = "cividis"
    reverse: bool = False
    # CJK families after the Latin one: 中文 titles and Chinese tokens render in PNG, SVG and
    # PDF (Debian: fonts-wqy-microhei) and in an SVG opened elsewhere
    font_family: str = ("DejaVu Sans, WenQuanYi Micro Hei, Noto Sans CJK SC, Microsoft YaHei, "
                        "PingFang SC, Arial, Helvetica, sans-serif")
    font_size: int = 12
    show_title: bool = True
    transparent: bool = False
    shared_range: bool = True
    zmin: float | None = None
    zmax: float | None = None
    precision: int = 3
    template: str = "simple_white"
    # The interface language, as (English, translation) pairs: every word a figure draws
    # (titles, axis and colour-bar titles, legend names) goes through `say`, so viz holds
    # English defaults only and the app passes the reader's words.
    words: tuple[tuple[str, str], ...] = ()

    def say(self, text: str, **fmt) -> str:
        """`text` (an English word or template such as "key {a}–{b}") in the style's
        language, formatted with `fmt`; unknown words stay as they are."""
        if self.words:
            text = dict(self.words).get(text, text)
        return text.format(**fmt) if fmt else text

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("words")  # a manifest's settings regenerate the numbers, not the wording
        return d


DEFAULT = Style()


# ---------------------------------------------------------------- labels

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "$": "&#36;"}
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _invisible(ch: str) -> bool:
    """Drawn as nothing: format characters (zero-width joiner, BOM, bidi marks), variation
    selectors, line/paragraph separators."""
    cp = ord(ch)
    return (unicodedata.category(ch) in ("Cf", "Zl", "Zp") or 0xFE00 <= cp <= 0xFE0F
            or 0xE0100 <= cp <= 0xE01EF)


def visible_token(token: object) -> str:
    """Token text as plain text a reader can see, for tables and captions: control
    characters as escapes (`\\n`), and a token made only of invisible characters (a
    zero-width joiner, a variation selector) as their code points (`\\u200d`)."""
    text = str(token)
    out = []
    blank = all(_invisible(ch) or ch.isspace() for ch in text)
    for ch in text:
        if ch in _CONTROL:
            out.append(_CONTROL[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        elif blank and _invisible(ch):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) if out else "∅"


def safe_label(token: object) -> str:
    """Token text → a Plotly-safe label that shows the token literally, never as markup.

    Escapes `& < >` (Plotly's HTML subset) and `$` (TeX under MathJax); shows newlines, tabs
    and other control characters as visible escapes (`\\n`), so every token stays one line,
    and a token of invisible characters only by its code points (`visible_token`).
    """
    text = str(token)
    if text and all(_invisible(ch) or ch.isspace() for ch in text):
        return visible_token(text)
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch in _CONTROL:
            out.append(_CONTROL[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out) if out else "∅"


def safe_labels(tokens: Iterable[object]) -> list[str]:
    """`safe_label` over a token list (repeats kept, one label per position)."""
    return [safe_label(t) for t in tokens]


# ---------------------------------------------------------------- colours

# Streamlit's Plotly front end rewrites these literal strings in a figure's JSON into its own
# theme colours (#000001-#000010 categorical, then sequential and diverging sets up to
# #000040), so magma's and inferno's darkest stop `#000004` would reach the screen as pink.
STREAMLIT_SWAPPED = frozenset(f"#{i:06d}" for i in range(1, 41))


def screen_safe_color(color: str) -> str:
    """The same colour, spelt so that no front end rewrites it: a hex colour of Streamlit's
    swapped set becomes `rgb(r,g,b)` (identical on screen and in every export)."""
    if color.lower() in STREAMLIT_SWAPPED:
        r, g, b = pcolors.hex_to_rgb(color)
        return f"rgb({r},{g},{b})"
    return color


def colorscale(style: Style = DEFAULT, name: str | None = None) -> list[list]:
    """The Plotly colour scale `[[pos, colour], ...]` of `name` (default: the style's palette),
    every stop spelt with `screen_safe_color` so the browser draws what the file draws."""
    scale = pcolors.get_colorscale(name or style.palette)
    if style.reverse and name is None:
        scale = [[1.0 - p, c] for p, c in reversed(scale)]
    return [[float(p), screen_safe_color(c)] for p, c in scale]


def _to_rgb(color: str) -> tuple[float, float, float]:
    if color.startswith("#"):
        return tuple(float(v) for v in pcolors.hex_to_rgb(color))
    return tuple(float(v) for v in pcolors.unlabel_rgb(color)[:3])


def color_bins(
    z: np.ndarray, zmin: float, zmax: float, n: int = 256
) -> np.ndarray:
    """Colour-bin index of each value in [0, n); NaN/±inf → -1. Shape: same as z, int32."""
    z = np.asarray(z, dtype=np.float64)
    span = zmax - zmin if zmax > zmin else 1.0
    with np.errstate(invalid="ignore"):
        idx = np.floor((z - zmin) / span * n)
    idx = np.clip(np.nan_to_num(idx, nan=-1, posinf=-1, neginf=-1), -1, n - 1)
    idx[~np.isfinite(z)] = -1
    return idx.astype(np.int32)


def rgb_hex(rgb: Sequence[int]) -> str:
    """(r, g, b) → '#rrggbb'."""
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def head_color(i: int) -> str:
    """A colour-blind-safe colour for head `i` (Okabe-Ito, cycling)."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def value_range(arrays: Iterable[np.ndarray], style: Style = DEFAULT) -> tuple[float, float]:
    """Colour range over all finite values of `arrays`; the style's zmin/zmax win.

    Attention weights (all >= 0) get zmin = 0 so that zero always looks the same.
    """
    lo, hi = np.inf, -np.inf
    for a in arrays:
        a = np.asarray(a)
        finite = a[np.isfinite(a)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if not np.isfinite(lo):
        lo, hi = 0.0, 1.0
    if lo >= 0.0:
        lo = 0.0
    if hi <= lo:
        hi = lo + 1.0
    return (
        float(style.zmin) if style.zmin is not None else lo,
        float(style.zmax) if style.zmax is not None else hi,
    )


def number_format(style: Style = DEFAULT) -> str:
    """d3 format for hover numbers, e.g. '.3f'."""
    return f".{style.precision}f"


# ---------------------------------------------------------------- layout

def apply_style(
    fig: go.Figure, style: Style = DEFAULT, title: str | None = None
) -> go.Figure:
    """Apply template, font, optional title and transparent background in place; returns fig."""
    fig.update_layout(
        template=style.template,
        font=dict(family=style.font_family, size=style.font_size),
        hoverlabel=dict(font=dict(family=style.font_family)),
    )
    if title and style.show_title:
        fig.update_layout(title=dict(text=safe_label(style.say(title)), x=0.5,
                                     xanchor="center"))
    else:
        fig.update_layout(title=None)
    if style.transparent:
        fig.update_layout(paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return fig


def token_axis(tokens: Sequence[object], max_ticks: int = 128, reverse: bool = False) -> dict:
    """Axis settings placing one tick per position, labelled with the token.

    Positions (0..T-1) are the axis values so repeated tokens keep their own row/column.
    Above `max_ticks` positions only every k-th tick is labelled (the data keep every row).
    reverse: position 0 at the top (an explicit reversed range, which exports keep exactly).
    """
    n = len(tokens)
    step = max(1, -(-n // max_ticks))
    vals = np.arange(0, n, step)
    labels = safe_labels(tokens)
    return dict(
        tickmode="array",
        tickvals=vals.tolist(),
        ticktext=[labels[i] for i in vals],
        range=[n - 0.5, -0.5] if reverse else [-0.5, n - 0.5],
        autorange=False,
        showgrid=False,
        zeroline=False,
        ticks="",
        showline=False,
    )
