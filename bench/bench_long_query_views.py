"""The head view and Q·K of a 2,048-token input: today's whole-row figures against the
long-input ones (a window around the query and its strongest keys), in one run.

    python bench/bench_long_query_views.py [--tokens 2048] [--repeats 5] [--layer 0]
                                          [--no-gemma] [--no-browser]

1. A random causal map (numpy, 4 heads, d 64): figure build, JSON serialisation (what
   Streamlit sends), JSON size, and (with Chromium) the browser's Plotly.newPlot time.
2. gemma3-270m at ~2,048 tokens: the page's own record (`attend(layers=[key],
   outputs=False)`, which the head view reads) against the Q·K record (`scores=True,
   qk=True` added: whole [H, T, T] score and weight maps) and its size, and the four figures
   on the real maps.
Medians of interleaved rounds (bench/timing.py); prints ratios against the peer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import plotly.io as pio  # noqa: E402

from bench.timing import add_common_args, apply_threads, interleaved  # noqa: E402
from viz.figures.head_view import head_view  # noqa: E402
from viz.figures.head_view_query import head_view_query  # noqa: E402
from viz.figures.qk_view import qk_view  # noqa: E402
from viz.figures.qk_view_query import qk_view_query  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLOTLY_JS = Path(pio.__file__).resolve().parents[1] / "package_data" / "plotly.min.js"


def random_maps(t: int, h: int = 4, d: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((h, t, d)).astype(np.float32)
    k = rng.standard_normal((h, t, d)).astype(np.float32)
    s = (q @ k.transpose(0, 2, 1) / np.sqrt(d)).astype(np.float32)
    s[:, :, 0] += 4.0  # a sink, as real heads have
    s[:, np.triu(np.ones((t, t), bool), 1)] = -np.inf
    e = np.exp(s - s.max(-1, keepdims=True))
    return q, k, s, (e / e.sum(-1, keepdims=True)).astype(np.float32)


def figure_builders(q, k, s, w, q_tok, k_tok, query: int, head: int = 0,
                    scale: float | None = None) -> dict:
    """The four figures as the page builds them (today's for a long input: the head view on
    one query, as its picker then offers no 'all queries'; Q·K over every key)."""
    return {
        "head view, today": lambda: head_view(w, q_tok, k_tok, heads=[head], query=query,
                                              min_weight=0.05),
        "head view, long": lambda: head_view_query(w, q_tok, k_tok, query=query, heads=[head],
                                                   min_weight=0.05),
        "Q·K, today": lambda: qk_view(q, k, query, k_tok, q_tok, head=head, scores=s,
                                      weights=w, scale=scale),
        "Q·K, long": lambda: qk_view_query(q, k, query, k_tok, q_tok, head=head, scores=s,
                                           weights=w, scale=scale),
    }


def measure_figures(builders: dict, repeats: int, browser) -> dict:
    build = interleaved(builders, _cpu(), repeats)
    figs = {n: b() for n, b in builders.items()}
    out = {}
    for name, fig in figs.items():
        t0 = time.perf_counter()
        text = pio.to_json(fig, validate=False)
        out[name] = dict(build_s=build[name], json_s=time.perf_counter() - t0,
                         json_kB=len(text) / 1e3)
        if browser is not None:
            out[name]["browser_newPlot_s"] = browser(text, repeats)
    return out


def _cpu():
    import torch

    return torch.device("cpu")


def browser_timer():
    """A function timing Plotly.newPlot of a figure's JSON in headless Chromium (median of
    n draws into a fresh div), or None without Chromium/Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, None
    from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS

    pw = sync_playwright().start()
    chrome = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = chrome.new_page()
    page.set_content("<html><body></body></html>")
    page.add_script_tag(content=PLOTLY_JS.read_text())

    def draw(text: str, n: int) -> float:
        times = page.evaluate("""async ([spec, n]) => {
            const fig = JSON.parse(spec), out = [];
            for (let i = 0; i < n + 1; i++) {
                const div = document.createElement('div');
                document.body.appendChild(div);
                const t0 = performance.now();
                await Plotly.newPlot(div, fig.data, fig.layout);
                await new Promise(r => requestAnimationFrame(() => r()));
                out.push(performance.now() - t0);
                Plotly.purge(div); div.remove();
            }
            return out.slice(1);
        }""", [text, n])
        return statistics.median(times) / 1e3

    def close():
        chrome.close()
        pw.stop()

    return draw, close


def text_of(model, n_tokens: int) -> str:
    from bench.bench_contributions import text_of as contributions_text

    return contributions_text(model, n_tokens)


def gemma_rows(args, browser) -> dict:
    import engine

    model = engine.load("gemma3-270m", device="cpu")
    text = text_of(model, args.tokens)
    key = f"decoder.self.{args.layer}"
    calls = {
        "page record (weights)": lambda: model.attend(text, layers=[key], outputs=False),
        "Q·K record (scores, q, k)": lambda: model.attend(text, scores=True, qk=True,
                                                          layers=[key], outputs=False),
    }
    engine_s = interleaved(calls, _cpu(), args.engine_repeats)
    rec = calls["Q·K record (scores, q, k)"]()
    # its size as the shared result cache weighs it (records are no longer pickled per hit)
    size = sum(a.nbytes for d in (rec.maps, rec.scores, rec.q, rec.k) for a in d.values())
    q_tok, k_tok = rec.axis_labels(key)
    t = len(q_tok)
    figs = measure_figures(figure_builders(rec.q[key], rec.k[key], rec.scores[key], rec[key],
                                           q_tok, k_tok, t - 1, scale=model.config.scale),
                           args.repeats, browser)
    return dict(tokens=t, key=key, engine_s=engine_s,
                qk_record_MB=size / 1e6, figures=figs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--engine-repeats", type=int, default=3)
    ap.add_argument("--layer", type=int, default=0)
    ap.add_argument("--no-gemma", action="store_true")
    ap.add_argument("--no-browser", action="store_true")
    add_common_args(ap)
    args = ap.parse_args(argv)
    apply_threads(args)
    load_before = os.getloadavg()
    draw, close = (None, None) if args.no_browser else browser_timer()
    try:
        q, k, s, w = random_maps(args.tokens)
        toks = [f"w{i}" for i in range(args.tokens)]
        result = dict(tokens=args.tokens, load_average_before=load_before,
                      random=measure_figures(
                          figure_builders(q, k, s, w, toks, toks, args.tokens - 1),
                          args.repeats, draw))
        if not args.no_gemma:
            result["gemma3-270m"] = gemma_rows(args, draw)
    finally:
        if close:
            close()
    result["command"] = "python bench/bench_long_query_views.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    result["load_average_after"] = os.getloadavg()
    report(result)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"long_query_views_L{args.layer}_cpu.json"
        path.write_text(json.dumps(result, indent=1))
        print(f"wrote {path}")
    return 0


def report(result: dict) -> None:
    for name, figs in (("random", result["random"]),
                       ("gemma3-270m", result.get("gemma3-270m", {}).get("figures", {}))):
        for view in ("head view", "Q·K"):
            if f"{view}, today" not in figs:
                continue
            a, b = figs[f"{view}, today"], figs[f"{view}, long"]
            line = (f"{name:12s} {view:9s} build {a['build_s'] * 1e3:7.1f} → "
                    f"{b['build_s'] * 1e3:6.1f} ms ({a['build_s'] / b['build_s']:.1f}×), "
                    f"JSON {a['json_kB']:6.1f} → {b['json_kB']:5.1f} kB")
            if "browser_newPlot_s" in a:
                line += (f", browser draw {a['browser_newPlot_s'] * 1e3:6.0f} → "
                         f"{b['browser_newPlot_s'] * 1e3:5.0f} ms "
                         f"({a['browser_newPlot_s'] / b['browser_newPlot_s']:.1f}×)")
            print(line)
    g = result.get("gemma3-270m")
    if g:
        e = g["engine_s"]
        w, qk = e["page record (weights)"], e["Q·K record (scores, q, k)"]
        print(f"gemma3-270m {g['tokens']} tokens, {g['key']}: page record {w:.2f} s, Q·K record "
              f"{qk:.2f} s ({qk / w:.2f}× the page's); Q·K record {g['qk_record_MB']:.0f} MB")
    before, after = result["load_average_before"][0], result["load_average_after"][0]
    print(f"load average (1 min) {before:.1f} before, {after:.1f} after")


if __name__ == "__main__":
    raise SystemExit(main())
