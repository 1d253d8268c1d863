"""The long-input scenario of bench/bench_browser.py (`--long`, issue 17): Gemma 3 270M on a
~2,048-token text in headless Chromium, every step of the Attention page timed from the user's
action to the figure drawn, and each time split into where it went.

    .venv/bin/python bench/bench_browser.py --long --reps 3 --json out.json

The text: the English lines of the census's bundled corpus (assets/corpus/sentences.txt,
CC0), in file order and repeated if needed, as many as fit in --tokens tokens by Gemma's own
tokenizer (counted at run time and printed); each repeat gets its own first line ("Draft
N:"), so no cached pass of one repeat serves another.

Per repeat, each a new action: the text submitted on the Head tab at layer 0 (first view),
another layer, another head, then every other tab of the page's tab list in order (found on
the page, not listed here). Then the same views again, their passes now cached: the Head
tab, every other tab, and the first layer (its pass cached, its figure for the new head not).

"Drawn", for an action: its rerun is over (the script_finished message of the run, read from
the websocket, and Streamlit's running indicator and faded "stale" elements gone), the open
tab holds at least one figure not on the page before the action, and every figure there is
drawn: Plotly's `_fullLayout` present, its SVG built and every heatmap image filled; an
<img> there loaded. A watcher in the page checks this on every animation frame, so the time
is the frame it first held, not when the benchmark looked. "Shown" is the frame a new
figure was first fully drawn, the run perhaps still going (a page that draws its map before
a slower table is seen before it is "drawn").

The breakdown of each action, all on one clock (CLOCK_MONOTONIC: Chromium's DevTools
timestamps and Python's time.monotonic share it on Linux; checked at run time):

- server steps: lines of the app's timing file (ATTENTION_STUDIO_TIMINGS, written by
  app_pages/shared/timing.py) of this browser's session that began within the action:
  "engine pass", "reductions", "figure build", "serialise", "figure to browser";
- server run: from the browser's websocket frame that asked for the rerun to the run's
  script_finished frame; "server untimed" is the part of it no recorded step covers;
- transfer: bytes of the websocket frames (and HTTP responses) received in the action, and
  the time from the action to the last of those frames (Chromium's DevTools protocol,
  Network.webSocketFrameReceived);
- draw: from that last frame to drawn.

"Bound" names the largest part: a server step, the untimed server work, the browser's side
of the wire (click to request plus the last frames' delivery), or drawing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "assets" / "corpus" / "sentences.txt"
MODEL = "gemma3-270m"
TIMINGS_ENV = "ATTENTION_STUDIO_TIMINGS"  # app_pages/shared/timing.py reads it
LAYERS = (8, 12, 16, 4, 10, 14, 6, 2, 9, 13, 17)  # "another layer" of repeat r (Gemma: 18)
HEADS = (1, 2, 3)  # "another head" of repeat r (Gemma: 4 query heads)
# The warm-up's "another layer": cheap (its passes stop after layer 2). It also sets the
# Ablation tab's heads off for every repeat: the tab first offers the head shown (here layer
# WARMUP_LAYER, head HEADS[-1]) and then keeps what was chosen, as for a reader. The
# ablation then runs every layer from WARMUP_LAYER on (--warmup-layer changes it).
WARMUP_LAYER = 2
STEP_COLUMNS = {"engine pass": "engine", "reductions": "reductions",
                "figure build": "figure build", "serialise": "serialise",
                "figure to browser": "to browser"}
# ForwardMsg.ScriptFinishedStatus: 2 is "stopped early for a rerun" (another run follows)
FINISHED_EARLY_FOR_RERUN = 2
FINISHED_WITH_COMPILE_ERROR = 1
TRACE_MIN_BYTES = 1000  # smaller frames are left out of the JSON's trace (not its sums)
TRACE_KINDS = ("new_session", "script_finished")
# How often the benchmark looks while it waits. The times come from the events' own
# timestamps and the page's watcher, not from these looks; polling every 15 ms cost 0.16 of
# a core (Chromium 0.09, this process and Playwright's driver 0.07) on an idle page.
POLL_MS = 100
NO_FIGURE_S = 15.0  # an idle open tab with no figure this long after its run: it has none


def cpu_seconds(server_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far (user + system, every thread) by the app's server process and
    by all Chromium processes together, and by this benchmark (its own process and
    Playwright's Node driver), from /proc: where they share this machine's cores, their work
    during an action slows the engine's threads."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"server": 0.0, "browser": 0.0, "bench": 0.0}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        used = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if server_pid is not None and int(entry.name) == server_pid:
            out["server"] += used
        elif comm.startswith(("chromium", "chrome", "headless_shell")):
            out["browser"] += used
        elif int(entry.name) == me or (comm == "node" and int(fields[1]) == me):  # ppid
            out["bench"] += used
    return out


class BenchError(SystemExit):
    """A step that could not be measured, with what the page showed."""


# ----------------------------------------------------------------------------- the text


def corpus_lines(path: Path = CORPUS) -> list[str]:
    """The corpus's English lines (ASCII), in file order."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and line.isascii()]


def build_text(lines: list[str], n: int, variant: int) -> str:
    """The first n lines (the corpus repeated as often as needed), after a first line that
    names the variant."""
    body = [lines[i % len(lines)] for i in range(n)]
    return " ".join([f"Draft {variant}:", *body])


def fit_text(count: Callable[[str], int], lines: list[str], target: int,
             variant: int) -> tuple[str, int]:
    """The longest text of whole lines that `count` makes at most `target` tokens of, and its
    count (binary search: more lines never make fewer tokens)."""
    lo, hi = 0, 1
    while count(build_text(lines, hi, variant)) <= target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(build_text(lines, mid, variant)) <= target:
            lo = mid
        else:
            hi = mid
    text = build_text(lines, lo, variant)
    return text, count(text)


def gemma_counter() -> Callable[[str], int]:
    """Tokens Gemma's tokenizer makes of a text, special tokens included: the count the
    Attention page shows (it loads the model as the page does; not timed)."""
    sys.path.insert(0, str(ROOT))
    import engine

    codec = engine.load(MODEL, device="cpu").codec
    return lambda text: len(codec.encode(text).ids)


def fitted_texts(targets: list[tuple[int, int]]) -> list[tuple[str, int]]:
    """fit_text for each (tokens, variant), with Gemma's tokenizer, in a child process: the
    benchmark itself then holds no model while it measures."""
    done = subprocess.run([sys.executable, __file__, "--fit", json.dumps(targets)], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"counting {MODEL}'s tokens failed: {tail}")
    return [tuple(t) for t in json.loads(done.stdout.strip().splitlines()[-1])]


# ----------------------------------------------------------------------------- the wire


@dataclass
class Frame:
    """One websocket frame the page received: when (monotonic s), its bytes, what it was."""

    t: float
    nbytes: int
    kind: str
    status: int | None = None  # script_finished's status
    spec_bytes: int = 0  # a Plotly chart's JSON in a delta


def describe(payload: bytes) -> tuple[str, int | None, int, str | None]:
    """(kind, script_finished status, Plotly spec bytes, session id) of a Streamlit
    ForwardMsg; kind "?" if it does not parse."""
    try:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = ForwardMsg.FromString(payload)
    except Exception:  # noqa: BLE001 - a frame we cannot read still counts its bytes
        return "?", None, 0, None
    kind = msg.WhichOneof("type") or "?"
    if kind == "script_finished":
        return kind, int(msg.script_finished), 0, None
    if kind == "new_session":
        return kind, None, 0, msg.new_session.initialize.session_id or None
    if kind == "delta":
        delta = msg.delta.WhichOneof("type")
        if delta == "new_element":
            element = msg.delta.new_element.WhichOneof("type")
            spec = (len(msg.delta.new_element.plotly_chart.spec.encode("utf-8"))
                    if element == "plotly_chart" else 0)
            return f"element:{element}", None, spec, None
        return f"delta:{delta}", None, 0, None
    return kind, None, 0, None


class Wire:
    """What the page sends and receives, from Chromium's DevTools protocol: websocket frames
    (Streamlit's messages) and HTTP responses (media files)."""

    def __init__(self, page):
        self.received: list[Frame] = []
        self.sent: list[float] = []
        self.http: dict[str, dict] = {}
        self.session_id: str | None = None
        self._lags: list[float] = []  # Python's receipt time minus the event's timestamp
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("Network.webSocketFrameReceived", self._on_received)
        self.cdp.on("Network.webSocketFrameSent", self._on_sent)
        self.cdp.on("Network.requestWillBeSent", self._on_request)
        self.cdp.on("Network.loadingFinished", self._on_loaded)
        self.cdp.send("Network.enable")

    def _stamp(self, ts: float) -> float:
        self._lags.append(time.monotonic() - ts)
        return ts

    def _on_received(self, event: dict) -> None:
        t = self._stamp(event["timestamp"])
        response = event["response"]
        data = response.get("payloadData", "")
        if response.get("opcode") == 2:  # binary: base64 in the protocol
            payload = base64.b64decode(data)
            kind, status, spec, session = describe(payload)
        else:
            payload, kind, status, spec, session = data.encode(), "text", None, 0, None
        if session:
            self.session_id = session
        self.received.append(Frame(t, len(payload), kind, status, spec))

    def _on_sent(self, event: dict) -> None:
        self.sent.append(self._stamp(event["timestamp"]))

    def _on_request(self, event: dict) -> None:
        url = event.get("request", {}).get("url", "")
        # Streamlit's media files (st.image and the like); not data: URLs, which Plotly's
        # heatmap images are (their bytes came in a frame; loading them is drawing)
        if url.startswith("http") and "/media/" in url:
            self.http[event["requestId"]] = {"t0": self._stamp(event["timestamp"]),
                                             "url": url}

    def _on_loaded(self, event: dict) -> None:
        entry = self.http.get(event["requestId"])
        if entry is not None:
            entry["t1"] = self._stamp(event["timestamp"])
            entry["bytes"] = int(event.get("encodedDataLength", 0))

    def offset(self) -> float:
        """Seconds to add to a DevTools timestamp to get time.monotonic(): 0 when they share
        a clock (every event then arrives a little after its own timestamp), else the
        smallest receipt lag seen."""
        if not self._lags:
            return 0.0
        lag = min(self._lags)
        return 0.0 if 0.0 <= lag < 1.0 else lag

    def finished_after(self, t0: float) -> Frame | None:
        """The first script_finished frame after t0 that ends a run (not one stopped early
        for another run)."""
        off = self.offset()
        for f in self.received:
            if f.kind == "script_finished" and f.t + off >= t0 \
                    and f.status != FINISHED_EARLY_FOR_RERUN:
                return f
        return None

    def restarted_after(self, t: float) -> bool:
        """Whether a new script run began after t (a rerun the run itself asked for)."""
        off = self.offset()
        return any(f.kind == "new_session" and f.t + off > t for f in self.received)


# ----------------------------------------------------------------------------- the page

# Runs in the page: the open tab's panel and whether it is drawn (see the module docstring).
DRAWN_JS = r"""
(w) => {
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const tab = main.querySelector('[role="tablist"] [role="tab"][aria-selected="true"]');
  const id = tab && tab.getAttribute('aria-controls');
  const panel = id ? document.getElementById(id) : null;
  const running = !!document.querySelector('[data-testid="stStatusWidget"]');
  const stale = !!document.querySelector('[data-stale="true"]');
  const err = document.querySelector('[data-testid="stException"]');
  const s = {tab: tab ? tab.textContent : null, running, stale, plots: 0, fresh: 0,
             pending: 0, imgs: 0, error: err ? err.innerText.slice(0, 400) : null};
  if (!panel) { s.ok = false; s.why = 'no open tab panel'; return s; }
  for (const gd of panel.querySelectorAll('.js-plotly-plot')) {
    s.plots++;
    const fl = gd._fullLayout;
    const images = gd.querySelectorAll('image');
    const filled = [...images].every(i => i.getAttribute('href') || i.getAttribute('xlink:href'));
    if (!fl || !gd.querySelector('.main-svg') || !filled) { s.pending++; continue; }
    if (!w || !w.seen.has(fl)) s.fresh++;
  }
  for (const im of panel.querySelectorAll('img')) {
    s.imgs++;
    if (!im.complete || !im.naturalWidth) { s.pending++; continue; }
    if (!w || w.srcs.get(im) !== im.currentSrc) s.fresh++;
  }
  s.ok = !running && !stale && !s.error && s.pending === 0
         && (w && w.needFresh ? s.fresh > 0 : s.plots + s.imgs > 0);
  return s;
}
"""

# Marks what is on the page now (Plotly replaces `_fullLayout` with a new object each time
# it draws a figure; a WeakSet keeps no element alive), then checks on the animation frame
# after each change: a DOM mutation or a resource loaded (an <img>). Nothing else changes
# what the check sees. An endless requestAnimationFrame loop, checking every frame, kept
# 0.16 of a core busy on an idle page (Chromium drawing frames for it), on the two cores
# the server's engine uses.
ARM_JS = r"""
(needFresh) => {
  if (window.__bench) window.__bench.disarm();
  const seen = new WeakSet(), srcs = new WeakMap();
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    if (gd._fullLayout) seen.add(gd._fullLayout);
  }
  for (const im of document.querySelectorAll('img')) srcs.set(im, im.currentSrc);
  const check = DRAWN_JS;
  const w = window.__bench = {seen, srcs, needFresh, stop: false, ready: false, since: null,
                              shown: null, state: null, queued: false, checks: 0};
  const tick = () => {
    w.queued = false;
    if (w.stop) return;
    w.checks++;
    const s = check(w);
    w.state = s;
    // a new figure fully drawn, the run perhaps still going (the page may draw first)
    if (w.shown === null && s.fresh > 0 && s.pending === 0) w.shown = Date.now();
    if (s.ok && !w.ready) { w.ready = true; w.since = Date.now(); }
    if (!s.ok) w.ready = false;
  };
  const mark = () => {
    if (!w.queued && !w.stop) { w.queued = true; requestAnimationFrame(tick); }
  };
  const observer = new MutationObserver(mark);
  observer.observe(document.documentElement, {subtree: true, childList: true,
                                              attributes: true, characterData: true});
  document.addEventListener('load', mark, true);  // capture: load events do not bubble
  w.disarm = () => {
    w.stop = true;
    observer.disconnect();
    document.removeEventListener('load', mark, true);
  };
  mark();
}
""".replace("DRAWN_JS", DRAWN_JS.strip())  # inlined: no eval() in the page


@dataclass
class Step:
    """One timed action: its times (monotonic s) and the frames and server steps in it."""

    label: str
    t0: float
    drawn: float
    finished: float
    sent: float | None
    frames: list[Frame]
    http: list[dict]
    steps: list[dict] = field(default_factory=list)
    load: float | None = None  # the 1-minute load average when it was drawn
    shown: float | None = None  # a new figure first fully drawn (its run may go on)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU s used in it: server, browser


class Session:
    """The app in one browser tab, with what the benchmark has set (so it never "sets" a
    widget to the value it has: that would run nothing and wait forever)."""

    def __init__(self, page, wire: Wire, timeout_s: float, server_pid: int | None = None):
        self.page, self.wire, self.timeout = page, wire, timeout_s
        self.server_pid = server_pid
        self.tab = self.layer = self.head = None
        self.wall_minus_mono = time.time() - time.monotonic()

    # -- waiting

    def arm(self, need_fresh: bool = True) -> float:
        self.page.evaluate(ARM_JS, need_fresh)
        return time.monotonic()

    def state(self) -> dict:
        return self.page.evaluate(f"({DRAWN_JS})(window.__bench)") or {}

    def fail(self, label: str, why: str) -> None:
        s = self.state()
        raise BenchError(
            f"{label}: {why} (open tab {s.get('tab')!r}: {s.get('plots', 0)} figures, "
            f"{s.get('fresh', 0)} new, {s.get('pending', 0)} not drawn, {s.get('imgs', 0)} "
            f"images; running={s.get('running')}, stale={s.get('stale')}"
            + (f"; the app raised: {s['error']}" if s.get("error") else "") + ")")

    def wait_drawn(self, label: str, t0: float) -> tuple[float, float, float | None]:
        """(drawn, end of run, first new figure shown), monotonic seconds, for the action
        begun at t0."""
        deadline = t0 + self.timeout
        while True:
            finished = self.wire.finished_after(t0)
            while finished is None:
                if time.monotonic() > deadline:
                    self.fail(label, f"the rerun did not finish in {self.timeout:.0f} s")
                self.page.wait_for_timeout(POLL_MS)  # lets Playwright deliver DevTools events
                finished = self.wire.finished_after(t0)
            if finished.status == FINISHED_WITH_COMPILE_ERROR:
                self.fail(label, "the page's script did not compile")
            end = finished.t + self.wire.offset()
            while True:
                s, ready = self.page.evaluate(
                    "() => [window.__bench && window.__bench.state, window.__bench.ready]")
                if s and s.get("error"):
                    self.fail(label, "the app showed an exception")
                if ready:
                    break
                if s and not s.get("running") and s.get("plots", 0) + s.get("imgs", 0) == 0 \
                        and time.monotonic() - end > NO_FIGURE_S:
                    self.fail(label, f"the open tab has no figure {NO_FIGURE_S:.0f} s after "
                                     "its run finished")
                if time.monotonic() > deadline:
                    self.fail(label, "no new figure was drawn in the open tab")
                self.page.wait_for_timeout(POLL_MS)
            self.page.wait_for_timeout(150)  # a run the run itself asked for starts by now
            if not self.wire.restarted_after(end):
                break
            t0 = end  # wait for that run instead
        since, shown = self.page.evaluate(
            "() => { window.__bench.disarm(); return [window.__bench.since,"
            " window.__bench.shown]; }")
        return (since / 1000.0 - self.wall_minus_mono, end,
                None if shown is None else shown / 1000.0 - self.wall_minus_mono)

    def wait_first_page(self) -> None:
        """Until the page's first run has drawn a figure (nothing on the page before it)."""
        try:
            self.page.wait_for_function(f"() => ({DRAWN_JS})(null).ok",
                                        timeout=self.timeout * 1000, polling="raf")
        except Exception:  # noqa: BLE001 - Playwright's timeout: say what the page shows
            self.fail("first page", f"no figure drawn in {self.timeout:.0f} s")

    def measure(self, label: str, act: Callable[[], None], need_fresh: bool = True) -> Step:
        """Run `act` (one user action) and time it to drawn."""
        n_frames, n_sent = len(self.wire.received), len(self.wire.sent)
        cpu0 = cpu_seconds(self.server_pid)
        t0 = self.arm(need_fresh)
        act()
        drawn, end, shown = self.wait_drawn(label, t0)
        cpu1 = cpu_seconds(self.server_pid)
        print(f"  {label}: {drawn - t0:.2f} s", flush=True)
        off = self.wire.offset()
        frames = [f for f in self.wire.received[n_frames:] if f.t + off <= max(drawn, end)]
        sent = [t + off for t in self.wire.sent[n_sent:] if t + off >= t0]
        http = [h for h in self.wire.http.values()
                if "t1" in h and t0 <= h["t0"] + off <= drawn]
        return Step(label, t0, drawn, end, min(sent) if sent else None,
                    [Frame(f.t + off, f.nbytes, f.kind, f.status, f.spec_bytes)
                     for f in frames],
                    [{**h, "t0": h["t0"] + off, "t1": h["t1"] + off} for h in http],
                    load=os.getloadavg()[0], shown=shown,
                    cpu={k: cpu1[k] - cpu0[k] for k in cpu0})

    # -- actions

    def locate(self, locator, what: str):
        try:
            locator.first.wait_for(timeout=self.timeout * 1000)
        except Exception:  # noqa: BLE001 - Playwright's timeout: say what is missing
            raise BenchError(f"{what} is not on the page") from None
        return locator.first

    def click_tab(self, name: str, label: str | None = None) -> Step | None:
        if self.tab == name:
            return None
        tab = self.locate(self.page.get_by_role("tab", name=name, exact=True),
                          f"the tab {name!r}")
        step = self.measure(label or name, tab.click)
        self.tab = name
        return step

    def choose(self, widget: str, value: int, label: str) -> Step | None:
        if getattr(self, widget.lower()) == value:
            return None
        box = self.locate(self.page.get_by_role("combobox", name=widget, exact=True),
                          f"the {widget!r} selectbox")
        box.click()
        # the option list is virtualised (only the options in view exist): type to filter
        self.page.keyboard.type(str(value))
        option = self.locate(self.page.get_by_role("option", name=str(value), exact=True),
                             f"option {value} of the {widget!r} selectbox")
        step = self.measure(label, option.click)
        setattr(self, widget.lower(), value)
        return step

    def submit_text(self, text: str, label: str) -> Step:
        """Type `text` into the page's "Text" box (a text input: Enter; a text area:
        Ctrl+Enter, Streamlit's way to apply it) and time the submission."""
        box = self.locate(self.page.get_by_role("textbox", name="Text", exact=True),
                          "a text box labelled 'Text'")
        key = "Control+Enter" if box.evaluate("e => e.tagName") == "TEXTAREA" else "Enter"
        box.fill(text)
        return self.measure(label, lambda: box.press(key))

    def pick_model(self, name: str) -> Step:
        box = self.locate(self.page.get_by_role("combobox", name="Model", exact=True),
                          "the 'Model' selectbox")
        box.click()
        option = self.locate(self.page.get_by_role("option", name=re.compile(
            rf"^{re.escape(name)}\b")), f"the model {name!r} in the 'Model' selectbox")
        return self.measure(f"load {name}", option.click)

    def tab_names(self) -> list[str]:
        names = self.page.evaluate(
            "() => [...((document.querySelector('[data-testid=\"stMain\"]') || document)"
            ".querySelector('[role=\"tablist\"]') || {querySelectorAll: () => []})"
            ".querySelectorAll('[role=\"tab\"]')].map(t => t.textContent.trim())")
        if not names:
            raise BenchError("the Attention page shows no tabs")
        return names


# ----------------------------------------------------------------------------- breakdown


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of [start, end) intervals (nested steps count once)."""
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def server_steps(timings: list[dict], session: str | None, t0_wall: float,
                 t1_wall: float) -> list[dict]:
    """The timing file's steps of this session that began within [t0_wall, t1_wall]."""
    return [s for s in timings if t0_wall <= s.get("t", 0) <= t1_wall
            and (session is None or s.get("session") in (session, None))]


def breakdown(step: Step, timings: list[dict], session: str | None,
              wall_minus_mono: float) -> dict:
    """One action's times in seconds and bytes (see the module docstring)."""
    steps = server_steps(timings, session, step.t0 + wall_minus_mono,
                         step.drawn + wall_minus_mono)
    step.steps = steps
    cols = {c: 0.0 for c in STEP_COLUMNS.values()}
    seen = {c: False for c in cols}
    other = 0.0
    for s in steps:
        col = STEP_COLUMNS.get(s["step"])
        if col is None:
            other += s["s"]
        else:
            cols[col] += s["s"]
            seen[col] = True
    covered = union_seconds([(s["t"] - wall_minus_mono, s["t"] - wall_minus_mono + s["s"])
                             for s in steps])
    last = max([f.t for f in step.frames] + [h["t1"] for h in step.http] + [step.finished])
    start = step.sent if step.sent is not None else step.t0
    server_run = step.finished - start
    out = {
        "total": step.drawn - step.t0,
        "shown": None if step.shown is None else min(step.shown, step.drawn) - step.t0,
        **{c: (cols[c] if seen[c] else None) for c in cols},
        "other steps": other,
        "server run": server_run,
        "server untimed": max(0.0, server_run - covered),
        "transfer bytes": sum(f.nbytes for f in step.frames)
                          + sum(h.get("bytes", 0) for h in step.http),
        "figure json bytes": sum(f.spec_bytes for f in step.frames),
        "frames": len(step.frames),
        "transfer time": last - step.t0,
        "click to request": (step.sent - step.t0) if step.sent is not None else None,
        "draw": max(0.0, step.drawn - last),
        "load": step.load,
        "server cpu": step.cpu.get("server"),
        "browser cpu": step.cpu.get("browser"),
        "bench cpu": step.cpu.get("bench"),
    }
    out["wire"] = max(0.0, out["transfer time"] - server_run)
    parts = {c: out[c] or 0.0 for c in STEP_COLUMNS.values()}
    parts["server untimed"] = out["server untimed"]
    parts["wire"] = out["wire"]
    parts["draw"] = out["draw"]
    out["bound"] = max(parts, key=parts.get)
    return out


def medians(runs: list[dict]) -> dict:
    """Each column's median over the runs (None where no run recorded it); the bound of the
    medians."""
    out: dict = {}
    for key in runs[0]:
        if key == "bound":
            continue
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    parts = {c: out.get(c) or 0.0 for c in [*STEP_COLUMNS.values(), "server untimed", "wire",
                                             "draw"]}
    out["bound"] = max(parts, key=parts.get)
    return out


def fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


TABLE_HEAD = ("| action | n | total | shown | engine | reductions | figure build | serialise | "
              "to browser | server untimed | transfer bytes | transfer time | draw | bound | "
              "load | CPU s server / browser / bench |")


def table(actions: dict[str, dict]) -> str:
    """A Markdown table of every action's medians."""
    rows = [TABLE_HEAD,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for label, a in actions.items():
        m = a["median"]
        rows.append(
            f"| {label} | {len(a['runs'])} | {fmt_s(m['total'])} | {fmt_s(m.get('shown'))} | "
            f"{fmt_s(m['engine'])} | "
            f"{fmt_s(m['reductions'])} | {fmt_s(m['figure build'])} | {fmt_s(m['serialise'])} | "
            f"{fmt_s(m['to browser'])} | {fmt_s(m['server untimed'])} | "
            f"{fmt_bytes(m['transfer bytes'])} | {fmt_s(m['transfer time'])} | "
            f"{fmt_s(m['draw'])} | {m['bound']} | "
            f"{'–' if m.get('load') is None else format(m['load'], '.0f')} | "
            f"{fmt_s(m.get('server cpu'))} / {fmt_s(m.get('browser cpu'))} / "
            f"{fmt_s(m.get('bench cpu'))} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------- the run


def start_app(port: int, log: Path, timings: Path | None, watch: list[str]):
    """`streamlit run app.py` on `port`, with the timing file set when given."""
    streamlit = ROOT / ".venv" / "bin" / "streamlit"
    launcher = [str(streamlit)] if streamlit.exists() else [sys.executable, "-m", "streamlit"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop(TIMINGS_ENV, None)
    if timings is not None:
        env[TIMINGS_ENV] = str(timings)
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*launcher, "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", *watch],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_health(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until the app answers on /_stcore/health."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise BenchError("the app exited before it answered")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError("the app did not answer in time")


def one_repeat(s: Session, text: str, layer: int, head: int, tabs: list[str],
               record: Callable[[Step | None], None]) -> None:
    """The actions of one repeat (see the module docstring); `record(step)` keeps each."""
    head_tab, others = tabs[0], tabs[1:]
    s.click_tab(head_tab, "(reset)")  # setting up, not kept
    s.choose("Layer", 0, "(reset)")
    s.choose("Head", 0, "(reset)")
    record(s.submit_text(text, "first view (text → Head map)"))
    record(s.choose("Layer", layer, "another layer"))
    record(s.choose("Head", head, "another head"))
    for name in others:
        record(s.click_tab(name, f"{name} tab"))
    record(s.click_tab(head_tab, f"{head_tab} tab (cached)"))
    for name in others:
        record(s.click_tab(name, f"{name} tab (cached)"))
    s.click_tab(head_tab, "(reset)")
    record(s.choose("Layer", 0, "first layer again (pass cached)"))


def run_long(reps: int, tokens: int, warmup_tokens: int, timeout_s: float, timings_on: bool,
             watch: list[str], port: int, chromium: str, chromium_args: list[str],
             warmup_layer: int = WARMUP_LAYER) -> dict:
    """The whole scenario; returns the results (printed by bench_browser.main)."""
    from playwright.sync_api import sync_playwright

    load_start = os.getloadavg()
    (warm_text, warm_n), *texts = fitted_texts(
        [(warmup_tokens, 0)] + [(tokens, r + 1) for r in range(reps)])
    print(f"texts: {', '.join(str(n) for _, n in texts)} tokens by {MODEL}'s tokenizer "
          f"(warm-up: {warm_n}); from {CORPUS.relative_to(ROOT)}", flush=True)
    timings = Path(tempfile.mkstemp(prefix="bench_timings_", suffix=".jsonl")[1]) \
        if timings_on else None
    log = Path(tempfile.mkstemp(prefix="bench_browser_long_", suffix=".log")[1])
    proc = start_app(port, log, timings, watch)
    kept: list[Step] = []
    error, session, clock, tabs, s = None, None, {}, [], None
    try:
        wait_health(port, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=chromium_args)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                wire = Wire(page)
                s = Session(page, wire, timeout_s, server_pid=proc.pid)
                page.goto(f"http://127.0.0.1:{port}/")
                s.wait_first_page()
                s.tab, s.layer, s.head = s.tab_names()[0], 0, 0
                s.timeout = max(timeout_s, 600)  # the model's first load (dequantised once)
                s.pick_model(MODEL)
                s.timeout = timeout_s
                tabs = s.tab_names()
                print(f"tabs: {', '.join(tabs)}; warming up on {warm_n} tokens", flush=True)
                one_repeat(s, warm_text, warmup_layer, HEADS[-1], tabs, lambda step: None)
                for r, (text, n) in enumerate(texts):
                    t = time.perf_counter()
                    one_repeat(s, text, LAYERS[r % len(LAYERS)], HEADS[r % len(HEADS)], tabs,
                               lambda step: kept.append(step) if step is not None else None)
                    print(f"repeat {r + 1}/{reps} ({n} tokens): "
                          f"{time.perf_counter() - t:.0f} s", flush=True)
            finally:
                if s is not None:
                    session = s.wire.session_id
                    clock = {"devtools_offset_s": s.wire.offset(),
                             "min_event_lag_s": min(s.wire._lags) if s.wire._lags else None}
                browser.close()
    except BenchError as exc:
        error = f"{exc} (server log: {log})"
    except Exception as exc:  # noqa: BLE001 - Playwright's errors: one line, and the log
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0]} (server log: {log})"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    if error is not None and not kept:
        raise BenchError(error)
    # else: what was measured before the failure is kept, with the error (the caller exits
    # non-zero after writing it)
    from app_pages.shared.timing import read_steps

    steps = read_steps(timings) if timings is not None else []
    actions: dict[str, dict] = {}
    wall_minus_mono = s.wall_minus_mono if s is not None else time.time() - time.monotonic()
    for step in kept:
        row = breakdown(step, steps, session, wall_minus_mono)
        actions.setdefault(step.label, {"runs": []})["runs"].append(row)
    for a in actions.values():
        a["median"] = medians(a["runs"])
    return {
        "scenario": "long", "error": error, "model": MODEL, "tokens": [n for _, n in texts],
        "warmup_tokens": warm_n, "reps": reps, "tabs": tabs, "session": session,
        "ablation_heads_off": f"layer {warmup_layer}, head {HEADS[-1]}",
        "timings_file": str(timings) if timings else None, "server_steps": len(steps),
        "clock": clock, "load_average_start": load_start, "load_average_end": os.getloadavg(),
        "cpus": os.cpu_count(), "actions": actions,
        # every action's own times (monotonic s) and its larger frames (s after the action)
        "trace": [
            {"label": k.label, "t0": k.t0, "drawn": k.drawn, "finished": k.finished,
             "sent": k.sent, "shown": k.shown, "server_steps": k.steps,
             "frames": [[round(f.t - k.t0, 4), f.nbytes, f.kind] for f in k.frames
                        if f.nbytes >= TRACE_MIN_BYTES or f.kind in TRACE_KINDS],
             "http": [[round(h["t0"] - k.t0, 4), round(h["t1"] - k.t0, 4), h.get("bytes", 0),
                       h["url"][:200]] for h in k.http]}
            for k in kept],
    }


def report(results: dict) -> str:
    """The printed summary: load average, token counts, the table."""
    a0, a1 = results["load_average_start"], results["load_average_end"]
    head = (f"Attention page, {results['model']}, {'/'.join(map(str, results['tokens']))} "
            f"tokens, medians of {results['reps']} in headless Chromium ({results['cpus']} "
            f"CPUs; load average {a0[0]:.1f} / {a0[1]:.1f} / {a0[2]:.1f} at the start, "
            f"{a1[0]:.1f} / {a1[1]:.1f} / {a1[2]:.1f} at the end). Seconds; '–': no step of "
            f"that name recorded.")
    if results.get("ablation_heads_off"):
        head += (f" The Ablation tab switches off {results['ablation_heads_off']} (chosen in the "
                 "warm-up): every layer from there on runs again.")
    if results.get("error"):
        head += f"\nSTOPPED EARLY (the rows hold what was measured before): {results['error']}"
    return head + "\n" + table(results["actions"])


if __name__ == "__main__":  # the child process of fitted_texts
    if sys.argv[1:2] != ["--fit"] or len(sys.argv) != 3:
        raise SystemExit("usage: browser_long.py --fit '[[tokens, variant], ...]' "
                         "(bench/bench_browser.py --long runs the benchmark)")
    counter = gemma_counter()
    print(json.dumps([fit_text(counter, corpus_lines(), t, v)
                      for t, v in json.loads(sys.argv[2])]))
