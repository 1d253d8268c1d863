"""Server-side step timings for the speed benchmark (`bench/bench_browser.py --long`).

    from app_pages.shared.timing import timed, timed_fn

    with timed("engine pass", layer=3):          # a block; keywords go to "extra"
        rec = attend(...)
    with timed("figure build") as t:            # extra known only inside the block
        fig = head_heatmap(...)
        t.extra["cells"] = int(w.size)

    @timed_fn("reductions")                      # every call of a function
    def long_summary(...): ...

Off unless the environment variable ATTENTION_STUDIO_TIMINGS names a file: then every step
appends one JSON line to it,
{"t": wall time when the step began, "session": the Streamlit session id or null, "step":
name, "s": seconds, "extra": {...}} (a step that raised also has extra "error"). Off, a step
costs one environment look-up and hands back a shared object that does nothing, so the
calls can stay in the pages. The benchmark reads the file and pairs steps with its actions
by session and time. Writes are serialised by a lock (Streamlit runs sessions on threads);
processes should each get their own file.

Step names the benchmark sums into its columns: "engine pass", "reductions", "figure build",
"serialise" and "figure to browser" (the last two are recorded by shared/download.py).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

ENV = "ATTENTION_STUDIO_TIMINGS"

_lock = threading.Lock()
_broken: set[str] = set()  # paths that failed once: said once on stderr, then skipped

F = TypeVar("F", bound=Callable[..., Any])


def enabled() -> bool:
    """Whether steps are being recorded (the variable is read on every call, so a test or a
    server started with it set sees it without a reload)."""
    return bool(os.environ.get(ENV))


def _session_id() -> str | None:
    """The current Streamlit session's id, or None outside a script run (a bare thread, a
    command-line call)."""
    streamlit = sys.modules.get("streamlit")
    if streamlit is None:  # never import Streamlit just to time something
        return None
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx(suppress_warning=True)
    except Exception:  # noqa: BLE001 - a Streamlit without this API: no session id
        return None
    return getattr(ctx, "session_id", None) if ctx is not None else None


def record(step: str, seconds: float, started: float | None = None, **extra: Any) -> None:
    """Append one step to the timings file (nothing when timings are off). `started` is the
    wall time the step began (default: `seconds` ago)."""
    path = os.environ.get(ENV)
    if not path or path in _broken:
        return
    line = json.dumps({"t": time.time() - seconds if started is None else started,
                       "session": _session_id(), "step": step, "s": seconds, "extra": extra},
                      ensure_ascii=False, default=str)
    with _lock:
        try:
            with open(path, "a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:  # timing must never break the app
            _broken.add(path)
            print(f"{ENV}={path}: cannot write timings ({exc.strerror or exc}); "
                  "timings are off for this file", file=sys.stderr)


class _Step:
    """One running step: its wall start, a perf-counter start and the extra it will write."""

    __slots__ = ("extra", "name", "perf", "wall")

    def __init__(self, name: str, extra: dict[str, Any]):
        self.name, self.extra = name, extra

    def __enter__(self) -> _Step:
        self.wall, self.perf = time.time(), time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        seconds = time.perf_counter() - self.perf
        if exc_type is not None:
            self.extra["error"] = exc_type.__name__
        record(self.name, seconds, started=self.wall, **self.extra)


class _Off:
    """What `timed` hands back when timings are off: enters, exits, keeps nothing."""

    __slots__ = ()

    @property
    def extra(self) -> dict[str, Any]:
        return {}  # a fresh dict each time: writes to it go nowhere

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        return None


_OFF = _Off()


def timed(step: str, **extra: Any) -> _Step | _Off:
    """A context manager that records how long its block took as `step` (keywords and
    whatever is put in `.extra` inside the block go to the line's "extra")."""
    if not os.environ.get(ENV):
        return _OFF
    return _Step(step, dict(extra))


def timed_fn(step: str, **extra: Any) -> Callable[[F], F]:
    """A decorator: every call of the function is recorded as `step`."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            if not os.environ.get(ENV):
                return fn(*args, **kwargs)
            with _Step(step, dict(extra, fn=fn.__qualname__)):
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap


def read_steps(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The steps written to `path` so far (a line cut short by a writer still running is
    skipped)."""
    steps = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    steps.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        return []
    return steps
