"""Maps recomputed from a pass's queries and keys (engine.replay) are the pass's own maps,
under every mask a model brings: causal, per-layer sliding windows, GQA/MQA sharing, ALiBi,
soft-capping; and the stream hands over every layer once, in order."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.replay import lens_from_streams, maps_from_qk, stream_layers
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


def three_layers(case: str):
    """CASES[case] with three layers (a window pattern repeating from its first)."""
    kw = dict(CASES[case])
    if "window" in kw:
        kw["window"] = (kw["window"] * 2)[:3]
    stack = "n_decoder_layers" if kw["arch"] == "decoder" else "n_encoder_layers"
    return loaded(tiny(**kw, **{stack: 3}))


def pass_state(m, kind: str):
    """stream_layers' per-layer q/k/stream and its outputs."""
    got: dict = {}
    outputs: dict = {}
    stream_layers(m, TEXT, kind, lambda k, w, qk: got.setdefault(k, qk), outputs=outputs)
    return got, outputs


@pytest.mark.parametrize("case", ["gqa_rope_windows_softcap", "encoder_learned"])
def test_a_pass_resumed_from_a_kept_stream_is_the_full_pass(case):
    """Resuming at layer L from the stream the pass kept gives the same maps, contributions
    and (with heads off at or above L) the same outputs as running every layer."""
    m = three_layers(case)
    m.config.extra["pooling"] = "mean"
    kind = "decoder.self" if m.kind == "decoder" else "encoder.self"
    got, _ = pass_state(m, kind)
    assert all(qk.stream.shape == (len(m.codec.encode(TEXT).ids), m.config.d_model)
               for qk in got.values())
    key = f"{kind}.1"
    full = m.attend(TEXT, layers=[key], contributions=True, outputs=False)
    ran: list = []
    part = m.attend(TEXT, layers=[key], contributions=True, outputs=False,
                    resume=(1, got[key].stream), progress=lambda done, total: ran.append(total))
    assert set(ran) == {1}  # layer 1 alone ran
    other = m.attend(TEXT, layers=[key], outputs=False, resume=(1, got[key].stream + 1))
    assert not np.allclose(other[key], full[key], atol=1e-3)  # the stream is what it reads
    for k in (key, f"norm.{key}", f"flow.{key}"):  # norms are not bounded by 1: rtol too
        np.testing.assert_allclose(part[k], full[k], rtol=1e-5, atol=1e-6)
    off = {f"{kind}.2": [0]}
    want = m.attend(TEXT, layers=[f"{kind}.2"], heads_off=off)
    have = m.attend(TEXT, layers=[f"{kind}.2"], heads_off=off, resume=(1, got[key].stream))
    np.testing.assert_allclose(have[f"{kind}.2"], want[f"{kind}.2"], atol=1e-6)
    if m.kind == "decoder":
        np.testing.assert_allclose([p for _, p in have.outputs["top_k"]],
                                   [p for _, p in want.outputs["top_k"]], rtol=1e-5)
        assert have.outputs["top_k"] != m.attend(TEXT).outputs["top_k"]  # the head mattered
    else:
        np.testing.assert_allclose(have.outputs["embedding"], want.outputs["embedding"],
                                   atol=1e-6)
    assert have.meta["settings"]["resumed_at_layer"] == 1
    assert "decoder.self.0" not in have.keys() and "encoder.self.0" not in have.keys()


def test_the_logit_lens_from_the_pass_streams_is_the_engines():
    m = three_layers("gqa_rope_windows_softcap")
    got, outputs = pass_state(m, "decoder.self")
    entering = [qk.stream for qk in got.values()]
    for position in (5, -1):
        want = m.attend(TEXT, logit_lens=True, lens_position=position).outputs["logit_lens"]
        have = lens_from_streams(m, entering, outputs["stream"], position)
        assert [[t for t, _ in r] for r in have] == [[t for t, _ in r] for r in want]
        np.testing.assert_allclose([[p for _, p in r] for r in have],
                                   [[p for _, p in r] for r in want], rtol=1e-5)


def test_resume_refuses_what_it_cannot_start():
    m = three_layers("gqa_rope_windows_softcap")
    got, _ = pass_state(m, "decoder.self")
    stream = got["decoder.self.1"].stream
    with pytest.raises(InputError, match="tokens × d_model"):
        m.attend("the cat", resume=(1, stream))
    with pytest.raises(InputError, match="outside the model's 3 layers"):
        m.attend(TEXT, resume=(3, stream))
    with pytest.raises(InputError, match="not with the logit lens"):
        m.attend(TEXT, resume=(1, stream), logit_lens=True)
    with pytest.raises(InputError, match="one text"):
        m.attend_batch([TEXT, TEXT], resume=(1, stream))
