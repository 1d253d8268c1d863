"""What every benchmark here shares: timing a call on a device, interleaved medians, and the
command-line options that set the device, the output folder and torch's thread count.

Interleaving: on a shared machine the load drifts during a run, so the callables compared
take turns (the order rotates each round) and each one's median is reported, never a mean.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds that fn() takes, the device's queue drained before and after."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def interleaved(fns: dict, device: torch.device, repeats: int, warmup: int = 1
                ) -> dict[str, float]:
    """Median seconds of each callable, run in rotating order after `warmup` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(timed(fns[name], device))
    return {k: statistics.median(v) for k, v in times.items()}


def add_common_args(ap: argparse.ArgumentParser, device: str = "cpu",
                    out: Path | None = RESULTS) -> None:
    """--device, --out and --threads, as every benchmark here reads them."""
    ap.add_argument("--device", default=device, help="cpu or cuda")
    ap.add_argument("--out", type=Path, default=out, help="folder for the result files")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (on a shared machine 1 avoids OpenMP stalls)")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
