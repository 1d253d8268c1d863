"""The census's numbers, piece by piece, against independent statements of them: its metric
math against viz/metrics.py (the Head metrics tab), the probe against TransformerLens's
diagonal formulation on a tiny random Llama run by transformers, the labels' thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.census import labels, probe
from engine.census.metrics import METRICS, text_head_metrics
from viz.metrics import head_metric_arrays


def random_maps(rng, h: int, t_q: int, t_k: int, causal: bool = False,
                n_real: int | None = None) -> np.ndarray:
    """Row-stochastic [H, Tq, Tk] maps with exact zeros where a mask would put them."""
    scores = rng.normal(0, 2, size=(h, t_q, t_k))
    allowed = np.ones((t_q, t_k), dtype=bool)
    if causal:
        allowed &= np.tril(np.ones((t_q, t_k), dtype=bool))
    if n_real is not None:
        allowed[:, n_real:] = False
    scores = np.where(allowed, scores, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w = np.where(np.isfinite(scores), w, 0.0)
    return (w / np.maximum(w.sum(-1, keepdims=True), 1e-30)).astype(np.float32)


@pytest.mark.parametrize("t,causal,n_real", [(1, False, None), (2, True, None),
                                             (9, False, None), (17, True, None),
                                             (12, False, 7), (20, True, 13), (6, True, 1)])
def test_metrics_equal_viz_on_random_maps(t, causal, n_real):
    rng = np.random.default_rng(t * 31 + (n_real or 0))
    maps = random_maps(rng, 5, t, t, causal=causal, n_real=n_real)
    ours = text_head_metrics(maps, n_real=n_real)
    theirs = head_metric_arrays(maps, n_real=n_real, self_attention=True)
    for m in METRICS:
        np.testing.assert_allclose(ours[m], theirs[m], rtol=1e-6, atol=1e-7, err_msg=m)


def test_cross_attention_metrics_match_viz_and_leave_positional_ones_undefined():
    maps = random_maps(np.random.default_rng(3), 4, 6, 11)
    ours = text_head_metrics(maps, self_attention=False)
    theirs = head_metric_arrays(maps, self_attention=False)
    for m in ("entropy", "first_token"):
        np.testing.assert_allclose(ours[m], theirs[m], rtol=1e-6, atol=1e-7)
    for m in ("distance", "prev_token", "self"):
        assert theirs[m] is None and np.isnan(ours[m]).all()


def test_padding_never_counts():
    """A padded map's metrics at n_real equal the unpadded map's (padding rows are junk)."""
    rng = np.random.default_rng(5)
    real = random_maps(rng, 3, 8, 8, causal=True)
    padded = np.zeros((3, 12, 12), dtype=np.float32)
    padded[:, :8, :8] = real
    padded[:, 8:, :] = 1 / 12  # pad queries attend somewhere: they must not count
    a, b = text_head_metrics(padded, n_real=8), text_head_metrics(real)
    for m in METRICS:
        np.testing.assert_allclose(a[m], b[m], rtol=0, atol=0)


def test_known_numbers_of_one_hot_maps():
    eye = np.eye(4, dtype=np.float32)[None]  # every token keeps to itself
    prev = np.eye(4, k=-1, dtype=np.float32)[None]
    prev[0, 0, 0] = 1  # query 0 has no previous token
    first = np.zeros((1, 4, 4), dtype=np.float32)
    first[0, :, 0] = 1
    m = text_head_metrics(eye)
    assert (m["self"][0], m["entropy"][0], m["distance"][0], m["prev_token"][0]) == (1, 0, 0, 0)
    m = text_head_metrics(prev)
    assert m["prev_token"][0] == 1 and m["distance"][0] == pytest.approx(3 / 4)
    m = text_head_metrics(first)
    assert m["first_token"][0] == 1 and m["distance"][0] == pytest.approx((0 + 1 + 2 + 3) / 4)


# -- the probe ---------------------------------------------------------------------------------
def test_a_perfect_induction_map_scores_one_and_a_previous_token_map_zero():
    n, off = 5, 1
    t = off + 2 * n
    ind = np.zeros((2, 1, t, t))
    ind[..., np.arange(t), 0] = 1  # the sink by default ...
    q = np.arange(off + n, off + 2 * n)
    ind[..., q, :] = 0
    ind[..., q, q - n + 1] = 1  # ... and second-copy tokens on the token after their first
    assert probe.induction_scores(ind, n, off)[0] == pytest.approx(1.0)
    prev = np.zeros((2, 1, t, t))
    prev[..., np.arange(1, t), np.arange(t - 1)] = 1
    assert probe.induction_scores(prev, n, off)[0] == 0.0


class _Tok:
    def __init__(self, specials):
        self.specials = specials

    def get_added_tokens_decoder(self):
        from types import SimpleNamespace
        return {i: SimpleNamespace(special=True) for i in self.specials}

    def get_vocab_size(self, with_added_tokens=True):
        return 30


def fake_model(bos_id):
    from types import SimpleNamespace

    cfg = SimpleNamespace(bos_id=bos_id, eos_id=2, pad_id=0, vocab_size=32)
    codec = SimpleNamespace(tok=_Tok([0, 1, 2, 3, 29]),
                            encode=lambda text: SimpleNamespace(ids=[3, 7]))
    return SimpleNamespace(config=cfg, codec=codec)


@pytest.mark.parametrize("bos_id,start", [(1, 1), (None, 3)])
def test_probe_inputs_are_two_copies_of_seeded_non_special_tokens_after_bos(bos_id, start):
    model = fake_model(bos_id)
    ids, off = probe.probe_ids(model, n_sequences=4, length=50, seed=0)
    assert ids.shape == (4, 101) and off == 1 and (ids[:, 0] == start).all()
    body = ids[:, 1:]
    assert (body[:, :50] == body[:, 50:]).all()
    assert not np.isin(body, [0, 1, 2, 3, 29]).any() and body.max() < 30  # tokenizer's vocab
    assert len(np.unique(body)) > 20  # uniform over the 25 allowed ids, not a constant
    again, _ = probe.probe_ids(model, n_sequences=4, length=50, seed=0)
    other, _ = probe.probe_ids(model, n_sequences=4, length=50, seed=1)
    assert (again == ids).all() and (other != ids).any()


def test_probe_equals_transformerlens_diagonal_on_a_tiny_llama(tmp_path):
    """transformers' eager Llama (GQA) gives the maps; TransformerLens's formula
    `pattern.diagonal(offset=1 - n)` restricted to the second copy gives the score."""
    transformers = pytest.importorskip("transformers")
    import engine
    from tests.engine.test_hf_families import SMALL, causal_lm, write_tokenizer

    ref = causal_lm(transformers.LlamaConfig(**SMALL, max_position_embeddings=128))
    ref.save_pretrained(str(tmp_path))
    write_tokenizer(tmp_path)
    model = engine.load(str(tmp_path), device="cpu")
    ours = probe.induction_probe(model)
    ids, off = probe.probe_ids(model)
    assert off == 1 and (ids[:, 0] == 1).all()  # the checkpoint's BOS, <s>
    with torch.no_grad():
        attn = ref(torch.tensor(ids), output_attentions=True).attentions
    assert sorted(ours) == [f"decoder.self.{i}" for i in range(len(attn))]
    n = probe.LENGTH
    for i, pattern in enumerate(attn):  # [N, H, T, T]
        diag = pattern.diagonal(offset=1 - n, dim1=-2, dim2=-1)[..., -n:]  # second copy
        np.testing.assert_allclose(ours[f"decoder.self.{i}"], diag.mean((0, 2)).numpy(),
                                   atol=1e-6)


# -- labels ------------------------------------------------------------------------------------
def test_uniform_entropy_is_the_mean_over_queries_of_log_visible_keys():
    for n in (1, 2, 7, 40):
        assert labels.uniform_entropy(n, causal=False) == pytest.approx(math.log(n))
        brute = sum(math.log(q + 1) for q in range(n)) / n
        assert labels.uniform_entropy(n, causal=True) == pytest.approx(brute)


BASE = dict(induction=0.01, prev_token_mean=0.1, first_token_mean=0.1, self_mean=0.1,
            distance_mean=5.0, entropy_mean=1.0, entropy_uniform=3.0)


@pytest.mark.parametrize("change,expected", [
    ({}, "mixed"),
    ({"induction": 0.30}, "induction"),
    ({"induction": 0.29, "prev_token_mean": 0.5}, "previous-token"),
    ({"first_token_mean": 0.5}, "sink"),
    ({"self_mean": 0.5}, "self"),
    ({"distance_mean": 2.0}, "local"),
    ({"entropy_mean": 2.1}, "broad"),
    ({"entropy_mean": 2.09}, "mixed"),
    ({"induction": math.nan, "first_token_mean": 0.9}, "sink"),  # no probe: no induction
    ({"distance_mean": math.nan, "self_mean": math.nan, "prev_token_mean": math.nan,
      "entropy_mean": 2.5}, "broad"),  # cross attention
    ({"prev_token_mean": 0.6, "first_token_mean": 0.9}, "previous-token"),  # order decides
])
def test_labels_follow_the_documented_thresholds_in_order(change, expected):
    row = dict(BASE, **change)
    if "induction" in change and math.isnan(change["induction"]):
        del row["induction"]
    assert labels.label(row) == expected
    assert expected in labels.TYPES
