"""The head view and Q·K of one query of a long input: which keys are shown (a window around
the query and its strongest keys), where the gap rows sit, that every drawn weight is the
map's own entry (Q·K: the softmax over every key, not over the shown bars), that labels stay
under the cap and a 2,048-token figure's JSON stays small."""

from __future__ import annotations

import numpy as np
import plotly.io as pio
import pytest

from app_pages.shared.figure_words import FIGURE_WORDS_ZH
from viz.figures.head_view_query import ROW_PX, head_view_query
from viz.figures.key_selection import MAX_SHOWN, select_keys
from viz.figures.qk_view_query import qk_view_query, slots
from viz.style import Style

ZH = Style(words=tuple(FIGURE_WORDS_ZH.items()))


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def causal_row_maps(t: int, h: int = 2, d: int = 8, seed: int = 0):
    """q, k [H, T, D], scores [H, T, T] (−∞ above the diagonal) and their softmax."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((h, t, d)).astype(np.float32)
    k = rng.standard_normal((h, t, d)).astype(np.float32)
    s = (q @ k.transpose(0, 2, 1) / np.sqrt(d)).astype(np.float32)
    s[:, :, 0] += 4.0  # a sink, as real heads have
    s[:, np.triu(np.ones((t, t), bool), 1)] = -np.inf
    return q, k, s, softmax(s).astype(np.float32)


def random_weights(t: int, h: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return softmax(rng.standard_normal((h, t, t)).astype(np.float32) * 3).astype(np.float32)


def toks(t: int) -> list[str]:
    return [f"w{i}" for i in range(t)]


def trace(fig, **match):
    return [tr for tr in fig.data if all(getattr(tr, k) == v for k, v in match.items())]


# ----------------------------------------------------------------------------- selection


def test_window_and_strongest_keys_outside_it():
    row = np.full(300, 0.001, np.float32)
    row[[0, 7, 150, 299]] = [0.5, 0.2, 0.3, 0.1]  # 150 is inside the window 140..160
    row[[20, 21]] = 0.05  # equal: the earlier position wins the last place
    sel = select_keys(row, 150, half_width=10, k=4)
    assert sel.window == (140, 161)
    assert sel.strongest.tolist() == [0, 7, 20, 299]
    assert sel.keys.tolist() == [0, 7, 20, *range(140, 161), 299]


def test_union_when_strongest_may_fall_in_the_window():
    row = np.full(300, 0.001, np.float32)
    row[[0, 150, 155]] = [0.5, 0.3, 0.2]
    sel = select_keys(row, 150, half_width=10, k=3, outside_window=False)
    assert sel.strongest.tolist() == [0, 150, 155]
    assert sel.keys.tolist() == [0, *range(140, 161)]


def test_zero_weight_keys_are_never_strongest_and_heads_take_the_max():
    rows = np.zeros((2, 200), np.float32)
    rows[0, :51] = 1 / 51  # a causal query at 50: keys after it weigh 0
    rows[1, 3] = 0.9
    sel = select_keys(rows, 50, half_width=5, k=8)
    assert sel.window == (40, 51)  # causal: the window looks back from the query
    assert 3 in sel.strongest and all(p < 40 for p in sel.strongest)
    assert len(sel.strongest) == 8


def test_window_keeps_its_size_at_the_ends_and_the_cap_is_enforced():
    row = np.ones(200, np.float32) / 200
    assert select_keys(row, 199, half_width=24, k=0).window == (151, 200)
    assert select_keys(row, 0, half_width=24, k=0).window == (0, 49)
    assert select_keys(row, 100, half_width=24, k=0).window == (76, 125)
    assert select_keys(row[:30], 10, half_width=24, k=0).window == (0, 30)
    with pytest.raises(ValueError, match="at most 80"):
        select_keys(row, 100, half_width=40, k=8)


def test_gap_rows_sit_between_runs_and_count_the_keys_left_out():
    row = np.full(1000, 0.0001, np.float32)
    row[[3, 4, 900]] = 0.3
    sel = select_keys(row, 500, half_width=2, k=3)  # not causal: keys after 500 weigh > 0
    assert sel.rows() == [("gap", 0, 3), ("key", 3, 4), ("key", 4, 5), ("gap", 5, 498),
                          *[("key", p, p + 1) for p in range(498, 503)],
                          ("gap", 503, 900), ("key", 900, 901), ("gap", 901, 1000)]
    assert sum(b - a for _, a, b in sel.rows()) == 1000  # every key once, shown or counted
    x, ticks, gaps = slots(sel)
    assert x.tolist() == [1, 2, 4, 5, 6, 7, 8, 10]
    assert gaps == [(0, 3), (3, 493), (9, 397), (11, 99)]
    assert ticks[3] == "… 493 …"


# ----------------------------------------------------------------------------- head view


def test_head_view_lines_are_the_rows_entries_at_the_shown_keys():
    t, query = 2048, 517
    w = random_weights(t)
    fig = head_view_query(w, toks(t), query=query, heads=[1, 3], half_width=24, k=8,
                          min_weight=0.0)
    sel = select_keys(w[[1, 3], query], query, half_width=24, k=8)
    key_text = [tr for tr in trace(fig, mode="text") if tr.textposition == "middle right"][0]
    shown = [int(c[0].split(":")[0]) for c in key_text.customdata]
    assert shown == sel.keys.tolist()
    assert sel.window == (493, 542) and len(sel.strongest) == 8
    # hover carries each head's weight: the map's own entries, bit for bit
    got = np.array([c[1:] for c in key_text.customdata], dtype=np.float32)
    np.testing.assert_array_equal(got, w[[1, 3]][:, query, sel.keys].T)
    # one line per shown key and head (min weight 0): from the query's row to the key's row
    lines = [tr for tr in trace(fig, mode="lines") if tr.x is not None and len(tr.x) > 1]
    assert sum(len(tr.x) // 3 for tr in lines) == 2 * len(sel.keys)
    ends = np.concatenate([np.asarray(tr.y, np.float32)[1::3] for tr in lines])
    assert sorted(set(ends.tolist())) == sorted(set(np.asarray(key_text.y).tolist()))


def test_head_view_min_weight_drops_lines_as_today():
    t, query = 600, 599
    w = random_weights(t)
    fig = head_view_query(w, toks(t), query=query, half_width=10, k=5, min_weight=0.01)
    sel = select_keys(w[[0], query], query, half_width=10, k=5)
    lines = [tr for tr in trace(fig, mode="lines") if tr.x is not None and len(tr.x) > 1]
    n = sum(len(tr.x) // 3 for tr in lines)
    assert n == int((w[0, query, sel.keys] >= 0.01).sum()) and n < len(sel.keys)


def test_head_view_gap_rows_labels_title_and_height():
    t, query = 2048, 517
    w = random_weights(t)
    fig = head_view_query(w, toks(t), query=query, half_width=24, k=8, title="L3")
    sel = select_keys(w[[0], query], query, half_width=24, k=8)
    rows = sel.rows()
    gap_trace = [tr for tr in trace(fig, mode="text") if tr.hovertemplate.endswith(
        "not shown<extra></extra>")][0]
    gaps = [(i, a, b) for i, (kind, a, b) in enumerate(rows) if kind == "gap"]
    assert np.asarray(gap_trace.y).tolist() == [-i for i, _, _ in gaps]
    assert list(gap_trace.text) == [f"… {b - a:,} tokens …" for _, a, b in gaps]
    # labels: at most the cap per side, no label for a key not shown
    for tr in trace(fig, mode="text"):
        assert len(tr.text) <= MAX_SHOWN
    left = [tr for tr in trace(fig, mode="text") if tr.textposition == "middle left"][0]
    assert len(left.text) == 49 and f"<b>{query}: w{query}</b>" in left.text
    sub = fig.layout.title.subtitle.text
    assert "query 517: w517 · keys 493–541 and its 8 strongest keys of 2,048" in sub
    assert fig.layout.title.text == "L3"
    assert fig.layout.height == ROW_PX * len(rows) + 190 < 2400


def test_head_view_figure_is_small_at_2048_tokens():
    w = random_weights(2048)
    fig = head_view_query(w, toks(2048), query=2047, heads=[0, 1, 2, 3], half_width=30, k=16,
                          min_weight=0.0)
    assert len(pio.to_json(fig, validate=False)) < 100_000


def test_head_view_of_cross_attention_centres_on_the_strongest_key():
    w = random_weights(300)[:, :140, :]  # 140 queries, 300 keys
    w[0, 70, 250] += 1.0
    w[0, 70] /= w[0, 70].sum()
    fig = head_view_query(w, toks(140), toks(300), query=70, half_width=5, k=2)
    assert "keys 245–255" in fig.layout.title.subtitle.text


# ----------------------------------------------------------------------------- Q·K


def qk_bars(fig):
    return {tr.name: tr for tr in fig.data if tr.type == "bar"}


def test_qk_weights_are_the_maps_entries_not_a_softmax_over_the_bars():
    t, query = 2048, 1500
    q, k, s, w = causal_row_maps(t)
    fig = qk_view_query(q, k, query, toks(t), head=1, scores=s, weights=w, top_k=32,
                        half_width=8)
    sel = select_keys(w[1, query], query, half_width=8, k=32, outside_window=False)
    bars = qk_bars(fig)
    np.testing.assert_array_equal(np.asarray(bars["weight"].y), w[1, query, sel.keys])
    shown_s = s[1, query, sel.keys]
    np.testing.assert_array_equal(np.asarray(bars["score"].y),
                                  np.where(np.isneginf(shown_s), np.nan, shown_s))
    over_bars = softmax(np.where(np.isneginf(shown_s), -1e30, shown_s))
    assert not np.allclose(np.asarray(bars["weight"].y), over_bars, atol=1e-3)
    assert float(np.sum(bars["weight"].y)) < 0.99
    # causal: the window looks back from the query, no masked key in it
    assert sel.window == (1484, 1501)
    assert len(sel.keys) == len(np.union1d(sel.strongest, np.arange(1484, 1501)))
    assert (f"a selection of {len(sel.keys)} of 2,048 keys: the 32 strongest and 1484–1500"
            in fig.layout.title.subtitle.text)


def test_qk_marks_masked_keys_in_the_window():
    t, query = 300, 150
    q, k, s, _ = causal_row_maps(t)
    s = np.where(np.isneginf(s), 0.0, s).astype(np.float32)  # not causal
    s[:, query, [148, 152]] = -np.inf  # two knocked-out keys next to the query
    w = softmax(s).astype(np.float32)
    fig = qk_view_query(q, k, query, toks(t), scores=s, weights=w, half_width=4, top_k=3)
    stubs = [tr for tr in fig.data if tr.name == "masked (−∞)"][0]
    x, _, _ = slots(select_keys(w[0, query], query, half_width=4, k=3, outside_window=False))
    keys = select_keys(w[0, query], query, half_width=4, k=3, outside_window=False).keys
    assert np.asarray(stubs.x).tolist() == x[np.isin(keys, [148, 152])].tolist()
    assert np.asarray(qk_bars(fig)["weight"].y)[np.isin(keys, [148, 152])].tolist() == [0, 0]


def test_qk_without_weights_softmaxes_the_whole_row():
    t, query = 400, 399
    q, k, _, _ = causal_row_maps(t, seed=1)
    fig = qk_view_query(q, k, query, toks(t), head=0, top_k=10, half_width=4)
    scale = 1 / np.sqrt(q.shape[-1])
    full = softmax((k[0] @ q[0, query] * scale).astype(np.float64))
    sel = select_keys(full, query, half_width=4, k=10, outside_window=False)
    np.testing.assert_allclose(np.asarray(qk_bars(fig)["weight"].y), full[sel.keys], rtol=1e-5)


def test_qk_strip_is_one_trace_of_every_key_and_marks_the_selection():
    t, query = 2048, 2047
    q, k, s, w = causal_row_maps(t)
    fig = qk_view_query(q, k, query, toks(t), head=0, scores=s, weights=w)
    strip = [tr for tr in fig.data if tr.type == "scatter" and tr.xaxis == "x"]
    line, marks = strip
    assert len(line.x) == t and line.text is None and line.customdata is None
    np.testing.assert_array_equal(np.asarray(line.y), w[0, query])
    sel = select_keys(w[0, query], query, half_width=8, k=32, outside_window=False)
    assert np.asarray(marks.x).tolist() == sel.keys.tolist()
    labels = fig.layout.xaxis3.ticktext
    assert len(labels) <= MAX_SHOWN + len(sel.keys) + 1
    assert sum(not lab.startswith("…") for lab in labels) == len(sel.keys) <= MAX_SHOWN


def test_qk_figure_is_small_at_2048_tokens():
    q, k, s, w = causal_row_maps(2048, h=4, d=64)
    fig = qk_view_query(q, k, 1024, toks(2048), head=2, scores=s, weights=w, top_k=48,
                        half_width=12)
    assert len(pio.to_json(fig, validate=False)) < 300_000
    # fixed margins: auto-expanding ones redraw a figure of ~80 rotated labels until settled
    assert fig.layout.margin.autoexpand is False
    assert all(ax.automargin is False and ax.ticklabeloverflow == "allow"
               for ax in (fig.layout.xaxis3, fig.layout.yaxis4))


def test_both_figures_speak_chinese():
    from tests.app.test_app_zh_sweep import english_words, figure_words

    q, k, s, w = causal_row_maps(300)
    for fig in (head_view_query(w, toks(300), query=299, heads=[0, 1], style=ZH,
                                title="L0"),
                qk_view_query(q, k, 299, toks(300), scores=s, weights=w, style=ZH)):
        spec = fig.to_plotly_json()
        words = [*figure_words(spec), fig.layout.title.subtitle.text]
        words += [t for tr in fig.data if getattr(tr, "mode", None) == "text"
                  and tr.customdata is not None
                  and "not shown" in (tr.hovertemplate or "") for t in tr.text]
        bad = {x: english_words(x) for x in words if english_words(x)}
        assert not bad, bad


def test_token_text_is_shown_never_run():
    hostile = "<img src=x onerror=alert(1)>"
    tokens = [hostile if i % 7 == 0 else f"w{i}" for i in range(300)]
    q, k, s, w = causal_row_maps(300)
    for fig in (head_view_query(w, tokens, query=294, title="L0"),
                qk_view_query(q, k, 294, tokens, scores=s, weights=w)):
        text = pio.to_json(fig, validate=False)
        assert "<img" not in text and "&lt;img" in text
