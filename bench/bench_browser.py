"""Browser timings of the Attention page in headless Chromium (Playwright + Debian's Chromium).

    .venv/bin/python bench/bench_browser.py            # 7 repeats per measurement
    .venv/bin/python bench/bench_browser.py --reps 11 --json out.json

Three numbers, each from a user action to the figure drawn in the page (a Plotly tick label
or heatmap image present in the DOM):

1. cold start → first chart: from launching `streamlit run app.py` (the README's command,
   nothing cached, MiniLM not loaded; file watcher off unless --watch) to the first head
   heatmap drawn. Target ≤ 10 s.
2. typed sentence → heatmap redrawn: a new ≤ 32-token sentence typed and Enter pressed, to
   its tokens appearing on the heatmap's axis (engine run included: every sentence is new).
   Median. Target ≤ 1.0 s.
3. model view of 72 heads at 64 tokens: MiniLM, a 64-token input, from clicking the
   "Model view" tab to all 72 thumbnails drawn. Median. Target ≤ 2.5 s.

The machine's load average is printed with the results: on a shared 2-core machine other
work inflates every number.

    .venv/bin/python bench/bench_browser.py --long --reps 3 --json out.json

`--long` runs the long-input scenario instead (issue 17, bench/browser_long.py): Gemma 3 270M
on a ~2,048-token text, the first view, another layer, another head and every tab of the
Attention page, each new and then cached, with each time split into server steps, transfer
and drawing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 180_000
WORDS = ["apple", "river", "mountain", "piano", "garden", "window", "rocket", "forest",
         "candle", "orange", "silver", "pencil", "tiger", "island", "bridge", "castle"]
# words MiniLM keeps whole, plus [CLS] and [SEP]: 64 tokens (checked at run time)
TEXT_64 = (
    "the old man walked slowly along the quiet river in the early morning light and he "
    "thought about his long life in the small town where he had lived with his wife and "
    "their three children for many happy years before the war came and changed "
    "everything they knew about the world and now he sat alone by the cold dark water"
)
TARGETS = {"cold_start_s": 10.0, "typed_sentence_median_s": 1.0, "model_view_median_s": 2.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the app exited before it answered")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the app did not answer in time")


def wait_tick(page, text: str) -> None:
    page.wait_for_function(
        "w => Array.from(document.querySelectorAll('.js-plotly-plot .xtick text'))"
        ".some(t => t.textContent === w)", arg=text, timeout=TIMEOUT_MS, polling="raf")


def wait_images(page, n: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('.js-plotly-plot .hm image').length >= n",
        arg=n, timeout=TIMEOUT_MS, polling="raf")


def wait_idle(page) -> None:
    """Until the script run is over: no 'running' indicator and no stale (faded) element."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')", timeout=TIMEOUT_MS)


def check_64_tokens() -> int:
    """Tokens MiniLM makes of TEXT_64 (the engine is only asked, not timed)."""
    try:
        import engine

        return len(engine.load("minilm", device="cpu").codec.encode(TEXT_64).ids)
    except Exception:  # noqa: BLE001 - the benchmark still runs; the count is then unknown
        return -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=None,
                    help="repeats of measurements 2 and 3 (default 7), or of the --long "
                         "scenario (default 3)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--watch", action="store_true",
                    help="keep Streamlit's file watcher on (by default it is off: a source edit "
                         "during the run would reload modules under the cached model)")
    ap.add_argument("--long", action="store_true",
                    help="the long-input scenario (Gemma, ~2,048 tokens, every tab) instead")
    ap.add_argument("--tokens", type=int, default=2048,
                    help="--long: the text's length in Gemma tokens (at most; default 2048)")
    ap.add_argument("--warmup-tokens", type=int, default=160,
                    help="--long: the warm-up text's length (every tab once, not counted)")
    ap.add_argument("--warmup-layer", type=int, default=2,
                    help="--long: the warm-up's layer, and so the Ablation tab's head off")
    ap.add_argument("--timeout", type=float, default=1200,
                    help="--long: seconds one action may take before the run stops")
    ap.add_argument("--no-timings", action="store_true",
                    help="--long: run the app without ATTENTION_STUDIO_TIMINGS (no server "
                         "steps; nothing is serialised twice)")
    args = ap.parse_args()
    watch = [] if args.watch else ["--server.fileWatcherType", "none"]
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    if args.long:
        long_scenario(args, watch)
        return
    args.reps = 7 if args.reps is None else args.reps
    from playwright.sync_api import sync_playwright

    n64 = check_64_tokens()
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="bench_browser_", suffix=".log")[1])
    streamlit = ROOT / ".venv" / "bin" / "streamlit"
    launcher = [str(streamlit)] if streamlit.exists() else [sys.executable, "-m", "streamlit"]
    results: dict = {}
    step = "start"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        start = time.perf_counter()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*launcher, "run", "app.py", "--server.port", str(port),
                 "--server.headless", "true", *watch],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            step = "cold start"
            wait_health(port, proc)
            results["server_up_s"] = time.perf_counter() - start
            page.goto(f"http://127.0.0.1:{port}/")
            wait_tick(page, "animal")
            results["cold_start_s"] = time.perf_counter() - start
            wait_idle(page)

            step = "typed sentence"
            box = page.get_by_role("textbox", name="Text", exact=True)
            # a text area applies on Ctrl+Enter (Streamlit's way), a text input on Enter
            apply = "Control+Enter" if box.evaluate("e => e.tagName") == "TEXTAREA" else "Enter"
            typed = []
            for word in WORDS[: args.reps + 1]:
                box.fill(f"The {word} was seen near the old bridge at noon.")
                t0 = time.perf_counter()
                box.press(apply)
                wait_tick(page, word)
                typed.append(time.perf_counter() - t0)
                wait_idle(page)
            results["typed_sentence_s"] = typed[1:]  # the first one warms the path up
            results["typed_sentence_median_s"] = statistics.median(typed[1:])

            step = "model view"
            box.fill(TEXT_64)
            box.press(apply)
            wait_tick(page, "river")
            wait_idle(page)
            model_view = []
            for _ in range(args.reps + 1):
                page.get_by_role("tab", name="Head", exact=True).click()
                wait_idle(page)
                page.wait_for_function(  # the previous model view is gone from the page
                    "() => document.querySelectorAll('.js-plotly-plot .hm image').length < 72",
                    timeout=TIMEOUT_MS)
                t0 = time.perf_counter()
                page.get_by_role("tab", name="Model view", exact=True).click()
                wait_images(page, 72)
                model_view.append(time.perf_counter() - t0)
                wait_idle(page)
            results["model_view_s"] = model_view[1:]
            results["model_view_median_s"] = statistics.median(model_view[1:])
            results["model_view_tokens"] = n64
        except Exception as exc:
            raise SystemExit(f"{step}: {type(exc).__name__}: {str(exc).splitlines()[0]} "
                             f"(server log: {log})") from None
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            browser.close()
    results["load_average"] = os.getloadavg()
    results["cpus"] = os.cpu_count()
    print(f"Attention Studio in headless Chromium ({os.cpu_count()} CPUs, load average "
          f"{results['load_average'][0]:.1f} / {results['load_average'][1]:.1f} / "
          f"{results['load_average'][2]:.1f})")
    print("| measurement | result | target |")
    print("|---|---:|---:|")
    print(f"| cold start → first chart (MiniLM) | {results['cold_start_s']:.2f} s "
          f"(server up at {results['server_up_s']:.2f} s) | ≤ {TARGETS['cold_start_s']:.1f} s |")
    print(f"| typed sentence (≤ 32 tokens) → heatmap redrawn, median of {args.reps} | "
          f"{results['typed_sentence_median_s']:.2f} s | "
          f"≤ {TARGETS['typed_sentence_median_s']:.1f} s |")
    print(f"| model view, 72 heads at {n64} tokens, median of {args.reps} | "
          f"{results['model_view_median_s']:.2f} s | ≤ {TARGETS['model_view_median_s']:.1f} s |")
    print("all runs (s): typed " + ", ".join(f"{t:.2f}" for t in results["typed_sentence_s"])
          + "; model view " + ", ".join(f"{t:.2f}" for t in results["model_view_s"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def long_scenario(args, watch: list[str]) -> None:
    """bench/browser_long.py's scenario: run, print the table, write the JSON."""
    sys.path.insert(0, str(ROOT))  # bench.browser_long, and app_pages.shared.timing in it
    from bench import browser_long

    reps = 3 if args.reps is None else args.reps
    if reps < 1 or args.tokens < 2 or args.warmup_tokens < 2:
        raise SystemExit("--reps, --tokens and --warmup-tokens must be positive")
    results = browser_long.run_long(
        reps=reps, tokens=args.tokens, warmup_tokens=args.warmup_tokens,
        timeout_s=args.timeout, timings_on=not args.no_timings, watch=watch,
        port=free_port(), chromium=CHROMIUM, chromium_args=CHROMIUM_ARGS,
        warmup_layer=args.warmup_layer)
    results["command"] = "python bench/bench_browser.py " + " ".join(sys.argv[1:])
    try:
        results["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True).stdout.strip()
    except OSError:
        results["git"] = None
    print(browser_long.report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if results.get("error"):  # what was measured before it is printed and written above
        raise SystemExit(f"stopped early: {results['error']}")


if __name__ == "__main__":
    main()
