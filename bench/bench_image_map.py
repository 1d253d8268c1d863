"""A long map in the browser: a Plotly heatmap of float32 cells against the one-pixel-a-cell
PNG of viz.figures.image_map, both drawn by plotly.js in headless Chromium. Nothing else is
on the page: there is no app and no Streamlit.

    .venv/bin/python bench/bench_image_map.py --tokens 2048 --reps 3

For each figure it prints the JSON size, the server-side build and serialisation, and the
browser's JSON.parse + Plotly.newPlot (median of --reps), and the ratio heatmap / image
measured in this run. The map is a causal softmax of random scores (a real map compresses
better: its PNG is smaller).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from viz.figures.image_map import image_map

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLOTLY_JS = Path(go.__file__).resolve().parent.parent / "package_data" / "plotly.min.js"


def causal_map(t: int) -> np.ndarray:
    s = np.random.default_rng(0).normal(size=(t, t)).astype(np.float32) * 3
    s[np.triu_indices(t, 1)] = -np.inf
    w = np.exp(s - s.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    w = causal_map(args.tokens)
    labels = [f"t{i}" for i in range(args.tokens)]
    builders = {
        "heatmap (float32 z)": lambda: go.Figure(go.Heatmap(z=w, colorscale="cividis")),
        "image (indexed PNG)": lambda: image_map(w, labels),
        "image, log scale": lambda: image_map(w, labels, log=True),
    }
    out = {"tokens": args.tokens, "load_before": os.getloadavg()[0], "figures": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.set_content('<div id="g" style="width:900px;height:900px"></div>')
        page.add_script_tag(content=PLOTLY_JS.read_text())
        for name, build in builders.items():
            t0 = time.perf_counter()
            fig = build()
            built = time.perf_counter() - t0
            t0 = time.perf_counter()
            spec = fig.to_json()
            serial = time.perf_counter() - t0
            draws = []
            for _ in range(args.reps):
                draws.append(page.evaluate(
                    "(s) => { const t = performance.now(); const f = JSON.parse(s);"
                    " return Plotly.newPlot('g', f.data, f.layout)"
                    ".then(() => performance.now() - t); }", spec) / 1e3)
            out["figures"][name] = dict(json_mb=len(spec) / 1e6, build_s=built,
                                        serialise_s=serial, draw_s=statistics.median(draws))
            r = out["figures"][name]
            print(f"{name:22s} JSON {r['json_mb']:6.2f} MB · build {r['build_s']:.2f} s · "
                  f"serialise {r['serialise_s']:.2f} s · browser parse+draw "
                  f"{r['draw_s'] * 1e3:7.0f} ms")
        browser.close()
    f = out["figures"]
    h, i = f["heatmap (float32 z)"], f["image (indexed PNG)"]
    out["load_after"] = os.getloadavg()[0]
    print(f"{args.tokens} tokens: heatmap / image — JSON {h['json_mb'] / i['json_mb']:.0f}×, "
          f"draw {h['draw_s'] / i['draw_s']:.0f}×; load {out['load_before']:.1f} → "
          f"{out['load_after']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
