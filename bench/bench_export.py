"""Export timings per format: first call and warm median, for the figures the app exports.

    .venv/bin/python bench/bench_export.py [--repeat 3] [--quick]

Cases: one head at 64 / 128 (the vector-cell limit) / 512 tokens / 2,048 tokens (block
overview), the model
view of MiniLM's shape (6 layers × 12 heads at 64 tokens) and of Gemma's (18 × 4 at 2,048
tokens), and the numbers (CSV/JSON/NPZ) of a 6 × 12 × 64² record. "start" is the Chromium
start, paid once per process by the first PNG/SVG/PDF export.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viz import export as ex  # noqa: E402
from viz.figures.heatmap import head_heatmap  # noqa: E402
from viz.figures.model_view import model_view  # noqa: E402


def maps(h: int, t: int, seed: int = 0) -> np.ndarray:
    """Causal random attention [h, t, t], rows summing to 1."""
    rng = np.random.default_rng(seed)
    s = np.where(np.tril(np.ones((t, t), bool)), rng.standard_normal((h, t, t)) * 2, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    return (a / a.sum(-1, keepdims=True)).astype(np.float32)


def timed(fn) -> tuple[float, int]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, len(out)


def row(case: str, fmt: str, fn, repeat: int) -> None:
    first, size = timed(fn)
    warm = [timed(fn)[0] for _ in range(repeat)]
    med = statistics.median(warm) if warm else float("nan")
    print(f"{case:<28} {fmt:<5} {first:>8.2f} {med:>8.2f} {size / 1e6:>9.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="warm runs per row (median shown)")
    p.add_argument("--quick", action="store_true", help="skip the two model views")
    args = p.parse_args()

    print(f"{'case':<28} {'fmt':<5} {'first_s':>8} {'warm_s':>8} {'MB':>9}")
    tiny = head_heatmap(maps(1, 4)[0], list("abcd"))
    have_chromium = ex.chromium_available()
    if have_chromium:
        ex.shutdown()
        t0, _ = timed(lambda: ex.figure_bytes(tiny, "png"))
        t1, _ = timed(lambda: ex.figure_bytes(tiny, "png"))
        print(f"{'chromium start + tiny png':<28} {'png':<5} {t0:>8.2f} {t1:>8.2f}")
    else:
        print("Chromium not found: PNG/SVG/PDF rows skipped (apt-get install -y chromium)")

    figures = {
        "head 64 tokens": head_heatmap(maps(1, 64)[0], [f"t{i}" for i in range(64)]),
        "head 128 tokens": head_heatmap(maps(1, 128)[0], [f"t{i}" for i in range(128)]),
        "head 512 tokens": head_heatmap(maps(1, 512)[0], [f"t{i}" for i in range(512)]),
        "head 2048 (overview)": head_heatmap(maps(1, 2048)[0], [f"t{i}" for i in range(2048)]),
    }
    if not args.quick:
        figures["model view 6x12 @64"] = model_view([maps(12, 64, s) for s in range(6)])
        gemma = maps(4, 2048)
        figures["model view 18x4 @2048"] = model_view([gemma] * 18)
        del gemma
    formats = ("png", "svg", "pdf", "html") if have_chromium else ("html",)
    for case, fig in figures.items():
        for fmt in formats:
            row(case, fmt, lambda fig=fig, fmt=fmt: ex.figure_bytes(fig, fmt), args.repeat)

    rec = ex.AttentionData({f"encoder.self.{i}": maps(12, 64, i) for i in range(6)},
                           [f"t{i}" for i in range(64)])
    for fmt in ex.DATA_FORMATS:
        row("numbers 6x12x64^2", fmt, lambda fmt=fmt: ex.data_bytes(rec, fmt), args.repeat)
    layer = rec.select(layer=0)
    for fmt in ex.DATA_FORMATS:
        row("numbers 1 layer 12x64^2", fmt, lambda fmt=fmt: ex.data_bytes(layer, fmt), args.repeat)


if __name__ == "__main__":
    main()
