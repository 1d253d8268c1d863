"""One process-wide cache of results, bounded in bytes, shared by every session.

`st.cache_data(max_entries=N)` bounds a cache by count whatever an entry weighs (a 12-token
MiniLM record is ~40 KB, a 2,048-token Gemma layer ~64 MB) and pickles the whole record on
every hit: a copy of tens of MB each time a long input's page reruns. Here:

- one budget in bytes across every `@byte_cached` function: `ATTENTION_STUDIO_CACHE_MB`
  (MiB, read at import; default `DEFAULT_MB`), least recently used entries evicted first,
  the large ones (over 1/SMALL_SHARE of the budget) before any small one;
- a hit returns the SAME object to every session (no pickling), so the numpy arrays in it are
  made read-only: a caller that writes to one gets a ValueError instead of changing what
  another session sees (copy first to edit);
- an entry is weighed by the buffers of its arrays (an array that is a view of a torch
  tensor or of a larger array counts the whole buffer it keeps alive, each buffer once) plus
  `ENTRY_OVERHEAD`; one bigger than the whole budget is returned but not kept;
- callers of one key at the same time compute it once: the first computes, the others wait
  for its result (a class typing the same example sentence costs one forward pass);
- once 64 MiB have been evicted, the allocator's free pages go back to the system
  (glibc's malloc_trim): without it, evicted records' memory stayed in the process.

Streamlit's "Clear caches" (and `st.cache_data.clear()`) clears this cache too.

The budget bounds what the cache keeps, not the process: the models, torch, and the record a
session is drawing right now (even one evicted meanwhile) come on top of it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np

ENV_VAR = "ATTENTION_STUDIO_CACHE_MB"
# 1 GiB: 30 sessions' short sentences weigh a few MB in all (90 records of 16 tokens: 6 MiB);
# what fills the budget is long inputs (a 512-token MiniLM record of all 6 layers is 72 MiB,
# a 2,048-token Gemma layer 64 MiB), of which it keeps about 14, beside the ~430 MiB the
# server holds with MiniLM loaded.
DEFAULT_MB = 1024
MB = 2**20
SMALL_SHARE = 64  # "small": at most 1/64 of the budget (16 MiB of 1 GiB)
ENTRY_OVERHEAD = 1024  # bytes: the key, the record object, its token lists (short inputs)
# glibc keeps freed memory in its arenas (one per thread that allocated: every session runs
# in its own thread), so evicting records did not lower the process's RSS: 16 records of
# 72 MiB through a 512 MiB budget by 4 threads left RSS 725 MiB over its start, with 504 MiB
# cached; handing free pages back after evictions, 533 (bench/load_test.py --long-texts 16).
# malloc_trim takes 1-70 ms, so it runs once this much has been evicted since the last time.
TRIM_AFTER = 64 * MB


def mib_setting(name: str, default_mb: float,
                environ: dict[str, str] | os._Environ = os.environ) -> int:
    """A memory budget in bytes from the environment variable `name` (MiB ≥ 0; unset or
    blank: `default_mb`). Anything else stops with one line naming the variable."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return int(default_mb * MB)
    try:
        mb = float(raw)
    except ValueError:
        mb = math.nan
    if not math.isfinite(mb) or mb < 0:
        raise ValueError(f"{name} must be a number of MiB ≥ 0 (default {default_mb:g}), "
                         f"got {raw!r}")
    return int(mb * MB)


def budget_from_env(environ: dict[str, str] | os._Environ = os.environ) -> int:
    """The cache budget in bytes from ATTENTION_STUDIO_CACHE_MB (MiB; 0 keeps nothing)."""
    return mib_setting(ENV_VAR, DEFAULT_MB, environ)


class Stats(NamedTuple):
    max_bytes: int
    total_bytes: int
    count: int
    hits: int  # found in the cache, or computed by another caller while this one waited
    misses: int  # computed
    evictions: int  # entries dropped to stay under the budget
    oversize: int  # results bigger than the whole budget, returned but not kept


class _Flight:
    """One key being computed: callers of the same key wait on `done`."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None


class ByteLRU:
    """A thread-safe LRU map bounded by the bytes of the arrays its values hold."""

    def __init__(self, max_bytes: int, trim_after: int = TRIM_AFTER):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be ≥ 0, got {max_bytes}")
        self.max_bytes, self.trim_after = max_bytes, trim_after
        self._untrimmed = 0  # bytes evicted since memory was last handed back
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._total = self._hits = self._misses = self._evictions = self._oversize = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any],
                       keep: Callable[[Any], bool] | None = None) -> Any:
        """The cached value of `key`, else `compute()`'s (run once however many callers of
        `key` arrive meanwhile; if it raises, the exception goes to its own caller and each
        waiting caller tries again). A value for which `keep(value)` is false is handed to
        the callers waiting for it but not kept (e.g. None for "not ready yet")."""
        while True:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    self._hits += 1
                    return self._entries[key][0]
                flight = self._flights.get(key)
                mine = flight is None
                if mine:
                    flight = self._flights[key] = _Flight()
                    self._misses += 1
            if not mine:
                flight.done.wait()
                if flight.ok:
                    with self._lock:
                        self._hits += 1
                    return flight.value
                continue  # its computation failed: try again, perhaps as the one computing
            try:
                value = compute()
                size = freeze(value) + ENTRY_OVERHEAD
                flight.value, flight.ok = value, True
                if (keep is None or keep(value)) and self._keep(key, value, size):
                    trim_memory()  # outside the lock; the evicted values are released
                return value
            finally:
                with self._lock:
                    del self._flights[key]
                flight.done.set()

    def _keep(self, key: Hashable, value: Any, size: int) -> bool:
        """Keep `value`, evicting the least recently used; True when enough was evicted
        since the last time to hand memory back."""
        with self._lock:
            if size > self.max_bytes:
                self._oversize += 1
                return False
            if key in self._entries:  # defensive: one flight per key, so never expected
                self._total -= self._entries.pop(key)[1]
            self._entries[key] = (value, size)
            self._total += size
            while self._total > self.max_bytes:
                _, dropped = self._entries.pop(self._victim(key))
                self._total -= dropped
                self._evictions += 1
                self._untrimmed += dropped
            if self._untrimmed < self.trim_after:
                return False
            self._untrimmed = 0
            return True

    def _victim(self, new: Hashable) -> Hashable:
        """The entry to evict (the lock held): the least recently used large one, else the
        least recently used. Without the size class, one large result (a 1 GB map of an
        8,000-token layer) arriving evicted the small ones used just before it with it
        (an ablation's outputs, a summary), each a pass to compute again."""
        small = self.max_bytes // SMALL_SHARE
        for k, (_, size) in self._entries.items():
            if size > small and k != new:
                return k
        return next(iter(self._entries))

    def clear(self) -> None:
        """Forget every entry and reset the counters (computations in flight still finish
        and hand their result to their callers)."""
        with self._lock:
            self._entries.clear()
            self._total = self._hits = self._misses = self._evictions = self._oversize = 0

    def stats(self) -> Stats:
        with self._lock:
            return Stats(self.max_bytes, self._total, len(self._entries), self._hits,
                         self._misses, self._evictions, self._oversize)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; elsewhere nothing to call
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def trim_memory() -> None:
    """Hand the allocator's free pages back to the system (glibc's malloc_trim)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def freeze(value: Any) -> int:
    """Make every numpy array inside `value` read-only; return the bytes they keep alive.

    Looks into ndarrays, dicts, lists, tuples, sets and dataclasses (engine.AttentionRecord
    keeps its maps, scores, q, k, norm and flow in dicts of arrays, and arrays in outputs)."""
    buffers: dict[int, int] = {}  # buffer id → bytes, so a shared buffer is counted once
    seen: set[int] = set()
    stack = [value]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, np.ndarray):
            x.flags.writeable = False
            if x.dtype.hasobject:
                stack.extend(x.ravel().tolist())
            buffer_id, nbytes = _buffer(x)
            buffers[buffer_id] = max(buffers.get(buffer_id, 0), nbytes)
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list | tuple | set | frozenset):
            stack.extend(x)
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            stack.extend(getattr(x, f.name) for f in dataclasses.fields(x))
    return sum(buffers.values())


def _buffer(a: np.ndarray) -> tuple[int, int]:
    """(an id of the memory `a` keeps alive, its bytes): the root of a chain of views, or the
    storage of the torch tensor an array was made from (`tensor.numpy()`; duck-typed, since
    app pages import no torch)."""
    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    storage = getattr(root.base, "untyped_storage", None)
    if callable(storage):
        s = storage()
        return s.data_ptr(), max(s.nbytes(), root.nbytes)
    return id(root), root.nbytes


def cache_key(name: str, args: tuple, kwargs: dict) -> Hashable:
    """(name, arguments, keyword arguments) as a hashable key; lists, dicts and sets are
    turned into tuples and frozensets, each value tagged with its type (1, 1.0 and True hash
    alike but are different arguments)."""
    try:
        return (name, _frozen(args), frozenset((k, _frozen(v)) for k, v in kwargs.items()))
    except TypeError as exc:
        raise TypeError(f"byte_cached({name!r}): {exc}") from None


def _frozen(x: Any) -> Hashable:
    if isinstance(x, list | tuple):
        return (type(x).__name__, tuple(_frozen(v) for v in x))
    if isinstance(x, dict):
        return ("dict", frozenset((k, _frozen(v)) for k, v in x.items()))
    if isinstance(x, set | frozenset):
        return ("set", frozenset(_frozen(v) for v in x))
    if isinstance(x, np.ndarray) or not isinstance(x, Hashable):
        raise TypeError(f"an argument of type {type(x).__name__} cannot be part of a cache key")
    return (type(x).__name__, x)


CACHE = ByteLRU(budget_from_env())


def byte_cached(name: str, keep: Callable[[Any], bool] | None = None
                ) -> Callable[[Callable], Callable]:
    """Cache a function's results in the process-wide byte-bounded LRU `CACHE`, keyed by
    `name` and every argument (keyword arguments included). Results are shared by every
    caller and their arrays read-only. `keep`: results for which it is false are returned
    but not kept (`keep=lambda r: r is not None` for a function that returns None while
    something is not ready yet)."""
    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def cached(*args, **kwargs):
            return CACHE.get_or_compute(cache_key(name, args, kwargs),
                                        lambda: func(*args, **kwargs), keep)

        cached.uncached = func
        return cached

    return decorate


def keeps(nbytes: int) -> bool:
    """Whether a result holding `nbytes` of arrays fits the shared cache at all (one that
    does not is computed again on every call)."""
    return nbytes + ENTRY_OVERHEAD <= CACHE.max_bytes


def stats() -> Stats:
    """The shared cache's budget, bytes kept, entries, hits, misses, evictions, oversize."""
    return CACHE.stats()


def clear() -> None:
    """Empty the shared cache."""
    CACHE.clear()


def _clear_with_streamlit() -> None:
    """Chain `clear` to `st.cache_data.clear()`, which Streamlit's "Clear caches" menu item
    calls: a reader who clears the caches expects results to be computed again, whichever
    cache held them."""
    import streamlit as st

    api = st.cache_data
    if getattr(api.clear, "clears_result_cache", False):
        return
    original = api.clear

    def clear_both() -> None:
        original()
        clear()

    clear_both.clears_result_cache = True
    api.clear = clear_both


_clear_with_streamlit()
