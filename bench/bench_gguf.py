"""GGUF models (issue 14): SmolLM2-135M-Instruct's load and maps against transformers' GGUF
load, and a Llama-3-8B-shaped model on a GPU against transformers eager.

    python bench/bench_gguf.py                          # CPU: --part load, then --part maps
    python bench/bench_gguf.py --part load              # cold / cached load, peak RSS
    python bench/bench_gguf.py --part maps --lengths 256 2048 --repeats 3
    python bench/bench_gguf.py --part gpu --device cuda --out $OUT   # needs a GPU

load: each load runs in a fresh process (so that its peak RSS is its own): ours into an empty
cache (`cold`: dequantize + write the cache + tokenizer), ours again (`cached`), and
transformers' `AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)` plus its tokenizer
(it has no cache: every load dequantizes). maps: one process holds both models; every map of
all 30 layers at each length, ours (`Request(record=None)`: the explicit path in every layer)
against transformers eager with `output_attentions=True`, interleaved medians
(`bench/timing.py`), and the largest difference between the two at the shortest length.
gpu: random weights of Llama 3 8B's shapes (32 layers, d_model 4096, 32 query heads sharing 8
K/V heads, FFN 14336, vocabulary 128256), bf16, 4,096 tokens: a full pass with one layer's
maps (ours; the other layers fused) against transformers eager with output_attentions=True
(every layer's maps: it cannot return one), and both without maps (ours fused, transformers
SDPA), with the peak CUDA memory of each.

Results: bench/results/gguf_<part>_<device>.json (or --out).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import RESULTS, add_common_args, apply_threads, interleaved  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def meta(device: str) -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": device,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "cpu_count": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}


# --- load -------------------------------------------------------------------------------------


def child(which: str) -> None:
    """One load in this process; prints {"seconds", "peak_rss_mb"} as JSON."""
    from engine.models.smollm2 import smollm2_gguf_path

    path = smollm2_gguf_path()
    if which == "ours":
        from engine.models.smollm2 import load_smollm2

        rss0, t0 = peak_rss_mb(), time.perf_counter()
        model = load_smollm2(torch.device("cpu"), progress=lambda f, m: None)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        rss0, t0 = peak_rss_mb(), time.perf_counter()
        AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                     dtype=torch.float32)
    seconds = time.perf_counter() - t0
    del model
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(peak_rss_mb()),
                      "rss_before_mb": round(rss0)}))


def run_child(which: str, cache: Path) -> dict:
    env = {**os.environ, "ATTENTION_STUDIO_CACHE": str(cache)}
    out = subprocess.run([sys.executable, __file__, "--child", which], env=env, check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_load(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as tmp:
        cache = Path(tmp)
        rows = {"ours_cold": run_child("ours", cache)}
        for i in range(args.repeats):
            rows[f"ours_cached_{i}"] = run_child("ours", cache)
        for i in range(max(1, args.repeats - 1)):
            rows[f"transformers_{i}"] = run_child("transformers", cache)
    cached = sorted(r["seconds"] for k, r in rows.items() if k.startswith("ours_cached"))
    theirs = sorted(r["seconds"] for k, r in rows.items() if k.startswith("transformers"))
    summary = {
        "ours_cold_s": rows["ours_cold"]["seconds"],
        "ours_cached_median_s": cached[len(cached) // 2],
        "transformers_median_s": theirs[len(theirs) // 2],
        "ours_cold_peak_rss_mb": rows["ours_cold"]["peak_rss_mb"],
        "ours_cached_peak_rss_mb": max(r["peak_rss_mb"] for k, r in rows.items()
                                       if k.startswith("ours_cached")),
        "transformers_peak_rss_mb": max(r["peak_rss_mb"] for k, r in rows.items()
                                        if k.startswith("transformers")),
    }
    summary["speedup_cold"] = round(summary["transformers_median_s"] / summary["ours_cold_s"], 2)
    summary["speedup_cached"] = round(summary["transformers_median_s"]
                                      / summary["ours_cached_median_s"], 2)
    return {"rows": rows, "summary": summary}


# --- maps -------------------------------------------------------------------------------------


def bench_maps(args) -> dict:
    from transformers import AutoModelForCausalLM

    import engine
    from engine.core.transformer import Request
    from engine.models.smollm2 import smollm2_gguf_path

    sys.path.insert(0, str(ROOT / "scripts"))
    from make_smollm2_fixtures import LONG_PROMPT

    ours = engine.load("smollm2-135m", device="cpu")
    path = smollm2_gguf_path()
    theirs = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32,
        attn_implementation="eager").eval()
    text_ids = ours.codec.encode(LONG_PROMPT).ids
    results = {}
    for n in args.lengths:
        ids = torch.tensor([(text_ids * (n // len(text_ids) + 1))[:n]])

        def run_ours(ids=ids):
            with torch.inference_mode():
                return ours.transformer(ids, req=Request(record=None))

        def run_theirs(ids=ids):
            with torch.inference_mode():
                return theirs(ids, output_attentions=True)

        row = {"tokens": n}
        if n == min(args.lengths):  # the two agree (every map), checked once
            a, b = run_ours(), run_theirs()
            row["max_abs_diff_maps"] = max(
                float((a.record[f"decoder.self.{i}"].weights - b.attentions[i]).abs().max())
                for i in range(len(b.attentions)))
            row["max_abs_diff_logits"] = float((a.logits - b.logits).abs().max())
            del a, b
        gc.collect()
        repeats = args.repeats if n <= 512 else 1
        times = interleaved({"ours": lambda: run_ours(), "transformers": lambda: run_theirs()},
                            torch.device("cpu"), repeats, warmup=1 if n <= 512 else 0)
        row.update({"ours_s": round(times["ours"], 3),
                    "transformers_s": round(times["transformers"], 3),
                    "speedup": round(times["transformers"] / times["ours"], 2),
                    "repeats": repeats})
        results[str(n)] = row
        print(json.dumps(row), flush=True)
        gc.collect()
    return {"rows": results, "peak_rss_mb": round(peak_rss_mb())}


# --- GPU: a Llama-3-8B-shaped model -----------------------------------------------------------

LLAMA3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                 head_dim=128, max_position_embeddings=8192, rms_norm_eps=1e-5,
                 rope_theta=500000.0, tie_word_embeddings=False, model_type="llama",
                 hidden_act="silu", attention_bias=False, mlp_bias=False,
                 bos_token_id=128000, eos_token_id=128001)


def bench_gpu(args) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.core.transformer import Request, Transformer
    from engine.models import llama
    from engine.models.common import copy_weights

    device = torch.device(args.device)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    hf_cfg = LlamaConfig(**{k: v for k, v in LLAMA3_8B.items() if k != "model_type"})
    with torch.device(device):
        theirs = LlamaForCausalLM(hf_cfg).eval()
    cfg = llama.config_from_hf(LLAMA3_8B)
    with torch.device(device):
        ours = Transformer(cfg).eval()
    copy_weights(ours, llama.convert(theirs.state_dict(), cfg), "random Llama-3-8B shapes")
    torch.set_default_dtype(torch.float32)
    ids = torch.randint(0, cfg.vocab_size, (1, args.gpu_tokens), device=device)
    layer = cfg.n_decoder_layers // 2

    def measure(fn):
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return round(peak / 2**30, 2)

    def ours_one_map():
        with torch.inference_mode():
            return ours(ids, req=Request(record=[f"decoder.self.{layer}"]))

    def ours_no_maps():
        with torch.inference_mode():
            return ours(ids, req=Request(record=()))

    def theirs_eager():
        theirs.config._attn_implementation = "eager"
        with torch.inference_mode():
            return theirs(ids, output_attentions=True)

    def theirs_sdpa():
        theirs.config._attn_implementation = "sdpa"
        with torch.inference_mode():
            return theirs(ids)

    fns = {"ours_one_layer_maps": ours_one_map, "transformers_eager_all_maps": theirs_eager,
           "ours_no_maps": ours_no_maps, "transformers_sdpa_no_maps": theirs_sdpa}
    memory = {k: measure(f) for k, f in fns.items()}
    # agreement of the maps (bf16 on both sides): layer 0 sees the same input on both sides;
    # deeper layers inherit the bf16 rounding differences of fused vs eager layers below
    with torch.inference_mode():
        a = ours(ids, req=Request(record=["decoder.self.0", f"decoder.self.{layer}"]))
    b = theirs_eager()
    diff = {str(i): float((a.record[f"decoder.self.{i}"].weights.float()
                           - b.attentions[i].float()).abs().max()) for i in (0, layer)}
    del a, b
    gc.collect()
    torch.cuda.empty_cache()
    times = interleaved(fns, device, args.repeats, warmup=1)
    return {
        "model": "Llama-3-8B shapes, random weights, bf16", "tokens": args.gpu_tokens,
        "recorded_layer": layer, "seconds": {k: round(v, 4) for k, v in times.items()},
        "peak_extra_gib": memory, "max_abs_diff_maps_by_layer": diff,
        "speedup_maps": round(times["transformers_eager_all_maps"]
                              / times["ours_one_layer_maps"], 2),
        "speedup_no_maps": round(times["transformers_sdpa_no_maps"] / times["ours_no_maps"], 2),
        "gpu": torch.cuda.get_device_name(device),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "load", "maps", "gpu"), default="all")
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 2048])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gpu-tokens", type=int, default=4096)
    ap.add_argument("--child", choices=("ours", "transformers"), help=argparse.SUPPRESS)
    add_common_args(ap, out=RESULTS)
    args = ap.parse_args(argv)
    apply_threads(args)
    if args.child:
        child(args.child)
        return 0
    parts = ["load", "maps"] if args.part == "all" else [args.part]
    args.out.mkdir(parents=True, exist_ok=True)
    for part in parts:
        result = {"load": bench_load, "maps": bench_maps, "gpu": bench_gpu}[part](args)
        result["meta"] = meta(args.device)
        result["command"] = "python bench/bench_gguf.py " + " ".join(argv or sys.argv[1:])
        out = args.out / f"gguf_{part}_{args.device}.json"
        out.write_text(json.dumps(result, indent=1))
        print(part, json.dumps(result.get("summary", result.get("rows", result)))[:2000])
        print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
