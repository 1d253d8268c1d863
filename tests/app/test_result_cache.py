"""The byte-bounded result cache (app_pages/shared/result_cache.py): LRU order, the byte
budget, oversize entries, read-only shared results, one computation per key under
concurrency, the budget's setting; and the Attention page served from it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import streamlit as st

import engine
from app_pages.shared import result_cache
from app_pages.shared.result_cache import ENTRY_OVERHEAD, ByteLRU, budget_from_env, freeze
from tests.app_helpers import ROOT, arr, chart, open_page, rerun
from tests.conftest import needs_minilm

KB = 1024
PAGE = "app_pages/attention/page.py"
TIMEOUT = 300


def block(kb: int) -> np.ndarray:
    return np.zeros(kb * KB, dtype=np.uint8)


def entry(kb: int) -> int:
    """The bytes an entry holding one array of `kb` KiB is weighed at."""
    return kb * KB + ENTRY_OVERHEAD


def put(cache: ByteLRU, key, kb: int):
    return cache.get_or_compute(key, lambda: block(kb))


def kept(cache: ByteLRU) -> list:
    return list(cache._entries)


def test_least_recently_used_goes_first():
    cache = ByteLRU(3 * entry(10))
    for key in "abc":
        put(cache, key, 10)
    put(cache, "a", 10)  # a hit: "a" is now the most recent, "b" the least
    put(cache, "d", 10)
    assert kept(cache) == ["c", "a", "d"]
    s = cache.stats()
    assert (s.hits, s.misses, s.evictions, s.count) == (1, 4, 1, 3)


def test_large_entries_go_before_small_ones():
    """A large result arriving evicts the least recently used large one, not the small ones
    used before it (their share of the budget is at most 1/64 each)."""
    cache = ByteLRU(64 * entry(10))  # small: up to one entry of 10 KiB
    put(cache, "small", 1)
    put(cache, "big", 400)
    put(cache, "tiny", 2)
    put(cache, "bigger", 300)
    assert kept(cache) == ["small", "tiny", "bigger"]
    # with no large entry left to evict, the least recently used small one goes
    cache = ByteLRU(64 * entry(1))  # 64 small entries fill it
    for key in range(65):
        put(cache, key, 1)
    assert kept(cache) == list(range(1, 65))
    put(cache, "big", 30)  # evicts small ones, the least recently used first, not itself
    evicted = -(-entry(30) // entry(1))
    assert kept(cache) == [*range(1 + evicted, 65), "big"]


def test_total_stays_under_the_budget_and_counts_array_bytes():
    cache = ByteLRU(110 * KB)
    for i, kb in enumerate([30, 20, 45, 10, 60, 5, 33]):
        put(cache, i, kb)
        s = cache.stats()
        assert s.total_bytes <= s.max_bytes
        assert s.total_bytes == sum(size for _, size in cache._entries.values())
    assert kept(cache) == [4, 5, 6]  # 60 + 5 + 33 KiB and 3 overheads fit; 10 KiB more not


def test_an_entry_bigger_than_the_budget_is_returned_but_not_kept():
    cache = ByteLRU(50 * KB)
    put(cache, "small", 10)
    big = put(cache, "big", 60)
    assert big.nbytes == 60 * KB
    assert kept(cache) == ["small"]  # not evicted for nothing either
    s = cache.stats()
    assert (s.oversize, s.evictions) == (1, 0)
    calls = []
    cache.get_or_compute("big", lambda: calls.append(1) or block(60))
    assert calls == [1]  # computed again: it was never kept


def test_memory_is_handed_back_once_enough_was_evicted(monkeypatch):
    trims = []
    monkeypatch.setattr(result_cache, "trim_memory", lambda: trims.append(1))
    cache = ByteLRU(2 * entry(10), trim_after=2 * entry(10))
    for key in "abc":
        put(cache, key, 10)
    assert cache.stats().evictions == 1 and trims == []  # 10 KiB evicted: not yet
    put(cache, "d", 10)
    assert cache.stats().evictions == 2 and trims == [1]
    put(cache, "e", 10)
    assert trims == [1]  # counted again from zero


def test_trim_memory_runs_here():
    result_cache.trim_memory()  # glibc's malloc_trim, or nothing where there is none


def test_a_budget_of_zero_keeps_nothing():
    cache = ByteLRU(0)
    assert put(cache, "a", 1).nbytes == KB
    assert cache.stats().count == 0


def test_every_caller_gets_the_same_object_with_read_only_arrays():
    cache = ByteLRU(10 * 2**20)
    record = engine.AttentionRecord(
        tokens=["a", "b"], maps={"encoder.self.0": np.full((2, 2, 2), 0.5, np.float32)},
        scores={"encoder.self.0": np.zeros((2, 2, 2), np.float32)},
        outputs={"embedding": np.ones(4, np.float32), "nested": [{"x": np.ones(3)}]})
    first = cache.get_or_compute("rec", lambda: record)
    second = cache.get_or_compute("rec", lambda: pytest.fail("computed twice"))
    assert first is second is record
    arrays = [record.maps["encoder.self.0"], record.scores["encoder.self.0"],
              record.outputs["embedding"], record.outputs["nested"][0]["x"]]
    for a in arrays:
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 1
    assert record.maps["encoder.self.0"][0, 0, 0] == 0.5


def test_arrays_are_weighed_by_the_buffer_they_keep_alive_each_once():
    base = np.zeros(1000, np.float32)  # 4,000 bytes
    views = [base[:10], base[10:20], base.reshape(10, 100)]
    assert freeze(views) == 4000
    assert not any(v.flags.writeable for v in views)
    assert freeze({"a": np.zeros(10, np.float64), "b": (np.zeros(5, np.int8),)}) == 85


def test_arrays_made_from_a_torch_tensor_count_its_whole_storage():
    import torch

    batch = torch.zeros(2, 3, 100)  # 2,400 bytes: one padded batch, two records' views
    halves = [batch[0].numpy(), batch[1].numpy()]
    assert halves[0].nbytes == 1200
    assert freeze(halves) == 2400


def test_concurrent_callers_of_one_key_compute_it_once():
    cache = ByteLRU(2**20)
    calls = []
    started = threading.Event()

    def slow():
        calls.append(threading.get_ident())
        started.set()
        time.sleep(0.3)
        return block(1)

    results = [None] * 8
    errors = []

    def caller(i):
        try:
            results[i] = cache.get_or_compute("same", slow)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and len(calls) == 1
    assert all(r is results[0] for r in results)
    s = cache.stats()
    assert (s.misses, s.hits, s.count) == (1, 7, 1)


def test_different_keys_compute_at_the_same_time():
    cache = ByteLRU(2**20)
    inside = threading.Barrier(2, timeout=5)  # both computations must be running at once

    def compute():
        inside.wait()
        return block(1)

    threads = [threading.Thread(target=cache.get_or_compute, args=(k, compute)) for k in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not inside.broken and cache.stats().count == 2


def test_a_failed_computation_raises_to_its_caller_and_the_next_caller_retries():
    cache = ByteLRU(2**20)

    def boom():
        raise RuntimeError("engine failed")

    with pytest.raises(RuntimeError, match="engine failed"):
        cache.get_or_compute("k", boom)
    assert cache.get_or_compute("k", lambda: block(1)).nbytes == KB
    assert cache.stats().count == 1


def test_a_result_keep_refuses_is_returned_but_computed_again_next_time():
    calls = []

    @result_cache.byte_cached("test.keep", keep=lambda r: r is not None)
    def ready(n):
        calls.append(n)
        return None if len(calls) == 1 else np.zeros(n)

    result_cache.clear()
    assert ready(3) is None  # "not ready yet": not kept
    first = ready(3)
    assert first.shape == (3,) and ready(3) is first and calls == [3, 3]


def test_the_decorator_keys_on_every_argument_kwargs_included():
    calls = []

    @result_cache.byte_cached("test.decorated")
    def f(text, **kw):
        calls.append((text, kw))
        return np.zeros(1)

    result_cache.clear()
    a = f("x", layers=["encoder.self.0"], outputs=True)
    assert f("x", outputs=True, layers=["encoder.self.0"]) is a  # kwargs order is not the key
    f("x", layers=["encoder.self.1"], outputs=True)
    f("x", layers=("encoder.self.0",), outputs=True)  # a tuple is not the list
    f("x", layers=["encoder.self.0"], outputs=1)  # 1 == True, but another argument
    f("y", layers=["encoder.self.0"], outputs=True)
    assert len(calls) == 5
    with pytest.raises(TypeError, match="test.decorated.*ndarray cannot be part of a cache"):
        f("x", knockout=np.zeros(2))


def test_streamlit_clear_caches_clears_it_too():
    @result_cache.byte_cached("test.clear")
    def f():
        return np.zeros(1)

    f()
    assert result_cache.stats().count >= 1
    st.cache_data.clear()  # what Streamlit's "Clear caches" menu item calls
    assert result_cache.stats().count == 0


@pytest.mark.parametrize("raw, mb", [(None, 1024), ("", 1024), ("512", 512), (" 64 ", 64),
                                     ("0", 0), ("1.5", 1.5)])
def test_the_budget_setting(raw, mb):
    env = {} if raw is None else {"ATTENTION_STUDIO_CACHE_MB": raw}
    assert budget_from_env(env) == int(mb * 2**20)


@pytest.mark.parametrize("raw", ["abc", "-1", "nan", "inf", "512MB"])
def test_a_bad_budget_setting_is_a_clear_error(raw):
    with pytest.raises(ValueError, match=r"ATTENTION_STUDIO_CACHE_MB must be a number of MiB"):
        budget_from_env({"ATTENTION_STUDIO_CACHE_MB": raw})


def test_a_bad_budget_setting_stops_the_import_with_one_line():
    run = subprocess.run([sys.executable, "-c", "import app_pages.shared.result_cache"],
                         cwd=ROOT, capture_output=True, text=True,
                         env={"ATTENTION_STUDIO_CACHE_MB": "lots", "PATH": ""})
    assert run.returncode != 0
    assert "ValueError: ATTENTION_STUDIO_CACHE_MB must be a number of MiB ≥ 0 (default 1024)," \
           " got 'lots'" in run.stderr


@needs_minilm
def test_the_attention_page_is_served_from_the_byte_cache(monkeypatch):
    from app_pages.shared.models import attend

    calls = []
    real = engine.LoadedModel.attend

    def spy(self, text_, **kw):
        calls.append(text_)
        return real(self, text_, **kw)

    monkeypatch.setattr(engine.LoadedModel, "attend", spy)
    result_cache.clear()
    text = "Seven quiet owls watched the harbour lights."
    sessions = []
    for _ in range(2):  # two sessions typing the same sentence: one forward pass
        at = open_page(PAGE, TIMEOUT)
        at.text_area(key="attn_text").set_value(text)
        sessions.append(rerun(at))
    assert calls.count(text) == 1
    s = result_cache.stats()
    assert s.count >= 1 and 0 < s.total_bytes <= s.max_bytes and s.hits >= 1
    rec = attend("minilm", "auto", text, layers=None, outputs=True, target=None, generate=0)
    assert calls.count(text) == 1  # the page's own call, found in the cache
    assert not rec["encoder.self.0"].flags.writeable
    for at in sessions:
        z = arr(chart(at, "encoder.self.0 · head 0")["data"][0]["z"])
        np.testing.assert_allclose(z, rec["encoder.self.0"][0], atol=1e-6)
