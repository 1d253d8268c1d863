"""Contributions (norm and flow maps) for one layer against that layer's weights alone.

    python bench/bench_contributions.py [--models minilm gemma3-270m] [--repeats 5]

For each model and length: `attend(text, layers=[k], outputs=False)` (weights only) against the
same call with `contributions=True`, interleaved medians in one run, and the memory each call
adds over the loaded model, in a fresh subprocess per side. Prints ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import add_common_args, apply_threads, interleaved  # noqa: E402

CASES = {"minilm": (3, [512]), "gemma3-270m": (8, [512, 2048]),
         "smollm2-135m": (15, [512, 2048])}
WORDS = ("the cat sat on the mat while a storm rolled over the hills and everyone "
         "went home early because it was late ").split()


def text_of(model, n_tokens: int) -> str:
    """A text of about n_tokens tokens for this model's tokenizer."""
    words = []
    while len(model.codec.encode(" ".join(words or ["x"])).ids) < n_tokens:
        words += WORDS
    while len(model.codec.encode(" ".join(words)).ids) > n_tokens:
        words.pop()
    return " ".join(words)


def call_memory(name: str, layer: int, n_tokens: int, contributions: bool) -> float:
    """GiB the call itself adds on top of the loaded model: the highest resident set seen
    while it runs (sampled every 5 ms from /proc/self/statm) minus the one before it, in a
    fresh process (the load's own peak would hide the call's in ru_maxrss)."""
    code = f"""
import os, sys, threading, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
import engine
from bench.bench_contributions import text_of
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
m = engine.load({name!r}, device="cpu")
text = text_of(m, {n_tokens})
m.attend(text, layers=[{layer}], outputs=False, contributions={contributions})  # warm
base, peak, done = rss(), [0], threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], rss()); time.sleep(0.005)
w = threading.Thread(target=watch); w.start()
m.attend(text, layers=[{layer}], outputs=False, contributions={contributions})
done.set(); w.join()
print((max(peak[0], rss()) - base) / 2**30)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["minilm", "gemma3-270m"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    add_common_args(ap)
    args = ap.parse_args(argv)
    apply_threads(args)
    import engine

    rows = []
    for name in args.models:
        layer, lengths = CASES[name]
        try:
            m = engine.load(name, device=args.device)
        except engine.ModelNotInstalled as exc:
            print(f"{name}: skipped ({exc})")
            continue
        for n in lengths:
            text = text_of(m, n)

            def call(contributions, m=m, text=text, layer=layer):
                return lambda: m.attend(text, layers=[layer], outputs=False,
                                        contributions=contributions)

            t = interleaved({"weights": call(False), "contributions": call(True)}, m.device,
                            args.repeats)
            row = dict(model=name, layer=layer, tokens=len(m.codec.encode(text).ids),
                       weights_s=t["weights"], contributions_s=t["contributions"],
                       time_ratio=t["contributions"] / t["weights"])
            if not args.no_memory:
                w_mem = call_memory(name, layer, n, False)
                c_mem = call_memory(name, layer, n, True)
                row.update(weights_call_gib=w_mem, contributions_call_gib=c_mem,
                           memory_ratio=c_mem / w_mem if w_mem > 0 else None)
            rows.append(row)
            print(json.dumps(row), flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    result = dict(rows=rows, command=" ".join(["python bench/bench_contributions.py", *(
        argv if argv is not None else sys.argv[1:])]), load_average=load,
        when=time.strftime("%Y-%m-%d %H:%M:%S"),
        max_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"contributions_{args.device}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
