"""Plots of the KV-cache benchmark (bench/bench_kv.py): decode latency and KV-cache memory against
context length per variant, and the achieved fraction of copy bandwidth, for the eager decode
path and (where measured) the graph-decode path (engine.decode.graph).

Reads bench/results/kv_<device>.json, writes for each device
    kv_latency_<device>.png, kv_memory_<device>.png, kv_bandwidth_<device>.png
    kv_figures_<device>.json   (the three Plotly figures, for the app's Variants page)

Usage:
    python bench/plot_results.py                       # every kv_*.json in bench/results/
    python bench/plot_results.py --no-png              # JSON only (no browser needed)
PNG export goes through kaleido, which drives Chromium (/usr/bin/chromium here; set
BROWSER_PATH to use another).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

RESULTS = Path(__file__).resolve().parent / "results"
COLORS = {"MHA": "#d62728", "MQA": "#2ca02c"}  # GQA variants get blue
GOAL = 0.60


def color(variant: str) -> str:
    return COLORS.get(variant, "#1f77b4")


def by_batch(points: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for p in points:
        if p["status"] == "ok":
            out.setdefault(p["batch"], []).append(p)
    return dict(sorted(out.items()))


def grid(result: dict, title: str, y_title: str, series, log_y: bool = False) -> go.Figure:
    """One panel per batch size; `series(points_of_variant)` yields (name, x, y, dash)."""
    groups = by_batch(result["points"])
    fig = make_subplots(rows=1, cols=max(1, len(groups)), shared_yaxes=True,
                        subplot_titles=[f"batch {b}" for b in groups])
    variants = list(dict.fromkeys(p["variant"] for p in result["points"]))
    for col, (_, points) in enumerate(groups.items(), start=1):
        for v in variants:
            mine = sorted((p for p in points if p["variant"] == v), key=lambda p: p["context"])
            for name, x, y, dash in series(mine):
                fig.add_trace(go.Scatter(
                    x=x, y=y, name=f"{v} {name}".strip(), legendgroup=f"{v} {name}",
                    showlegend=col == 1, mode="lines+markers",
                    line={"color": color(v), "dash": dash}), row=1, col=col)
        contexts = sorted({p["context"] for p in points})
        fig.update_xaxes(type="log", title_text="context (tokens)", tickvals=contexts,
                         ticktext=[f"{c // 1024}k" if c >= 1024 else str(c) for c in contexts],
                         row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    if log_y:
        fig.update_yaxes(type="log")
    meta = result["meta"]
    fig.update_layout(title=f"{title} — {meta['device_name']}, torch {meta['torch']}, "
                            f"{meta['date'][:10]}",
                      template="plotly_white", width=420 * max(1, len(groups)) + 160,
                      height=430, legend={"title": "variant"})
    return fig


def _measured(value) -> bool:
    return value is not None and value == value  # not NaN


def figures(result: dict) -> dict[str, go.Figure]:
    # Decoding through engine.decode.graph (a captured CUDA graph per token) beside the eager
    # path, where the run measured it; older results files have only the eager columns.
    graph = any(_measured(p.get("graph_decode_ms")) for p in result["points"])

    def latency(ps):
        x = [p["context"] for p in ps]
        yield "eager", x, [p["decode_ms"] for p in ps], "solid"
        if graph:
            yield "graph decode", x, [p["graph_decode_ms"] for p in ps], "dot"

    def memory(ps):
        x = [p["context"] for p in ps]
        yield "", x, [p["kv_bytes_allocator"] / 2**30 for p in ps], "solid"

    def bandwidth(ps):
        x = [p["context"] for p in ps]
        yield "eager", x, [p["bandwidth_fraction"] for p in ps], "solid"
        if graph:
            yield "graph decode", x, [p["graph_decode_bandwidth_fraction"] for p in ps], "dot"

    figs = {
        "latency": grid(result, "Decode latency per token", "ms per step", latency, log_y=True),
        "memory": grid(result, "KV-cache memory (allocator)", "GiB", memory, log_y=True),
        "bandwidth": grid(result, "Achieved fraction of copy bandwidth", "fraction", bandwidth),
    }
    figs["bandwidth"].add_hline(y=GOAL, line_dash="dash", line_color="gray",
                                annotation_text="goal 60%")
    figs["bandwidth"].update_yaxes(tickformat=".0%", rangemode="tozero")
    return figs


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-png", action="store_true", help="write the JSON figures only")
    args = ap.parse_args(argv)
    if not os.environ.get("BROWSER_PATH") and shutil.which("chromium"):
        os.environ["BROWSER_PATH"] = shutil.which("chromium")
    written: list[Path] = []
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.results.glob("kv_*.json")):
        if path.name.startswith("kv_figures_"):
            continue
        result = json.loads(path.read_text())
        if "points" not in result:  # e.g. kv_decode_kernels_*.json
            continue
        device = path.stem.removeprefix("kv_")
        figs = figures(result)
        target = args.out / f"kv_figures_{device}.json"
        target.write_text(json.dumps({k: json.loads(f.to_json()) for k, f in figs.items()}))
        written.append(target)
        if not args.no_png:
            for name, fig in figs.items():
                png = args.out / f"kv_{name}_{device}.png"
                fig.write_image(png, scale=1)
                written.append(png)
    for p in written:
        print(p)
    return written


if __name__ == "__main__":
    main()
