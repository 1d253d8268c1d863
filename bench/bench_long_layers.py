"""What a long input's layer switch costs, engine side: a pass up to layer k (what the page
did before issue 17) against the map recomputed from the background pass's q and k
(engine.replay), and what the background pass itself costs against the plain recording pass.
With --ablate, what the Ablation tab's engine work costs: one head switched off at layer k,
the pass resumed there from the background pass's stream (the layers k.. run again, with the
outputs), against a whole pass with the outputs, each the median of --repeats, interleaved.

    .venv/bin/python bench/bench_long_layers.py --tokens 2048 --layers 0 8 17
    .venv/bin/python bench/bench_long_layers.py --tokens 2048 --layers --ablate 0 2 8 14

Prints seconds and ratios measured in this run (the machine is shared: read the ratios), and
the load average. Text: the bundled corpus's English lines (assets/corpus/sentences.txt, CC0)
repeated to --tokens Gemma tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    ap.add_argument("--layers", type=int, nargs="*", default=[0, 8, 17])
    ap.add_argument("--ablate", type=int, nargs="*", default=[],
                    help="first layers with a head off, timed against a whole pass")
    ap.add_argument("--repeats", type=int, default=3)
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
    out["ablation"] = [ablation_row(model, text, kind, qk, k, args.repeats) for k in args.ablate]
    out["load_after"] = os.getloadavg()[0]
    print(f"{args.model}, {n} tokens: background pass (every layer's maps, q and k) "
          f"{out['background_pass_s']:.1f} s, keeps {out['qk_mb']:.0f} MiB of q and k; "
          f"load {out['load_before']:.1f} → {out['load_after']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


def ablation_row(model: engine.LoadedModel, text: str, kind: str, qk: dict, layer: int,
                 repeats: int) -> dict:
    """Head 0 of `layer` off, resumed from the stream entering it, against a whole pass."""
    key = f"{kind}.{layer}"
    resumed, whole = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        model.attend(text, layers=[], heads_off={key: [0]}, resume=(layer, qk[key].stream))
        resumed.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.attend(text, layers=[], heads_off={key: [0]})
        whole.append(time.perf_counter() - t)
    r, w = statistics.median(resumed), statistics.median(whole)
    cfg = model.config
    n_run = (cfg.n_encoder_layers if model.kind == "encoder" else cfg.n_decoder_layers) - layer
    print(f"ablation at layer {layer:2d}: resumed ({n_run} layers) {r:5.2f} s · whole pass "
          f"{w:5.2f} s ({r / w:.2f}×)")
    return dict(layer=layer, layers_run=n_run, resumed_s=r, whole_pass_s=w, ratio=r / w)


if __name__ == "__main__":
    main()
