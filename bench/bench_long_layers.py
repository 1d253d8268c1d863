"""What a long input's layer switch costs, engine side: a pass up to layer k (what the page
did before issue 17) against the map recomputed from the background pass's q and k
(engine.replay), and what the background pass itself costs against the plain recording pass.

    .venv/bin/python bench/bench_long_layers.py --tokens 2048 --layers 0 8 17

Prints seconds and ratios measured in this run (the machine is shared: read the ratios), and
the load average. Text: the bundled corpus's English lines (assets/corpus/sentences.txt, CC0)
repeated to --tokens Gemma tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import engine
from engine.replay import maps_from_qk, stream_layers

ROOT = Path(__file__).resolve().parent.parent


def long_text(model: engine.LoadedModel, n: int) -> str:
    lines = [ln for ln in (ROOT / "assets/corpus/sentences.txt").read_text().splitlines()
             if ln.isascii() and ln.strip()]
    text, i = lines[0], 1
    while len(model.codec.encode(text).ids) < n:
        text += " " + lines[i % len(lines)]
        i += 1
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 8, 17])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = engine.load(args.model)
    kind = "decoder.self" if model.kind == "decoder" else "encoder.self"
    text = long_text(model, args.tokens)
    n = len(model.codec.encode(text).ids)
    out: dict = {"model": args.model, "tokens": n, "load_before": os.getloadavg()[0]}
    model.attend(text, layers=[f"{kind}.0"], outputs=False)  # warm-up
    t = time.perf_counter()
    qk: dict = {}
    stream_layers(model, text, kind, lambda k, w, x: qk.setdefault(k, x))
    out["background_pass_s"] = time.perf_counter() - t
    out["qk_mb"] = sum(v.nbytes for v in qk.values()) / 2**20
    rows = []
    for layer in args.layers:
        key = f"{kind}.{layer}"
        t = time.perf_counter()
        model.attend(text, layers=[key], outputs=False)
        upto = time.perf_counter() - t
        t = time.perf_counter()
        maps_from_qk(model, key, qk[key])
        all_heads = time.perf_counter() - t
        t = time.perf_counter()
        maps_from_qk(model, key, qk[key], heads=[0])
        one = time.perf_counter() - t
        rows.append(dict(layer=layer, pass_up_to_layer_s=upto, replay_all_heads_s=all_heads,
                         replay_one_head_s=one, ratio_all=all_heads / upto))
        print(f"layer {layer:2d}: pass up to it {upto:6.2f} s · replay, all heads "
              f"{all_heads:5.2f} s ({all_heads / upto:.2f}×) · one head {one:5.2f} s")
    out["layers"] = rows
    out["load_after"] = os.getloadavg()[0]
    print(f"{args.model}, {n} tokens: background pass (every layer's maps, q and k) "
          f"{out['background_pass_s']:.1f} s, keeps {out['qk_mb']:.0f} MiB of q and k; "
          f"load {out['load_before']:.1f} → {out['load_after']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
