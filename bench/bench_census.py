"""Head census throughput: texts/s and tokens/s, local against Ray with two workers, and
the census's cost per text against one `attend` call.

    python bench/bench_census.py [--models minilm smollm2-135m] [--texts 96] [--batch-size 8]
                                 [--repeats 3] [--no-ray]

Per model, on the first N texts of the bundled corpus (assets/corpus/sentences.txt):
- the work per text, interleaved medians of three callables over the same N texts:
  `census B` (the census's unit of work, `rows.census_rows`: attend_batch(outputs=False)
  in batches of B, then every head's metrics), `census 1` (the same, one text at a time) and
  `attend` (one `model.attend(text)` per text: every map and the outputs, what the Attention
  page asks for). Ratios against `attend`: the census must not cost more than the maps it
  summarises.
- end to end: `run_census` with engine local and with engine ray (2 CPU actors, a local Ray
  started for the run): wall seconds, texts/s, tokens/s; Ray's own start (ray.init) timed
  apart, since on a small corpus it is most of the wall time.
Results go to bench/results/census_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.timing import add_common_args, apply_threads, interleaved  # noqa: E402
from engine.census import ray_run, rows  # noqa: E402
from engine.census.corpus import read_corpus  # noqa: E402
from engine.census.run import run_census  # noqa: E402
from engine.census.settings import CensusSettings  # noqa: E402
from engine.models.registry import MODELS, load  # noqa: E402


def per_text_costs(model, texts: list[str], batch: int, repeats: int) -> dict[str, float]:
    ids = list(range(len(texts)))

    def census(b):
        def run():
            for s in range(0, len(texts), b):
                rows.census_rows(model, texts[s:s + b], ids[s:s + b])
        return run

    def attend():
        for t in texts:
            model.attend(t)

    fns = {f"census {batch}": census(batch), "census 1": census(1), "attend": attend}
    seconds = interleaved(fns, model.device, repeats)
    return {k: v / len(texts) for k, v in seconds.items()}


def end_to_end(name: str, n_texts: int, batch: int, engine: str, device: str) -> dict:
    started = {}
    real_start = ray_run.start_ray

    def timed_start(workers):
        t0 = time.perf_counter()
        out = real_start(workers)
        started["ray_init_s"] = time.perf_counter() - t0
        return out

    ray_run.start_ray = timed_start
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = CensusSettings(model=name, max_texts=n_texts, batch_size=batch,
                                      engine=engine, device=device,
                                      workers=2 if engine == "ray" else None)
            t0 = time.perf_counter()
            manifest = run_census(settings, Path(tmp) / "census")
            wall = time.perf_counter() - t0
    finally:
        ray_run.start_ray = real_start
    return {"wall_s": wall, "texts_per_s": manifest["n_texts"] / wall,
            "tokens_per_s": manifest["n_tokens"] / wall, "n_tokens": manifest["n_tokens"],
            **started}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["minilm", "smollm2-135m"])
    ap.add_argument("--texts", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true")
    add_common_args(ap)
    args = ap.parse_args()
    apply_threads(args)
    texts = read_corpus(None, max_texts=args.texts).texts
    results = {"texts": len(texts), "batch_size": args.batch_size, "device": args.device,
               "torch": torch.__version__, "models": {}}
    for name in args.models:
        if name not in MODELS or not MODELS[name].is_installed():
            print(f"{name}: not installed, skipped")
            continue
        model = load(name, device=args.device)
        n_tokens = sum(len(model.codec.encode(t).ids) for t in texts)
        cost = per_text_costs(model, texts, args.batch_size, args.repeats)
        entry = {"tokens": n_tokens, "per_text_s": cost,
                 "census_over_attend": {k: v / cost["attend"] for k, v in cost.items()}}
        entry["local"] = end_to_end(name, len(texts), args.batch_size, "local", args.device)
        if not args.no_ray:
            entry["ray_2_workers"] = end_to_end(name, len(texts), args.batch_size, "ray",
                                                args.device)
        results["models"][name] = entry
        print(f"\n{name}: {len(texts)} texts, {n_tokens} tokens")
        for k, v in cost.items():
            print(f"  {k:>10}: {v * 1e3:8.2f} ms/text  ({1 / v:7.1f} texts/s, "
                  f"{n_tokens / len(texts) / v:8.0f} tokens/s)  "
                  f"{v / cost['attend']:.2f}× attend")
        for k in ("local", "ray_2_workers"):
            if k in entry:
                e = entry[k]
                extra = f", ray.init {e['ray_init_s']:.1f} s" if "ray_init_s" in e else ""
                print(f"  run_census {k:>13}: {e['wall_s']:6.1f} s wall, "
                      f"{e['texts_per_s']:6.1f} texts/s, {e['tokens_per_s']:7.0f} tokens/s"
                      f"{extra}")
        if "ray_2_workers" in entry:
            ratio = entry["ray_2_workers"]["wall_s"] / entry["local"]["wall_s"]
            entry["ray_over_local_wall"] = ratio
            print(f"  ray / local wall: {ratio:.2f}×")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"census_{args.device}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
