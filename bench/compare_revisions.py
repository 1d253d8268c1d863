"""The same workload on two revisions of the engine, interleaved, with ratios.

    python bench/compare_revisions.py --base efb4810 [--rounds 5] [--models minilm gemma3-270m]

Checks out `--base` into a temporary git worktree and times, in each tree, calls that every
revision's public API has (`engine.load(name).attend(...)`). Each round starts one fresh
process per tree (base, then this tree, the order alternating by round), so a drift in the
machine's load hits both sides alike; each process loads the model once, warms up, and
reports the median of its repeats. Prints this tree's time over the base's per call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("The animal didn't cross the street because it was too tired, and the rain kept "
        "falling on the quiet town while everyone waited for the morning. ")

# name → {call label: attend keyword arguments}; tokens set by repeating TEXT
CALLS = {
    "minilm": {"16 tokens, every map": (1, {}), "256 tokens, every map": (14, {}),
               "512 tokens, every map": (40, {}),
               "256 tokens, layer 3 only": (14, {"layers": [3], "outputs": False})},
    "gemma3-270m": {"256 tokens, every map": (14, {}),
                    "1,024 tokens, layer 8 only": (60, {"layers": [8], "outputs": False}),
                    "16 tokens + 16 generated": (1, {"generate": 16})},
    "transformer-base": {"64 words, every map": (3, {"target": "le chat"})},
}

WORKER = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[4]))
import engine
name, calls, repeats = sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[5])
m = engine.load(name, device="cpu")
out = {}
for label, (times, kw) in calls.items():
    text = TEXT * times
    m.attend(text, **kw)  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        m.attend(text, **kw)
        runs.append(time.perf_counter() - t0)
    out[label] = statistics.median(runs)
print(json.dumps(out))
"""


def run_tree(tree: Path, name: str, threads: int, repeats: int) -> dict[str, float]:
    code = f"TEXT = {TEXT!r}\n" + WORKER
    out = subprocess.run([sys.executable, "-c", code, str(tree), name, json.dumps(CALLS[name]),
                          str(threads), str(repeats)], cwd=tree, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="the git revision to compare against")
    ap.add_argument("--rounds", type=int, default=5, help="fresh process pairs per model")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per process")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(CALLS), choices=list(CALLS))
    ap.add_argument("--out", type=Path, default=None, help="a JSON file for the results")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            results = {}
            for name in args.models:
                times = {"base": [], "this": []}
                for r in range(args.rounds):
                    order = [("base", base), ("this", ROOT)][:: 1 if r % 2 == 0 else -1]
                    for side, tree in order:
                        times[side].append(run_tree(tree, name, args.threads, args.repeats))
                for label in CALLS[name]:
                    b = statistics.median(t[label] for t in times["base"])
                    t = statistics.median(t[label] for t in times["this"])
                    results[f"{name}: {label}"] = {"base_s": b, "this_s": t, "ratio": t / b}
                    print(f"{name:18s} {label:30s} base {b * 1000:8.1f} ms  this "
                          f"{t * 1000:8.1f} ms  ratio {t / b:5.2f}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT,
                           capture_output=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    if args.out:
        args.out.write_text(json.dumps({"base": args.base, "results": results,
                                        "load_average": load, "command": " ".join(
                                            ["python bench/compare_revisions.py",
                                             *(argv or sys.argv[1:])])}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
