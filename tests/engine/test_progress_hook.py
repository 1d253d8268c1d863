"""The per-layer progress hook of engine/api.py (`attend(progress=...)`, `reporting_progress`):
called once per block of the recording pass, in order, with the pass's own total; the same
numbers with and without it; set by argument or by `reporting_progress` (a cached wrapper's
way); never fed by another thread's pass."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from engine.analysis import stream_layer_maps
from engine.api import current_progress, per_block, reporting_progress
from tests.conftest import tiny
from tests.engine.test_contributions import loaded

TEXT = "the cat sat on the mat"


def calls_of(fn):
    """(result of fn(callback), [(done, total), ...] the callback saw)."""
    seen: list[tuple[int, int]] = []
    return fn(lambda done, total: seen.append((done, total))), seen


def counted(n: int) -> list[tuple[int, int]]:
    return [(i, n) for i in range(1, n + 1)]


def no_hooks_left(model) -> bool:
    return all(not b._forward_hooks for s in (model.transformer.encoder,
                                              model.transformer.decoder) if s is not None
               for b in s.layers)


@pytest.fixture(params=[("encoder", 3), ("decoder", 4), ("encoder-decoder", 2)],
                ids=lambda p: p[0])
def model(request):
    arch, n = request.param
    layers = dict(n_encoder_layers=n if arch != "decoder" else 0,
                  n_decoder_layers=n if arch != "encoder" else 0)
    return loaded(tiny(arch, **layers))


def n_blocks(model) -> int:
    return model.config.n_encoder_layers + model.config.n_decoder_layers


def test_called_once_per_block_in_order(model):
    target = "le chat" if model.kind == "encoder-decoder" else None
    rec, seen = calls_of(lambda cb: model.attend(TEXT, target=target, progress=cb))
    assert seen == counted(n_blocks(model))
    assert rec.tokens  # the pass ran


def test_same_numbers_with_and_without(model):
    target = "le chat" if model.kind == "encoder-decoder" else None
    plain = model.attend(TEXT, target=target)
    hooked, seen = calls_of(lambda cb: model.attend(TEXT, target=target, progress=cb))
    assert seen
    assert plain.maps.keys() == hooked.maps.keys()
    for k in plain.maps:
        np.testing.assert_array_equal(plain[k], hooked[k])
    for k, v in plain.outputs.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, hooked.outputs[k])
        else:
            assert v == hooked.outputs[k]
    assert no_hooks_left(model)


def test_a_maps_only_pass_counts_the_blocks_it_runs():
    m = loaded(tiny("decoder", n_decoder_layers=5))
    _, seen = calls_of(lambda cb: m.attend(TEXT, layers=[1], outputs=False, progress=cb))
    assert seen == counted(2)  # layer 1 of 5: the pass stops after block 1
    _, seen = calls_of(lambda cb: m.attend(TEXT, layers=[], progress=cb))
    assert seen == counted(5)  # nothing recorded, every block run for the outputs


def test_an_encoder_decoder_maps_only_encoder_pass_stops_there():
    m = loaded(tiny("encoder-decoder", n_encoder_layers=3, n_decoder_layers=2))
    _, seen = calls_of(lambda cb: m.attend(TEXT, target="le", layers=["encoder.self.0"],
                                           outputs=False, progress=cb))
    assert seen == counted(1)
    _, seen = calls_of(lambda cb: m.attend(TEXT, target="le", layers=["decoder.self.0"],
                                           outputs=False, progress=cb))
    assert seen == counted(4)  # the decoder reads the whole encoder's memory first


def test_generated_tokens_are_not_counted():
    """Greedy steps before the recording pass run the blocks too; the bar is the pass's."""
    m = loaded(tiny("decoder", n_decoder_layers=3))
    rec, seen = calls_of(lambda cb: m.attend(TEXT, generate=4, progress=cb))
    assert len(rec.outputs["generated_ids"]) == 4
    assert seen == counted(3)


def test_reporting_sets_the_callback_and_an_argument_wins(model):
    target = "le chat" if model.kind == "encoder-decoder" else None
    outer: list = []
    inner: list = []
    with reporting_progress(lambda d, t: outer.append((d, t))):
        model.attend(TEXT, target=target)
        assert outer == counted(n_blocks(model))
        model.attend(TEXT, target=target, progress=lambda d, t: inner.append((d, t)))
    assert inner == counted(n_blocks(model)) and len(outer) == n_blocks(model)
    model.attend(TEXT, target=target)  # after the block: nobody is called
    assert len(outer) == n_blocks(model)
    assert current_progress() is None


def test_stream_layer_maps_reports_its_pass(model):
    kind = {"encoder": "encoder.self", "decoder": "decoder.self",
            "encoder-decoder": "decoder.cross"}[model.kind]
    target = "le chat" if model.kind == "encoder-decoder" else None
    keys, seen = calls_of(lambda cb: stream_layer_maps(model, TEXT, kind, lambda k, w: None,
                                                       target=target, progress=cb))
    assert seen == counted(n_blocks(model))
    with reporting_progress(lambda d, t: seen.append((d, t))):
        stream_layer_maps(model, TEXT, kind, lambda k, w: None, target=target)
    assert seen == counted(n_blocks(model)) * 2


def test_another_threads_pass_does_not_move_this_bar():
    m = loaded(tiny("decoder", n_decoder_layers=3))
    mine: list = []
    ids = torch.tensor([m.codec.encode(TEXT).ids])
    with per_block(m.transformer.decoder.layers, 3, lambda d, t: mine.append(d)):
        worker = threading.Thread(target=lambda: m.transformer(ids))
        worker.start()
        worker.join()
        assert mine == []  # the hooks were on, but the pass was another thread's
        with torch.inference_mode():
            m.transformer(ids)
    assert mine == [1, 2, 3]
    assert no_hooks_left(m)


def test_a_failing_callback_stops_the_pass_and_leaves_no_hook():
    m = loaded(tiny("decoder", n_decoder_layers=3))

    def fail(done, total):
        raise KeyboardInterrupt  # what an interface's "stop" may raise from a callback

    with pytest.raises(KeyboardInterrupt):
        m.attend(TEXT, progress=fail)
    assert no_hooks_left(m)
    assert m.attend(TEXT).tokens
