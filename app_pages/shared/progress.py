"""Progress that says what is happening: a spinner naming the computation ("Computing
attention for 1,645 tokens…") and, while the engine runs a pass, under it a bar "layer 5 of 18" fed
by its per-layer callback (engine.api.reporting_progress). "Loading <model>…" belongs to
`shared.models.get_model` alone, shown while a model loads.

    with computing(say("computing", n=n)):
        rec = attend(name, device, text)      # cached: on a hit no layer runs and no bar shows

    with steps(4) as step:                    # a slow view: named steps
        with step(say("counting_parameters")):
            ...

The callback is set in a context variable around the call, so it never becomes an argument
(a cache key) of the cached function it runs inside.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import streamlit as st

from app_pages.shared.i18n import COMMON_TEXT, tr
from engine.api import reporting_progress

try:  # Streamlit internals, read defensively: without them there is a spinner but no bar
    from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException
    from streamlit.runtime.scriptrunner_utils.script_run_context import in_cached_function
except ImportError:  # pragma: no cover - another Streamlit version
    ScriptControlException, in_cached_function = (), None


@contextlib.contextmanager
def _not_recorded() -> Iterator[None]:
    """Streamlit records the elements a cached function writes, to replay them on a cache
    hit. The bar is drawn from inside the cached call but lives outside it (a placeholder
    made before the call), so a replay could not find it (CacheReplayClosureError) and a
    finished bar has nothing to say on a hit anyway: its updates are written unrecorded."""
    token = in_cached_function.set(False)
    try:
        yield
    finally:
        in_cached_function.reset(token)


class LayerBar:
    """The engine's per-layer callback, drawing "layer k of n" into a placeholder.

    Every Streamlit write is also where a rerun (the reader changed a widget) or a stop is
    raised. Raised from inside the engine's pass it would throw the pass away, uncached,
    and the rerun would often start the same pass again from layer 0; so the bar holds it,
    stops drawing, and `raise_held` raises it once the pass is over (as without a bar, where
    the rerun waits for the pass)."""

    def __init__(self):
        self.slot = st.empty()
        self.held: BaseException | None = None
        self.calls = 0

    def __call__(self, done: int, total: int) -> None:
        self.calls += 1
        if self.held is not None or in_cached_function is None:
            return
        text = tr(COMMON_TEXT, "layer_of", k=done, n=total)
        try:
            with _not_recorded():
                self.slot.progress(min(done / max(total, 1), 1.0), text=text)
        except ScriptControlException as exc:
            self.held = exc

    def close(self) -> None:
        with contextlib.suppress(ScriptControlException):
            self.slot.empty()

    def raise_held(self) -> None:
        if self.held is not None:
            raise self.held


@contextlib.contextmanager
def computing(what: str) -> Iterator[LayerBar]:
    """A spinner saying `what…` and, for each pass the engine runs inside the block, a bar
    "layer k of n" under it. Yields the bar (its `calls` count the layers reported)."""
    bar = LayerBar()
    try:
        with st.spinner(f"{what}…"), reporting_progress(bar):
            yield bar
    finally:
        bar.close()
    bar.raise_held()


class StepBar:
    """The steps of a slow view, each named: `with step("Counting parameters of X"): ...`.
    Each step is a spinner (Streamlit shows it once the step has taken 0.5 s) over a bar
    "step k of n" that appears once the steps together have taken STEP_DELAY_S, so a rerun
    served from caches flashes neither."""

    STEP_DELAY_S = 0.3

    def __init__(self, total: int):
        self.total, self.done = max(total, 1), 0
        self.slot = st.empty()
        self.start = time.perf_counter()
        self.texts: list[str] = []  # every step named, shown or not (tests read it)

    @contextlib.contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        self.texts.append(what)
        k = min(self.done + 1, self.total)
        if time.perf_counter() - self.start >= self.STEP_DELAY_S:
            self.slot.progress(min(self.done / self.total, 1.0),
                               text=tr(COMMON_TEXT, "step_of", k=k, n=self.total))
        with st.spinner(f"{what}…"):
            yield
        self.done += 1


@contextlib.contextmanager
def steps(total: int) -> Iterator[StepBar]:
    """A StepBar of `total` steps, cleared when the block ends."""
    bar = StepBar(total)
    try:
        yield bar
    finally:
        bar.slot.empty()
