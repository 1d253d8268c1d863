"""Maps recomputed from a pass's queries and keys (engine.replay) are the pass's own maps,
under every mask a model brings: causal, per-layer sliding windows, GQA/MQA sharing, ALiBi,
soft-capping; and the stream hands over every layer once, in order."""

from __future__ import annotations

import numpy as np
import pytest

from engine.replay import maps_from_qk, stream_layers
from tests.conftest import tiny
from tests.engine.test_contributions import WORDS, loaded

TEXT = " ".join(WORDS[4 + i % 9] for i in range(150))  # 150 tokens: query blocks are used

CASES = {
    "gqa_rope_windows_softcap": dict(arch="decoder", n_kv_heads=2, positions="rope",
                                     window=(7, None), attn_softcap=20.0, norm="rmsnorm",
                                     norm_position="pre", max_len=256),
    "mqa_rope_qknorm": dict(arch="decoder", n_kv_heads=1, positions="rope", qk_norm=True,
                            norm="rmsnorm", norm_position="pre", max_len=256),
    "encoder_alibi": dict(arch="encoder", positions="alibi", max_len=256),
    "encoder_learned": dict(arch="encoder", positions="learned", max_len=256),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_recomputed_maps_equal_the_recorded_ones(case):
    m = loaded(tiny(**CASES[case]))
    kind = "decoder.self" if m.kind == "decoder" else "encoder.self"
    rec = m.attend(TEXT)
    got: dict = {}
    keys = stream_layers(m, TEXT, kind, lambda k, w, qk: got.setdefault(k, (w, qk)))
    assert keys == [k for k in rec.keys() if k.startswith(kind)] == list(got)
    for key, (w, qk) in got.items():
        np.testing.assert_allclose(w, rec[key], atol=1e-6)  # the stream's maps are the record's
        h, t, d = qk.q.shape
        assert qk.k.shape == (m.config.kv_heads, t, d)  # K heads stored once
        again = maps_from_qk(m, key, qk)
        np.testing.assert_allclose(again, rec[key], atol=1e-6)
        one = maps_from_qk(m, key, qk, heads=[h - 1])
        np.testing.assert_allclose(one[0], rec[key][h - 1], atol=1e-6)


@pytest.mark.parametrize("case", ["gqa_rope_windows_softcap", "encoder_alibi"])
def test_recomputed_scores_equal_the_recorded_ones(case):
    m = loaded(tiny(**CASES[case]))
    kind = "decoder.self" if m.kind == "decoder" else "encoder.self"
    rec = m.attend(TEXT, scores=True, qk=True)
    got: dict = {}
    stream_layers(m, TEXT, kind, lambda k, w, qk: got.setdefault(k, qk))
    for key, qk in got.items():
        w, s = maps_from_qk(m, key, qk, scores=True)
        np.testing.assert_allclose(w, rec[key], atol=1e-6)
        finite = np.isfinite(rec.scores[key])
        assert (np.isfinite(s) == finite).all()  # the same cells masked (-inf)
        np.testing.assert_allclose(s[finite], rec.scores[key][finite], atol=1e-5)
        g = qk.q.shape[0] // qk.k.shape[0]
        np.testing.assert_allclose(np.repeat(qk.k, g, axis=0), rec.k[key], atol=1e-6)
        np.testing.assert_allclose(qk.q, rec.q[key], atol=1e-6)


def test_the_pass_reports_the_models_outputs():
    for arch in ("decoder", "encoder"):
        m = loaded(tiny(arch, max_len=256))
        m.config.extra["pooling"] = "mean"  # an encoder reports its embedding
        kind = f"{arch}.self"
        want = m.attend(TEXT).outputs
        got: dict = {}
        stream_layers(m, TEXT, kind, lambda *a: None, outputs=got)
        if arch == "decoder":
            assert [t for t, _ in got["top_k"]] == [t for t, _ in want["top_k"]]
            np.testing.assert_allclose([p for _, p in got["top_k"]],
                                       [p for _, p in want["top_k"]], rtol=1e-5)
        else:
            np.testing.assert_allclose(got["embedding"], want["embedding"], atol=1e-5)


def test_a_window_really_masks_and_rows_sum_to_one():
    m = loaded(tiny(**CASES["gqa_rope_windows_softcap"]))
    got: dict = {}
    stream_layers(m, TEXT, "decoder.self", lambda k, w, qk: got.setdefault(k, qk))
    w0 = maps_from_qk(m, "decoder.self.0", got["decoder.self.0"])  # window 7
    t = w0.shape[-1]
    i, j = np.indices((t, t))
    assert (w0[:, (j > i) | (i - j >= 7)] == 0).all()  # masked cells exactly 0
    np.testing.assert_allclose(w0.sum(-1), 1.0, atol=1e-5)
    w1 = maps_from_qk(m, "decoder.self.1", got["decoder.self.1"])  # global layer
    assert (w1[:, i - j >= 7] > 0).any()


def test_replay_refuses_what_it_does_not_cover():
    m = loaded(tiny("encoder-decoder"))
    with pytest.raises(ValueError, match="replay covers"):
        stream_layers(m, "the cat", "decoder.cross", lambda *a: None)
