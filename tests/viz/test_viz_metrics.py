"""Head metrics, aggregations (mean, rollout) and long-input reductions on known maps."""

from __future__ import annotations

import numpy as np
import pytest

from viz.aggregate import mean_heads, rollout, rollout_layers
from viz.figures.long_input import block_average, block_size, topk_per_row
from viz.metrics import METRICS, head_metric_arrays, head_metrics, metrics_grid, split_key


def identity(t: int) -> np.ndarray:
    return np.eye(t, dtype=np.float32)


def previous(t: int) -> np.ndarray:
    """Each query on the previous token (query 0 on itself)."""
    a = np.zeros((t, t), np.float32)
    a[0, 0] = 1
    a[np.arange(1, t), np.arange(t - 1)] = 1
    return a


def first(t: int) -> np.ndarray:
    a = np.zeros((t, t), np.float32)
    a[:, 0] = 1
    return a


def test_metrics_on_textbook_heads():
    t = 8
    m = head_metric_arrays(np.stack([identity(t), previous(t), first(t),
                                     np.full((t, t), 1 / t, np.float32)]))
    assert set(m) == set(METRICS)
    np.testing.assert_allclose(m["self"], [1, 1 / t, 1 / t, 1 / t], atol=1e-6)
    np.testing.assert_allclose(m["prev_token"], [0, 1, 1 / (t - 1), 1 / t], atol=1e-6)
    np.testing.assert_allclose(m["first_token"], [0, 1 / (t - 1), 1, 1 / t], atol=1e-6)
    np.testing.assert_allclose(m["entropy"][:3], 0, atol=1e-6)
    np.testing.assert_allclose(m["entropy"][3], np.log(t), rtol=1e-6)
    np.testing.assert_allclose(m["distance"][0], 0, atol=1e-6)
    np.testing.assert_allclose(m["distance"][1], (t - 1) / t, rtol=1e-6)
    np.testing.assert_allclose(m["distance"][2], np.arange(t).mean(), rtol=1e-6)


def test_metrics_crop_padding_and_cross_attention():
    a = np.zeros((1, 6, 6), np.float32)
    a[0, :4, :4] = identity(4)
    a[0, 4:, :] = 1 / 6  # padded rows would change the mean
    np.testing.assert_allclose(head_metric_arrays(a, n_real=4)["self"], [1.0])
    cross = head_metric_arrays(np.full((2, 3, 5), 0.2, np.float32))
    assert cross["distance"] is None and cross["self"] is None
    np.testing.assert_allclose(cross["entropy"], np.log(5), rtol=1e-6)


def test_head_metrics_tidy_rows_and_grid():
    attn = {"encoder.self.0": np.stack([identity(5), previous(5)]),
            "encoder.self.1": np.stack([first(5), identity(5)]),
            "decoder.cross.0": np.full((2, 3, 5), 0.2, np.float32)}
    rows = head_metrics(attn)
    assert len(rows) == 6
    assert rows[0] == {"block": "encoder.self", "layer": 0, "head": 0, **{
        k: pytest.approx(v) for k, v in dict(entropy=0, distance=0, prev_token=0,
                                             first_token=0, self=1).items()}}
    assert rows[-1]["block"] == "decoder.cross" and rows[-1]["self"] is None
    grid = metrics_grid(rows, "self", "encoder.self")
    np.testing.assert_allclose(grid, [[1, 0.2], [0.2, 1]], atol=1e-6)
    assert split_key("decoder.cross.11") == ("decoder.cross", 11)


def test_mean_heads():
    a = np.stack([identity(3), first(3)])
    np.testing.assert_allclose(mean_heads(a), (identity(3) + first(3)) / 2)


def test_rollout_matches_abnar_zuidema_formula():
    rng = np.random.default_rng(0)
    layers = []
    for _ in range(3):
        x = rng.random((2, 4, 4))
        layers.append((x / x.sum(-1, keepdims=True)).astype(np.float32))
    expected = None
    for a in layers:
        aa = 0.5 * a.mean(0) + 0.5 * np.eye(4)
        aa /= aa.sum(-1, keepdims=True)
        expected = aa if expected is None else aa @ expected
    np.testing.assert_allclose(rollout(layers), expected, rtol=1e-5)
    steps = rollout_layers(layers)
    assert steps.shape == (3, 4, 4)
    np.testing.assert_allclose(steps.sum(-1), 1, rtol=1e-5)
    # identity layers: rollout is identity
    np.testing.assert_allclose(rollout([identity(4)[None]] * 5), np.eye(4), atol=1e-6)
    # residual=0 is the plain product
    np.testing.assert_allclose(rollout([previous(4), previous(4)], residual=0.0),
                               previous(4) @ previous(4), atol=1e-6)


def test_block_average_ragged_and_topk():
    a = np.arange(49, dtype=np.float32).reshape(7, 7)
    b = block_average(a, 3)
    assert b.shape == (3, 3)
    assert b[0, 0] == a[:3, :3].mean() and b[2, 2] == a[6:, 6:].mean()
    assert b[0, 2] == pytest.approx(a[:3, 6:].mean())
    assert block_size(2048, 128) == 16 and block_size(100, 128) == 1
    idx, val = topk_per_row(a, 2)
    assert idx.shape == (7, 2) and list(idx[0]) == [6, 5] and list(val[0]) == [6, 5]
