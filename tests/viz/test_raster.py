"""The full-resolution image of a long map (viz.raster, viz.figures.image_map) and the
block reductions of its overviews: every pixel is its cell's colour, nothing is lost."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from viz.figures.image_map import MAX_TICKS, image_map, log_ticks, tick_positions, tick_text
from viz.figures.long_input import block_reduce, overview_figure
from viz.raster import (
    N_COLOURS,
    NO_VALUE,
    colour_indices,
    decode_indexed_png,
    indexed_png,
    log_floor,
    palette_lut,
)
from viz.style import DEFAULT, MASKED_COLOR, Style


def causal_map(t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(t, t)).astype(np.float32) * 3
    s[np.triu_indices(t, 1)] = -np.inf
    w = np.exp(s - s.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)).astype(np.float32)


def pixels(fig) -> tuple[np.ndarray, np.ndarray]:
    src = fig.data[0].source
    assert src.startswith("data:image/png;base64,")
    return decode_indexed_png(base64.b64decode(src.split(",", 1)[1]))


def test_png_round_trip_is_exact():
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 256, size=(37, 53), dtype=np.uint8)
    lut = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    back, lut_back = decode_indexed_png(indexed_png(idx, lut))
    np.testing.assert_array_equal(back, idx)
    np.testing.assert_array_equal(lut_back, lut)
    with pytest.raises(ValueError, match="non-empty 2-D"):
        indexed_png(np.zeros((0, 4), np.uint8), lut)


def test_colour_indices_linear_and_log():
    z = np.array([[0.0, 0.5, 1.0, np.nan, 2.0, -1.0]], np.float32)
    idx = colour_indices(z, 0.0, 1.0)
    assert idx.tolist() == [[0, 127, N_COLOURS - 1, NO_VALUE, N_COLOURS - 1, 0]]
    z = np.array([[0.0, 1e-4, 1e-2, 1.0]], np.float32)
    idx = colour_indices(z, 1e-4, 1.0, log=True)
    # log10 spreads 1e-4 .. 1 evenly: 1e-2 sits in the middle; an exact zero has no colour
    assert idx.tolist() == [[NO_VALUE, 0, 127, N_COLOURS - 1]]
    with pytest.raises(ValueError, match="zmin > 0"):
        colour_indices(z, 0.0, 1.0, log=True)
    assert log_floor(z, 1.0) == pytest.approx(1e-4)
    assert log_floor(np.array([0.0, 0.5, 1.0]), 1.0) == 0.5  # the smallest positive value


def test_palette_lut_ends_and_no_value_colour():
    lut = palette_lut(Style(palette="viridis"))
    assert lut.shape == (N_COLOURS + 1, 3)
    assert tuple(lut[0]) == (68, 1, 84) and tuple(lut[N_COLOURS - 1]) == (253, 231, 37)
    grey = tuple(int(MASKED_COLOR[i:i + 2], 16) for i in (1, 3, 5))
    assert tuple(lut[NO_VALUE]) == grey


def test_image_map_is_one_pixel_per_cell_with_each_cells_colour():
    w = causal_map(300)
    toks = [f"t{i}" for i in range(300)]
    fig = image_map(w, toks, style=DEFAULT, meta="m1")
    idx, lut = pixels(fig)
    assert idx.shape == (300, 300)
    np.testing.assert_array_equal(idx, colour_indices(w, 0.0, float(w.max())))
    np.testing.assert_array_equal(lut, palette_lut(DEFAULT))
    assert fig.data[0].meta == "m1" and fig.data[0].type == "image"
    # the colour bar's range is the data's: [0, max]
    assert fig.data[1].marker.cmin == 0.0 and fig.data[1].marker.cmax == pytest.approx(w.max())
    assert len(fig.layout.xaxis.tickvals) <= MAX_TICKS
    assert fig.layout.yaxis.scaleanchor == "x"  # square cells


def test_image_map_log_scale_and_shared_max():
    w = causal_map(64)
    fig = image_map(w, [str(i) for i in range(64)], log=True, zmax=2.0)
    idx, _ = pixels(fig)
    lo = log_floor(w, 2.0)
    np.testing.assert_array_equal(idx, colour_indices(w, lo, 2.0, log=True))
    assert (idx[np.triu_indices(64, 1)] == NO_VALUE).all()  # masked cells: the grey
    assert fig.data[1].marker.cmax == pytest.approx(np.log10(2.0))


def test_image_map_labels_are_escaped_and_checked():
    toks = ["<b>x</b>"] * 4
    fig = image_map(np.eye(4, dtype=np.float32), toks)
    assert all("<b>" not in t for t in fig.layout.xaxis.ticktext)
    with pytest.raises(ValueError, match="labels"):
        image_map(np.eye(4, dtype=np.float32), toks[:3])
    assert tick_text(0, "<bos><eos><pad>") == "0 &lt;bos&gt;&lt;eos…"  # cut, then escaped
    assert tick_text(3, "\u200b" * 12) == "3 " + "\\u200b" * 12  # invisible: all shown


def test_a_2048_token_map_travels_as_an_image():
    w = causal_map(2048)
    fig = image_map(w, [f"t{i}" for i in range(2048)])
    size = len(fig.to_json())
    assert size < 0.6 * w.nbytes  # a float32 heatmap would carry 16.8 MB (22 MB of base64)
    assert "bdata" not in fig.to_json()  # no array of numbers per cell


def test_tick_positions_spread_and_end():
    assert tick_positions(5) == [0, 1, 2, 3, 4]
    ticks = tick_positions(2048)
    assert ticks[0] == 0 and ticks[-1] == 2047 and len(ticks) <= MAX_TICKS
    assert min(np.diff(ticks)) > 2048 / MAX_TICKS / 2
    assert log_ticks(1e-4, 1.0) == ([-4.0, -3.0, -2.0, -1.0, 0.0],
                                    ["0.0001", "0.001", "0.01", "0.1", "1"])


def test_block_reduce_max_and_mean_match_loops_on_ragged_blocks():
    rng = np.random.default_rng(3)
    a = rng.random((2, 23, 17)).astype(np.float32)
    for how, f in (("max", np.max), ("mean", np.mean)):
        z = block_reduce(a, 5, 4, how=how)
        assert z.shape == (2, 5, 5)
        for i in range(5):
            for j in range(5):
                np.testing.assert_allclose(z[:, i, j], f(a[:, i * 5:i * 5 + 5, j * 4:j * 4 + 4],
                                                         axis=(1, 2)), rtol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        block_reduce(a, 2, how="sum")


def test_overview_keeps_a_single_token_sink_under_max():
    # a sink: every query puts 0.3 on key 0; the rest spread thin
    t = 1024
    w = np.full((t, t), 0.7 / (t - 1), np.float32)
    w[:, 0] = 0.3
    w[5, 700] = 0.9  # one strong cell far from the diagonal
    fig = overview_figure(w, [str(i) for i in range(t)])
    z = np.asarray(fig.data[0].z)
    b = 8
    assert z[5 // b, 700 // b] == pytest.approx(0.9)  # the mean would show 0.0147
    np.testing.assert_allclose(z[:, 0], 0.3, rtol=1e-6)
    assert fig.data[0].zmax == pytest.approx(0.9)  # the range fits the data shown
    log = overview_figure(w, [str(i) for i in range(t)], log=True)
    assert np.asarray(log.data[0].customdata)[5 // b, 700 // b] == pytest.approx(0.9)
