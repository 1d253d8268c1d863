"""A classroom on one server: N concurrent browser sessions typing their own sentences.

    .venv/bin/python bench/load_test.py                          # 30 sessions × 3 rounds
    .venv/bin/python bench/load_test.py --sessions 3 --rounds 1  # a quick check (~2 min)
    .venv/bin/python bench/load_test.py --inject-crosstalk --sessions 2 --rounds 1  # check it
    .venv/bin/python bench/load_test.py --long-texts 16          # memory of long records

Starts `streamlit run app.py` on a loopback port (file watcher off, as in
.streamlit/config.toml) with the result cache's budget set (`ATTENTION_STUDIO_CACHE_MB`,
--cache-mb), warms it up with one page (MiniLM loaded, the default heatmap drawn), then opens
--sessions sessions, arriving evenly over --ramp s, in one headless Chromium (Playwright, one
browser context each) on the Attention page's default Head tab. Each session types --rounds
sentences of its own (words no other session uses, each one MiniLM token), with 1-3 s
between them, and for each one
records the time from Ctrl+Enter (the text area's apply key) to all of its words on the
heatmap's axis (polled every 50 ms).

Checked on every action: the session's axes show none of another session's words nor its own
earlier ones (cross-talk, stale); no Streamlit exception or error element appears. The server
runs this file with --serve: `streamlit run app.py` through Streamlit's own command line, in
a process that also samples, every 0.25 s, its resident memory (VmRSS) and the result
cache's counters (bytes kept, entries, hits, misses, evictions), and times each script run.

Bounded in time: after --deadline seconds every session stops where it is and the browser
and server are stopped (one action may take --action-timeout s). Prints p50/p95/max time
to heatmap, errors, cross-talk, peak RSS against the budget, the CPU seconds of server,
browser and other work on the machine, and writes --json (default
bench/results/load_test_cpu.json).

--long-texts N measures what the browser sessions cannot (their sentences are small): N
distinct 512-token MiniLM records of all layers (72 MiB each), by --threads callers of the
app's cached attend, in a fresh process under --cache-mb and in one unbounded, each reporting
its RSS before, at peak and at the end (no server, no browser; --json only if given).
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DEFAULT_WORD = "animal"  # of the page's default sentence
POLL_MS = 50
APPLY_KEY = "Control+Enter"  # the page's text area applies on Ctrl+Enter (or on blur)
SAMPLE_S = 0.25
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
TEMPLATE = "The {0} and the {1} met the {2} near the {3} today."
WORDS_PER_SENTENCE = 4
OUT = ROOT / "bench" / "results" / "load_test_cpu.json"


# ----------------------------------------------------------------------------- the server

def serve(port: int, samples: Path) -> None:
    """`streamlit run app.py` in this process, with a thread sampling RSS and the cache, and
    each script run's wall time written to the same file."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: every thread's stack to the log
    out = open(samples, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    lock = threading.Lock()

    def write(row: dict) -> None:
        with lock:
            out.write(json.dumps(row) + "\n")

    threading.Thread(target=sample_forever, args=(write,), daemon=True).start()
    time_script_runs(write)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", "app.py", "--server.port", str(port),
                "--server.address", "127.0.0.1", "--server.headless", "true",
                "--server.fileWatcherType", "none"]
    sys.exit(cli.main())


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return -1


def sample_forever(write) -> None:
    from app_pages.shared import result_cache  # the module the app's pages use

    while True:
        write({"t": time.time(), "rss": rss_bytes(), **result_cache.stats()._asdict()})
        time.sleep(SAMPLE_S)


def time_script_runs(write) -> None:
    """Each script run's wall time on the server (Streamlit's ScriptRunner._run_script,
    wrapped here in the benchmark only): the server's share of a time to heatmap."""
    from streamlit.runtime.scriptrunner import script_runner

    run = getattr(script_runner.ScriptRunner, "_run_script", None)
    if run is None:  # another Streamlit: the report says the server times are missing
        return

    def timed(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return run(self, *args, **kwargs)
        finally:
            write({"t": time.time(), "script_run_s": time.perf_counter() - t0})

    script_runner.ScriptRunner._run_script = timed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, cache_mb: float, samples: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ATTENTION_STUDIO_CACHE_MB": str(cache_mb)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port),
                                 "--samples", str(samples)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise SystemExit("the app did not answer in time")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ----------------------------------------------------------------------------- sentences

def whole_words(n: int) -> list[str]:
    """n distinct lowercase words that MiniLM's tokenizer keeps as one token each, taken
    evenly from its vocabulary (so that a word on an axis belongs to exactly one sentence)."""
    import engine

    codec = engine.load("minilm", device="cpu").codec
    template = set(re.findall(r"[a-z]+", TEMPLATE.lower())) | {DEFAULT_WORD}
    pool = sorted(w for w in codec.tok.get_vocab()
                  if w.isascii() and w.isalpha() and w.islower() and 5 <= len(w) <= 9
                  and w not in template)
    step = max(1, len(pool) // (2 * n))
    words = [w for w in pool[::step] if len(codec.encode(w).ids) == 3][:n]  # [CLS] w [SEP]
    if len(words) < n:
        raise SystemExit(f"only {len(words)} single-token words for {n} needed")
    return words


def plan(sessions: int, rounds: int) -> list[list[list[str]]]:
    """Per session, per round: the words of its sentence (all distinct across the plan)."""
    words = iter(whole_words(sessions * rounds * WORDS_PER_SENTENCE))
    return [[[next(words) for _ in range(WORDS_PER_SENTENCE)] for _ in range(rounds)]
            for _ in range(sessions)]


# ----------------------------------------------------------------------------- sessions

AXIS_WORDS = """() => Array.from(document.querySelectorAll(
    '.js-plotly-plot .xtick text, .js-plotly-plot .ytick text')).map(t => t.textContent)"""
HAS_WORDS = """([ws, errors]) => { const ticks = new Set(Array.from(document.querySelectorAll(
    '.js-plotly-plot .xtick text')).map(t => t.textContent));
    return ws.every(w => ticks.has(w)) || document.querySelector(errors) !== null; }"""
IDLE = """() => !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-stale="true"]')"""


async def wait_words(page, words: list[str], timeout_s: float) -> None:
    """Until every word is on the heatmap's x axis; an error element on the page ends the
    wait at once with a RuntimeError quoting it."""
    await page.wait_for_function(HAS_WORDS, arg=[words, ERROR_SELECTOR],
                                 timeout=timeout_s * 1000, polling=POLL_MS)
    shown = page.locator(ERROR_SELECTOR)
    if await shown.count():
        text = (await shown.first.inner_text()).strip().splitlines()
        raise RuntimeError(f"the page shows an error: {text[0][:200] if text else '?'}")


async def wait_idle(page, timeout_s: float) -> None:
    await page.wait_for_timeout(300)
    await page.wait_for_function(IDLE, timeout=timeout_s * 1000, polling=100)


async def look(page, own: set[str], foreign: set[str], stale: set[str]) -> dict:
    """What the session's axes and error elements show now."""
    ticks = set(await page.evaluate(AXIS_WORDS))
    return {"foreign": sorted(ticks & foreign), "stale": sorted(ticks & stale),
            "missing": sorted(own - ticks), "errors": await page.locator(ERROR_SELECTOR).count()}


async def run_session(i: int, browser, url: str, rounds: list[list[str]], mine: set[str],
                      everyone: set[str], end: float, out: dict, delay: float = 0.0,
                      action_timeout: float = 300.0) -> None:
    """After `delay` s, open the page, wait for the default heatmap, then type each round's
    sentence; `mine` are the words planned for this session (every other word of the plan is
    foreign)."""
    await asyncio.sleep(delay)
    rng = random.Random(i)
    foreign = everyone - mine
    rec = out[i] = {"first_chart_s": None, "heatmap_s": [], "crosstalk": [], "stale": [],
                    "errors": []}

    def left() -> float:
        left = min(action_timeout, end - time.time())
        if left <= 0:
            raise TimeoutError("deadline")
        return left

    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        page = await ctx.new_page()
        t0 = time.perf_counter()
        await page.goto(url, timeout=left() * 1000)
        await wait_words(page, [DEFAULT_WORD], left())
        rec["first_chart_s"] = time.perf_counter() - t0
        await wait_idle(page, left())
        box = page.get_by_role("textbox", name="Text", exact=True)
        seen = {DEFAULT_WORD}
        for r, words in enumerate(rounds):
            await asyncio.sleep(rng.uniform(1.0, 3.0))  # a reader looks, then types again
            await box.fill(TEMPLATE.format(*words), timeout=left() * 1000)
            t0 = time.perf_counter()
            await box.press(APPLY_KEY)
            await wait_words(page, words, left())
            rec["heatmap_s"].append(time.perf_counter() - t0)
            for when in ("drawn", "idle"):  # as the words appear, and once the run is over
                if when == "idle":
                    await wait_idle(page, left())
                got = await look(page, set(words), foreign, seen)
                if got["foreign"]:
                    rec["crosstalk"].append({"round": r, "when": when, "words": got["foreign"]})
                if got["stale"] and when == "idle":
                    rec["stale"].append({"round": r, "words": got["stale"]})
                if got["missing"] and when == "idle":
                    rec["errors"].append(f"round {r}: own words gone {got['missing']}")
                if got["errors"]:
                    rec["errors"].append(f"round {r} ({when}): {got['errors']} error element(s)")
            seen |= set(words)
    except Exception as exc:  # noqa: BLE001 - a timeout or a closed page is a result here
        rec["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    finally:
        await ctx.close()


async def drive(url: str, sessions: list[list[list[str]]], end: float,
                inject_crosstalk: bool = False, ramp: float = 0.0, meter=None,
                action_timeout: float = 300.0) -> dict:
    from playwright.async_api import async_playwright

    everyone = {w for s in sessions for r in s for w in r}
    owned = [{w for r in s for w in r} for s in sessions]
    typed = [list(s) for s in sessions]
    if inject_crosstalk:  # the detector's own check: session 1 ends on session 0's sentence
        typed[1][-1] = sessions[0][0]
    out: dict = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            warm = await browser.new_context()  # the teacher's tab: MiniLM loaded once
            page = await warm.new_page()
            t0 = time.perf_counter()
            await page.goto(url)
            await wait_words(page, [DEFAULT_WORD], min(300.0, end - time.time()))
            out["warm_up_s"] = time.perf_counter() - t0
            await warm.close()
            out["sessions_started"] = time.time()
            if meter is not None:
                meter.mark("sessions_start")
            tasks = [run_session(i, browser, url, typed[i], owned[i], everyone, end, out,
                                 delay=ramp * i / len(sessions),
                                 action_timeout=action_timeout)
                     for i in range(len(sessions))]
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=end - time.time() + 30)
            except TimeoutError:
                out["deadline_hit"] = True
            if meter is not None:  # before the browser closes and its processes are gone
                meter.mark("sessions_end")
        finally:
            await browser.close()
    return out


# ----------------------------------------------------------------------------- report

def q(xs: list[float], p: float) -> float | None:
    return float(np.percentile(xs, p)) if xs else None


def mib(b: float | None) -> float | None:
    return None if b is None else b / 2**20


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class CpuMeter:
    """CPU seconds, sampled every 2 s from the driver: the server process, the browser (the
    Playwright driver and every Chromium process under it) and the whole machine (so that
    the rest is other work on it); also the load average."""

    def __init__(self, server_pid: int):
        import psutil

        self.psutil, self.server_pid = psutil, server_pid
        self.loads = [os.getloadavg()]
        self.last: dict[int, float] = {}  # pid → its CPU seconds when last seen
        self.marks: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sample()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.wait(2):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            for p in self.psutil.Process().children(recursive=True):
                try:
                    t = p.cpu_times()
                    self.last[p.pid] = t.user + t.system
                except self.psutil.Error:  # gone meanwhile: its last sample stays
                    pass
            self.loads.append(os.getloadavg())

    def machine_busy(self) -> float:
        t = self.psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def mark(self, name: str) -> None:
        self.sample()
        with self._lock:
            self.marks[name] = (dict(self.last), self.machine_busy())

    def stop(self) -> None:
        self._stop.set()

    def between(self, a: str, b: str) -> dict:
        (p0, m0), (p1, m1) = self.marks[a], self.marks[b]
        spent = {pid: t - p0.get(pid, 0.0) for pid, t in p1.items()}
        server = spent.get(self.server_pid, 0.0)
        browser = sum(t for pid, t in spent.items() if pid != self.server_pid)
        return {"server": server, "browser": browser, "machine": m1 - m0,
                "other_work": max(0.0, m1 - m0 - server - browser)}


def summarise(args, out: dict, rows: list[dict], began: float, cpu: dict, load: dict,
              server_log: str) -> dict:
    per = [out[i] for i in range(args.sessions) if i in out]
    times = [t for s in per for t in s["heatmap_s"]]
    firsts = [s["first_chart_s"] for s in per if s["first_chart_s"] is not None]
    samples = [r for r in rows if "rss" in r]
    runs = [r["script_run_s"] for r in rows if "script_run_s" in r and r["t"] >= began]
    bound = int(args.cache_mb * 2**20)
    before = [r for r in samples if r["t"] < began]
    baseline = before[-1]["rss"] if before else None
    last = samples[-1] if samples else {}
    peak_rss = max((r["rss"] for r in samples), default=None)
    peak_cache = max((r["total_bytes"] for r in samples), default=None)

    def spread(xs: list[float]) -> dict:
        return {"p50": q(xs, 50), "p95": q(xs, 95), "max": max(xs, default=None), "n": len(xs)}

    return {
        "command": "bench/load_test.py " + " ".join(sys.argv[1:]),
        "sessions": args.sessions, "rounds": args.rounds, "model": "minilm",
        "cache_mb": args.cache_mb, "deadline_s": args.deadline, "ramp_s": args.ramp,
        "action_timeout_s": args.action_timeout,
        "cpus": os.cpu_count(), "load_average": load,
        "warm_up_s": out.get("warm_up_s"), "deadline_hit": bool(out.get("deadline_hit")),
        "actions_planned": args.sessions * args.rounds, "actions_done": len(times),
        "time_to_heatmap_s": spread(times),
        "first_chart_s": spread(firsts),
        "server_script_run_s": spread(runs),
        "cpu_s_during_sessions": cpu,
        "errors": [f"session {i}: {e}" for i, s in enumerate(per) for e in s["errors"]],
        "server_tracebacks": server_log.count("Traceback"),
        "crosstalk": sum(len(s["crosstalk"]) for s in per),
        "crosstalk_detail": [{"session": i, **c} for i, s in enumerate(per)
                             for c in s["crosstalk"]],
        "stale": sum(len(s["stale"]) for s in per),
        "rss_mb": {"before_sessions": mib(baseline), "peak": mib(peak_rss),
                   "peak_over_before": None if None in (peak_rss, baseline)
                   else mib(peak_rss - baseline)},
        "cache": {"bound_mb": mib(bound), "peak_mb": mib(peak_cache),
                  "under_bound": peak_cache is not None and peak_cache <= bound,
                  **{k: last.get(k) for k in ("count", "hits", "misses", "evictions",
                                              "oversize")}},
        "samples": len(samples),
        "heatmap_s_all": times,
    }


def show(r: dict) -> None:
    la = r["load_average"]
    t, f, m, c = r["time_to_heatmap_s"], r["first_chart_s"], r["rss_mb"], r["cache"]
    sr, cpu = r["server_script_run_s"], r["cpu_s_during_sessions"]
    print(f"{r['sessions']} sessions × {r['rounds']} rounds on MiniLM, arriving over "
          f"{r['ramp_s']:g} s, cache bound {r['cache_mb']:g} MiB, {r['cpus']} CPUs, load "
          f"average {la['start'][0]:.1f} at start, {la['max_1min']:.1f} max during, "
          f"{la['end'][0]:.1f} at end")
    print(f"actions {r['actions_done']}/{r['actions_planned']}"
          f"{' (deadline hit)' if r['deadline_hit'] else ''}; warm-up {fmt(r['warm_up_s'])} s")
    print(f"Ctrl+Enter → own tokens on the heatmap: p50 {fmt(t['p50'])} s, p95 "
          f"{fmt(t['p95'])} s, max {fmt(t['max'])} s")
    print(f"session open → first heatmap: p50 {fmt(f['p50'])} s, p95 {fmt(f['p95'])} s, "
          f"max {fmt(f['max'])} s")
    print(f"server script runs ({sr['n']}): p50 {fmt(sr['p50'])} s, p95 {fmt(sr['p95'])} s, "
          f"max {fmt(sr['max'])} s")
    print(f"CPU seconds during the sessions: server {cpu['server']:.0f}, browser "
          f"{cpu['browser']:.0f}, other work {cpu['other_work']:.0f} (machine "
          f"{cpu['machine']:.0f})")
    print(f"errors {len(r['errors'])}, server tracebacks {r['server_tracebacks']}, cross-talk "
          f"{r['crosstalk']}, stale axes {r['stale']}")
    for e in r["errors"][:10]:
        print("  ", e)
    print(f"server RSS: {fmt(m['before_sessions'])} MiB before the sessions, peak "
          f"{fmt(m['peak'])} MiB (+{fmt(m['peak_over_before'])}); cache peak "
          f"{fmt(c['peak_mb'])} MiB of {c['bound_mb']:g} MiB bound "
          f"({'under' if c['under_bound'] else 'OVER'}); entries {c['count']}, hits "
          f"{c['hits']}, misses {c['misses']}, evictions {c['evictions']}")


# ----------------------------------------------------------------------------- long texts

def long_texts(n: int, tokens: int) -> list[str]:
    """n distinct texts of exactly `tokens` MiniLM tokens ([CLS] and [SEP] included): the
    same single-token words, rotated."""
    words = whole_words(64)
    return [" ".join(words[(i + j) % len(words)] for j in range(tokens - 2)) for i in range(n)]


def memory_child(n: int, tokens: int, threads: int) -> None:
    """In this process (no server, no browser): `threads` callers run n long texts through
    the app's cached `attend` (all 6 MiniLM layers each), every reference dropped at once, as
    a page does after drawing; prints the peak RSS over the RSS before, and the cache's
    counters, as one JSON line."""
    sys.path.insert(0, str(ROOT))
    from concurrent.futures import ThreadPoolExecutor

    from app_pages.shared import result_cache
    from app_pages.shared.models import attend

    texts = long_texts(n, tokens)
    attend("minilm", "cpu", "warm up")  # the model loaded, torch's pools started
    result_cache.clear()
    before, peak, done = rss_bytes(), [0], threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_bytes())

    threading.Thread(target=watch, daemon=True).start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        got = list(pool.map(lambda t: len(attend("minilm", "cpu", t).tokens), texts))
    seconds = time.perf_counter() - t0
    done.set()
    peak[0] = max(peak[0], rss_bytes())
    s = result_cache.stats()
    print(json.dumps({"texts": n, "tokens": sorted(set(got)), "threads": threads,
                      "seconds": seconds, "rss_before_mb": mib(before),
                      "rss_peak_mb": mib(peak[0]), "rss_growth_mb": mib(peak[0] - before),
                      "rss_end_mb": mib(rss_bytes()), "cache_total_mb": mib(s.total_bytes),
                      "bound_mb": mib(s.max_bytes), "entries": s.count,
                      "evictions": s.evictions, "oversize": s.oversize, "misses": s.misses}))


def memory_runs(n: int, tokens: int, threads: int, cache_mb: float) -> dict:
    """memory_child twice, each in a fresh process: under the bound, and unbounded (the
    peer: what a count-bounded cache of 64 entries would keep of n < 64 texts)."""
    out = {}
    for label, mb in (("bounded", cache_mb), ("unbounded", 10**6)):
        run = subprocess.run([sys.executable, __file__, "--memory-child", "--long-texts", str(n),
                              "--tokens", str(tokens), "--threads", str(threads)],
                             cwd=ROOT, capture_output=True, text=True, timeout=1800,
                             env={**os.environ, "ATTENTION_STUDIO_CACHE_MB": str(mb)})
        lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
        if run.returncode or not lines:
            raise SystemExit(f"the {label} run failed: {run.stderr[-2000:]}")
        out[label] = json.loads(lines[-1])
    return out


def show_memory(r: dict, load: tuple) -> None:
    b, u = r["bounded"], r["unbounded"]
    sizes = "/".join(map(str, b["tokens"]))
    print(f"{b['texts']} distinct {sizes}-token MiniLM records (all layers), "
          f"{b['threads']} threads, load average {load[0]:.1f}")
    for label, x in (("bounded", b), ("unbounded", u)):
        print(f"  {label:9}: cache {x['cache_total_mb']:.0f} MiB in {x['entries']} entries "
              f"(bound {x['bound_mb']:g} MiB, {x['evictions']} evictions, {x['oversize']} "
              f"too big to keep); RSS {x['rss_before_mb']:.0f} → peak "
              f"{x['rss_peak_mb']:.0f} MiB (+{x['rss_growth_mb']:.0f}), "
              f"{x['rss_end_mb']:.0f} at the end; {x['seconds']:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3, help="sentences each session types")
    ap.add_argument("--cache-mb", type=float, default=512,
                    help="ATTENTION_STUDIO_CACHE_MB for the server (MiB)")
    ap.add_argument("--deadline", type=float, default=600,
                    help="seconds after which everything is stopped")
    ap.add_argument("--action-timeout", type=float, default=300,
                    help="seconds one page load or one sentence may take before it counts as "
                         "an error (that session then stops)")
    ap.add_argument("--ramp", type=float, default=60,
                    help="seconds over which the sessions arrive, evenly (0: all at once)")
    ap.add_argument("--json", type=Path, default=OUT)
    ap.add_argument("--inject-crosstalk", action="store_true",
                    help="check the checker: session 1 types session 0's first sentence last "
                         "(must report cross-talk); needs --sessions ≥ 2")
    ap.add_argument("--long-texts", type=int, default=0,
                    help="instead of the browser sessions: N distinct long texts through the "
                         "app's cached attend in this machine's memory, bounded against "
                         "unbounded (no server, no browser)")
    ap.add_argument("--tokens", type=int, default=512, help="tokens per long text (≤ 512)")
    ap.add_argument("--threads", type=int, default=4, help="concurrent callers of --long-texts")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--samples", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.port, args.samples)
        return
    if args.memory_child:
        memory_child(args.long_texts, args.tokens, args.threads)
        return
    if args.long_texts:
        if not 3 <= args.tokens <= 512 or args.threads < 1:
            raise SystemExit("--tokens must be in 3..512 (MiniLM's limit), --threads ≥ 1")
        load = os.getloadavg()
        r = memory_runs(args.long_texts, args.tokens, args.threads, args.cache_mb)
        r["command"] = "bench/load_test.py " + " ".join(sys.argv[1:])
        r["load_average"] = load
        show_memory(r, load)
        if args.json != OUT:  # the session figures' file is not overwritten by this mode
            args.json.write_text(json.dumps(r, indent=1) + "\n")
        return
    if (args.sessions < 1 or args.rounds < 1 or args.deadline <= 0 or args.cache_mb < 0
            or args.ramp < 0 or args.action_timeout <= 0):
        raise SystemExit("--sessions and --rounds must be ≥ 1, --deadline and --action-timeout "
                         "> 0, --cache-mb and --ramp ≥ 0")
    if args.inject_crosstalk and args.sessions < 2:
        raise SystemExit("--inject-crosstalk needs --sessions ≥ 2")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")

    start = time.time()
    end = start + args.deadline
    sessions = plan(args.sessions, args.rounds)
    tmp = Path(tempfile.mkdtemp(prefix="load_test_"))
    samples, log = tmp / "samples.jsonl", tmp / "server.log"
    load_start = os.getloadavg()
    proc = start_server(free_port(), args.cache_mb, samples, log)
    port = proc.args[proc.args.index("--port") + 1]
    meter = CpuMeter(proc.pid)
    try:
        url = f"http://127.0.0.1:{port}/"
        out = asyncio.run(drive(url, sessions, end, args.inject_crosstalk, args.ramp, meter,
                                args.action_timeout))
    finally:
        meter.stop()
        stop(proc)
    load = {"start": load_start, "end": os.getloadavg(),
            "max_1min": max(x[0] for x in meter.loads)}
    cpu = (meter.between("sessions_start", "sessions_end") if "sessions_end" in meter.marks
           else {"server": 0.0, "browser": 0.0, "machine": 0.0, "other_work": 0.0})
    result = summarise(args, out, read_rows(samples), out.get("sessions_started", end), cpu,
                       load, log.read_text(errors="replace"))
    result["elapsed_s"] = time.time() - start
    result["server_log"] = str(log)
    show(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
