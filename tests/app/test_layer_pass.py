"""The background pass over a long input's layers (app_pages/attention/layer_pass.py): its
budget setting, least-recently-used eviction of finished passes, waiting for a layer, and a
failed pass reported to the views that wait for it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app_pages.attention import layer_pass as lp
from engine.replay import LayerQK


def fake(n_layers: int, done: int, mb: float) -> lp.LongPass:
    p = lp.LongPass(keys=[f"decoder.self.{i}" for i in range(n_layers)], n_tokens=8,
                    keep_qk=True)
    q = np.zeros(int(mb * 2**20 / 4 / max(done, 1)), np.float32)
    for i in range(done):
        p.done.append(p.keys[i])
        p.qk[p.keys[i]] = LayerQK(q=q, k=np.zeros(0, np.float32))
    return p


def test_budget_from_the_environment():
    assert lp.pass_budget({}) == lp.DEFAULT_PASS_MB * 2**20
    assert lp.pass_budget({lp.ENV_VAR: "64"}) == 64 * 2**20
    for bad in ("lots", "-1", "nan"):
        with pytest.raises(ValueError, match=lp.ENV_VAR):
            lp.pass_budget({lp.ENV_VAR: bad})


def test_finished_passes_are_evicted_oldest_first_and_running_ones_never(monkeypatch):
    monkeypatch.setattr(lp, "_passes", lp.OrderedDict())
    lp._passes["old"] = fake(2, 2, 10)
    lp._passes["running"] = fake(2, 1, 10)
    lp._passes["new"] = fake(2, 2, 10)
    lp._evict(25 * 2**20)
    assert list(lp._passes) == ["running", "new"]
    lp._evict(5 * 2**20)  # a running pass stays even over budget
    assert list(lp._passes) == ["running"]


def test_wait_returns_once_the_layer_is_in_and_reports_progress():
    p = fake(3, 0, 0)
    seen = []

    def feed():
        for key in p.keys:
            p.take(key, np.full((1, 4, 4), 0.25, np.float32),
                   LayerQK(q=np.zeros((1, 4, 2), np.float32), k=np.zeros((1, 4, 2), np.float32)))

    t = threading.Timer(0.3, feed)
    t.start()
    p.wait(2, lambda done, total: seen.append((done, total)))
    t.join()
    assert len(p.done) >= 2 and seen and seen[0] == (0, 3)
    assert p.reduced.thumbs[0].shape == (1, 4, 4) and len(p.reduced.rows) == 3
    np.testing.assert_allclose(p.reduced.means[0].sum(-1), 1.0)


def test_a_failed_pass_raises_in_the_views_that_wait():
    p = fake(3, 1, 0)
    p.error = "RuntimeError: out of memory"
    p.wait(1)  # what it has is still usable
    with pytest.raises(RuntimeError, match="out of memory"):
        p.wait(3)


@pytest.mark.parametrize("key,shape", [("decoder.self.3", (3, 40, 40)),
                                       ("decoder.cross.1", (2, 9, 14))])
def test_metric_rows_are_the_head_metrics_tabs(key, shape):
    """The pass's rows (the engine's torch metrics) equal viz.metrics.head_metrics' (numpy),
    None where a metric is undefined (cross attention)."""
    from app_pages.attention.passes import metric_rows
    from viz.metrics import head_metrics

    rng = np.random.default_rng(0)
    w = rng.random(shape).astype(np.float32)
    if shape[1] == shape[2]:
        w = np.tril(w)  # causal: exact zeros above the diagonal
    w /= w.sum(-1, keepdims=True)
    ours = metric_rows(key, w, self_attention="cross" not in key)
    theirs = head_metrics({key: w})
    assert [(r["block"], r["layer"], r["head"]) for r in ours] == \
        [(r["block"], r["layer"], r["head"]) for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        for m, v in b.items():
            if m in ("block", "layer", "head"):
                continue
            assert (a[m] is None) == (v is None), m
            if v is not None:
                assert a[m] == pytest.approx(v, rel=1e-5, abs=1e-7), m


@pytest.mark.slow
def test_past_the_qk_budget_a_pass_keeps_streams_and_layers_run_from_them(monkeypatch):
    """A budget with room for the streams but not the queries and keys: the pass keeps the
    streams, and another layer is that layer's own pass from its stream, the same map."""
    import engine
    from app_pages.attention import long_layers

    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("minilm is not installed")
    # MiniLM, 512 tokens: q and k 9 MiB, streams 5 MiB, the reductions (thumbnails, rollout
    # input) 11 MiB
    monkeypatch.setenv(lp.ENV_VAR, "20")
    monkeypatch.setattr(lp, "_passes", lp.OrderedDict())
    text = " ".join(["a stream is kept where queries and keys are not"] * 60)
    p = lp.long_pass("minilm", "cpu", text, "encoder.self")
    p.wait(len(p.keys))
    p.wait_end()  # a finished pass over its budget would be evicted here
    assert not p.keep_qk and p.keep_stream
    assert p.nbytes <= lp.pass_budget() and lp.find_pass("minilm", "cpu", text,
                                                         "encoder.self") is p
    assert not p.qk and sorted(p.streams) == sorted(p.keys)
    rec = long_layers.replayed_layer("minilm", "cpu", text, "encoder.self", "encoder.self.4")
    want = engine.load("minilm", "cpu").attend(text, layers=["encoder.self.4"], outputs=False)
    assert rec.meta["settings"]["resumed_at_layer"] == 4
    np.testing.assert_allclose(rec["encoder.self.4"], want["encoder.self.4"], atol=1e-5)
    qk = long_layers.qk_record("minilm", "cpu", text, "encoder.self", "encoder.self.3")
    want = engine.load("minilm", "cpu").attend(text, layers=["encoder.self.3"], scores=True,
                                               qk=True, outputs=False)
    for field in ("maps", "q", "k"):
        np.testing.assert_allclose(getattr(qk, field)["encoder.self.3"],
                                   getattr(want, field)["encoder.self.3"], rtol=1e-5, atol=3e-5)


def test_waiting_for_the_end_returns_even_when_the_outputs_are_empty():
    """An encoder without pooling reports no outputs ({}): the views that wait for the pass's
    end return once it has ended, and a failure is raised to them."""
    p = fake(2, 2, 0)

    def end():
        with p.cond:
            p.outputs, p.ended = {}, True
            p.cond.notify_all()

    t = threading.Timer(0.2, end)
    t.start()
    p.wait_end()
    t.join()
    assert p.ended and p.outputs == {}
    failed = fake(2, 1, 0)
    failed.error = "RuntimeError: boom"
    with pytest.raises(RuntimeError, match="boom"):
        failed.wait_end()


def test_an_ablation_keeps_its_summary_not_its_record(monkeypatch):
    """A long input's ablation resumes from the pass's stream and keeps only what the tab
    shows (outputs, per-head |Δ|): its record (a 1 GB map at 8,000 Gemma tokens) is not
    cached, and the summary is the full ablated pass's."""
    import engine
    from app_pages.attention import long_layers
    from app_pages.shared import result_cache

    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("minilm is not installed")
    monkeypatch.setattr(lp, "_passes", lp.OrderedDict())
    text = " ".join(["an ablation keeps a few numbers"] * 30)
    heads_off = {"encoder.self.2": [5]}
    outputs, deltas = long_layers.ablation_summary("minilm", "cpu", text, "encoder.self",
                                                   "encoder.self.4", heads_off)
    names = [key[0] for key in result_cache.CACHE._entries]
    assert "ablation summary" in names
    assert not [key for key in result_cache.CACHE._entries
                if key[0] == "resumed pass" and "heads_off" in str(key)]
    model = engine.load("minilm", "cpu")
    off = model.attend(text, layers=["encoder.self.4"], heads_off=heads_off)
    intact = model.attend(text, layers=["encoder.self.4"])
    np.testing.assert_allclose(outputs["embedding"], off.outputs["embedding"], atol=1e-5)
    np.testing.assert_allclose(deltas["encoder.self.4"], np.abs(
        off["encoder.self.4"] - intact["encoder.self.4"]).mean(axis=(1, 2)), atol=1e-6)
