"""One attention call in query blocks against one dense call: where the engine's block paths
pay. Gemma 3's shape (4 query heads sharing 1 K/V head of 256), float32, random values.

- maps: the recorded path (`attention(...)` with weights) against `blocked_attention`, whose
  blocks read only the keys their rows may see (causal: half the products);
- fused: no weights, a sliding window's dense mask against blocks of `window` rows, and of
  `window / 2` and `window / 4` rows (fewer keys per block: r + w - 1 for r rows).

The engine's rules (`record_blocks_pay`, `window_blocks_pay` in engine/fast/blocked.py)
follow these numbers.

Usage:
    python bench/bench_blocks.py --out bench/results                  # CPU, 2,048 tokens
    python bench/bench_blocks.py --lengths 2048 8000 --repeats 5      # CPU, and 8,000
    python bench/bench_blocks.py --device cuda --out bench/results    # 2,048 / 8,192 / 32,768
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.timing import add_common_args, apply_threads, interleaved  # noqa: E402
from engine.core.attention import attention, blocked_attention  # noqa: E402
from engine.core.masks import MaskSpec  # noqa: E402


def measure(spec: MaskSpec, t: int, device: torch.device, repeats: int) -> dict:
    """Median ms of each way to run one [4 heads, T, T] attention under `spec`."""
    q = torch.randn(1, 4, t, 256, device=device)
    k, v = (torch.randn(1, 1, t, 256, device=device) for _ in range(2))
    mask = spec.dense(t, t, device)
    calls = {
        "fused, dense": lambda: attention(q, k, v, mask=mask, scale=1 / 16, need_weights=False),
        "fused, blocks": lambda: blocked_attention(q, k, v, spec, 1 / 16,
                                                   rows=spec.window or 512, need_weights=False),
    }
    if spec.window:
        for part in (2, 4):
            rows = spec.window // part
            calls[f"fused, blocks of w/{part}"] = (
                lambda rows=rows: blocked_attention(q, k, v, spec, 1 / 16, rows=rows,
                                                    need_weights=False))
    if t <= 8192:  # a [4, T, T] float32 map is 1 GiB at 8,192 tokens
        calls["maps, dense"] = lambda: attention(q, k, v, mask=mask, scale=1 / 16)
        calls["maps, blocks"] = lambda: blocked_attention(q, k, v, spec, 1 / 16)
    return {name: s * 1e3 for name, s in interleaved(calls, device, repeats, warmup=2).items()}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap, out=None)
    ap.add_argument("--lengths", type=int, nargs="*")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    apply_threads(args)
    device = torch.device(args.device)
    lengths = args.lengths or ((2048, 8192, 32768) if device.type == "cuda" else (2048,))
    rows = []
    for spec in (MaskSpec(causal=True), MaskSpec(causal=True, window=512)):
        for t in lengths:
            row = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                   else "cpu", "threads": torch.get_num_threads(), "tokens": t,
                   "window": spec.window}
            times = measure(spec, t, device, args.repeats)
            rows.append({**row, **times})
            print(f"window={spec.window} T={t}: " + ", ".join(
                f"{name} {ms:.2f} ms" for name, ms in times.items()), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"blocks_{device.type}.json").write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
