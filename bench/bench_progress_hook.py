"""The per-layer progress callback's cost: `model.attend(text)` with and without
`progress=` (forward hooks on the blocks of the pass), interleaved in one process, medians
and their ratio. Nothing is asserted: the ratio is the result.

    .venv/bin/python bench/bench_progress_hook.py --model minilm --tokens 16 512 --reps 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import engine


def text_of(model, n: int) -> str:
    """A text of about n tokens for `model`."""
    words, text = [], ""
    while len(model.codec.encode(text or "a").ids) < n:
        words.append(f"word{len(words)} sat")
        text = " ".join(words)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--tokens", type=int, nargs="+", default=[16, 512])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    model = engine.load(args.model, device=args.device)
    for n in args.tokens:
        text = text_of(model, n)
        calls: list[int] = []
        plain, hooked = [], []
        model.attend(text)  # warm-up
        hook = {"progress": lambda done, total, c=calls: c.append(done)}
        for _ in range(args.reps):
            for runs, kw in ((plain, {}), (hooked, hook)):
                start = time.perf_counter()
                model.attend(text, **kw)
                runs.append(time.perf_counter() - start)
        a, b = statistics.median(plain), statistics.median(hooked)
        print(f"{args.model} {len(model.codec.encode(text).ids)} tokens: without {a * 1e3:.1f} ms, "
              f"with progress {b * 1e3:.1f} ms, ratio {b / a:.3f} "
              f"({len(calls) // args.reps} callbacks per pass, {args.reps} reps)")


if __name__ == "__main__":
    main()
