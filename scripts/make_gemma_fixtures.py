"""Make the Gemma 3 270M reference fixtures in tests/fixtures/gemma/ (test-only: transformers).

transformers is our independent oracle: it builds its own tokenizer and its own
Gemma3ForCausalLM (eager attention, float32) from the same GGUF. Its answers are stored small
so that CI compares against them without loading transformers (which takes ~15 s for the
tokenizer alone). Run it again after changing TEXTS/PROMPTS/SLICES; it rewrites every file:

    .venv/bin/python scripts/make_gemma_fixtures.py                 # tokens + reference model
    .venv/bin/python scripts/make_gemma_fixtures.py --only tokens   # tokenizer fixture only

Files (all under tests/fixtures/gemma/):

- tokens.json: {"cases": [{"name", "text", "ids", "tokens", "decoded"}], "versions": ...}
  ids include the leading <bos>; "decoded" is the reference decode of ids without specials.
- reference.npz (float32/int32, compressed):
    {short,long}_ids                 [T]            prompt ids fed to the model (with <bos>)
    short_attn                       [18, 4, T, T]  every layer's attention, short prompt
    long_slices                      [n, 4]         rows (layer, head, row_start, row_stop)
    long_attn_{i}                    [rows, T]      attention of slice i, all keys
    {short,long}_top50_ids/_values   [50]           last-position logits, largest first
    {short,long}_logsumexp           []             of the last-position logits (for probs)
    gen{i}_prompt_ids / gen{i}_new_ids              greedy continuation, 20 new tokens
    weight__{gguf_name}              [2, 16]        reference HF weight [:2, :16] (1-D: [16])
- reference.json: prompt texts, generated texts, reference config facts, the q/k
  permutation check, the sliding-window check, timings and peak RAM, versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT_DIR = ROOT / "tests" / "fixtures" / "gemma"

LONG_TEXT = (
    "The lighthouse keeper on the northern island kept a careful log of every ship that "
    "passed, noting the hour, the weather, and the color of its sails. Over forty years the "
    "log grew into eleven leather volumes, which now sit in the small museum by the harbor. "
    "Visitors who leaf through them find more than shipping records: there are sketches of "
    "seabirds, recipes for fish soup, and long complaints about the price of lamp oil. "
    "In 1911 the keeper wrote that a storm had torn the roof from the boathouse, and that "
    "he had spent three days nailing planks while his daughter read aloud from a book of "
    "astronomy. She later became a teacher in the capital and sent him letters about "
    "comets, tides, and the strange behavior of magnets near the equator.\n\n"
    "Modern readers often ask why the keeper bothered to record so much. One answer is "
    "that the job was lonely, and writing was a way to talk to someone. Another is that the "
    "log was a legal document: if a ship ran aground, the record could show whether the "
    "light had been burning. A third answer, which historians find most convincing, is "
    "that careful observation had become a habit, the way some people cannot pass a "
    "crooked picture without straightening it.\n\n"
    "Computer scientists who study attention in neural networks face a similar question. "
    "A transformer model reads a sequence of tokens and, at every layer, each position "
    "decides how much to look at every earlier position. The weights of that decision form "
    "a matrix whose rows sum to one. Some heads look mostly at the previous token; others "
    "jump back to the first token of the sequence, which acts as a resting place when "
    "nothing else is relevant. A few heads copy: when the current token appeared before, "
    "they attend to whatever followed it last time, a pattern known as induction.\n\n"
    "Gemma 3 mixes two kinds of layers. Most layers only see a sliding window of recent "
    "tokens, which keeps memory small for long documents, while every sixth layer sees the "
    "whole context. Rotary position embeddings encode where each token sits, with a short "
    "base for local layers and a much longer base for global ones, so that distant tokens "
    "remain distinguishable. Keys and values are shared by all query heads, a design called "
    "multi-query attention, which shrinks the cache that grows during generation.\n\n"
    "Back on the island, the museum has installed a screen that shows the old log one page "
    "at a time. Children press a button to turn the page and a recorded voice reads the "
    "entry for that day: wind from the west, two fishing boats, one steamer bound for the "
    "south, gulls unusually quiet. Nobody knows who chose the voice, but it sounds a little "
    "like the keeper himself, patient and slightly amused, as if he always expected that "
    "someone, some day, would want to know what the weather was like on a Tuesday in March "
    "more than a hundred years ago. The curator says that the most popular page is the one "
    "with a drawing of a whale, which the keeper labeled, with evident pride, as the largest "
    "fish he had ever seen, although he admitted in a note beneath it that his daughter had "
    "told him, more than once, that a whale is not a fish at all."
)

TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog. It wasn't me, said Bob!",
    "chinese": "我爱自然语言处理。今天天气很好，我们去公园散步吧！",
    # ZWJ family, ZWJ rainbow flag (with VS16), skin-tone modifier, VS16 heart.
    "emoji_zwj": (
        "Family \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466, rainbow flag "
        "\U0001f3f3\ufe0f\u200d\U0001f308, thumbs \U0001f44d\U0001f3fd and a \u2764\ufe0f heart."
    ),
    "code_tabs": (
        'def f(x):\n\tif x > 0:\n\t\treturn x  # two spaces\n\treturn None\n\n\nprint(f"{x!r}")'
    ),
    "leading_spaces": "  two leading spaces",
    "one_leading_space": " one leading space",
    "double_spaces": "double  spaces  between   words    and tabs\t\there",
    "trailing_spaces": "trailing spaces   ",
    "only_spaces": "     ",
    "empty": "",
    "newlines": "line one\nline two\n\n\nline five\r\nwindows line",
    "accents_numbers": "naïve café, Ångström, Straße; 3.14159 and 1,000,000 — 50% off!",
    "rare_bytes": "hieroglyph 𓀀 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 plus \u0007 bell",
    "chat_special": "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
    "html_user_defined": "<table><tr><td>cell</td></tr></table>",
    "sentencepiece_space_char": "a\u2581b \u2581 c",
    "long_paragraph": LONG_TEXT,
}

SHORT_PROMPT = "The capital of France is"
LONG_PROMPT = LONG_TEXT
GENERATE_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, in a small village by the sea,",
]
N_NEW_TOKENS = 20
TOP_K = 50
# (layer, head, row_start, row_stop) of the long prompt; negative rows count from the end.
# 5, 11, 17 are global layers; the rest slide with window 512.
LONG_SLICES = [
    (0, 0, -4, None),
    (3, 2, -4, None),
    (5, 0, -4, None),
    (5, 3, -4, None),
    (6, 1, -4, None),
    (11, 2, -4, None),
    (12, 0, 596, 600),
    (17, 1, -4, None),
    (17, 3, 0, 8),
]
WEIGHT_PROBES = [
    "token_embd.weight",
    "blk.0.attn_q.weight",
    "blk.0.attn_k.weight",
    "blk.0.attn_v.weight",
    "blk.0.attn_output.weight",
    "blk.0.attn_q_norm.weight",
    "blk.0.attn_k_norm.weight",
    "blk.0.attn_norm.weight",
    "blk.0.post_attention_norm.weight",
    "blk.0.ffn_norm.weight",
    "blk.0.post_ffw_norm.weight",
    "blk.5.ffn_gate.weight",
    "blk.5.ffn_up.weight",
    "blk.5.ffn_down.weight",
    "output_norm.weight",
]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_tokenizer(gguf_path: Path):
    """transformers' own tokenizer built from the GGUF (GemmaTokenizer, offline)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


def make_token_fixture(gguf_path: Path, out_dir: Path) -> dict:
    """tokens.json from the reference tokenizer; also checks ours against it (JSON and ids)."""
    import transformers

    from engine.models.gemma3 import load_gemma_parts as load_gemma_files

    t0 = time.time()
    ref = reference_tokenizer(gguf_path)
    t_ref = time.time() - t0
    _, ours, _ = load_gemma_files()

    ref_json, our_json = json.loads(ref.backend_tokenizer.to_str()), json.loads(ours.to_str())
    parts = ["model", "added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder"]
    differing = [k for k in parts if ref_json.get(k) != our_json.get(k)]

    cases, mismatches = [], []
    for name, text in TEXTS.items():
        ids = ref(text)["input_ids"]
        cases.append(
            {
                "name": name,
                "text": text,
                "ids": ids,
                "tokens": ref.convert_ids_to_tokens(ids),
                "decoded": ref.decode(ids, skip_special_tokens=True),
            }
        )
        if ours.encode(text).ids != ids:
            mismatches.append(name)
    fixture = {
        "source": gguf_path.name,
        "reference": "transformers AutoTokenizer.from_pretrained(dir, gguf_file=...)",
        "versions": {"transformers": transformers.__version__},
        "cases": cases,
    }
    (out_dir / "tokens.json").write_text(json.dumps(fixture, ensure_ascii=False, indent=1))
    report = {
        "reference_tokenizer_load_s": round(t_ref, 2),
        "tokenizer_json_parts_differing": differing,
        "cases": len(cases),
        "case_mismatches": mismatches,
        "long_paragraph_tokens": len(cases[-1]["ids"]),
    }
    print("tokens:", json.dumps(report))
    return report


def load_reference_model(gguf_path: Path):
    """transformers' Gemma3ForCausalLM from the GGUF, float32, eager attention, eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent),
        gguf_file=gguf_path.name,
        dtype=torch.float32,
        attn_implementation="eager",
    )
    return model.eval()


def reverse_llama_permutation(w, n_head: int):
    """Undo llama.cpp's llama-arch q/k row permutation (interleaved -> halves) per head."""
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check_qk_permutation(model, ids) -> dict:
    """Mean next-token NLL with q/k as stored vs with llama's permutation undone.

    If the GGUF had q/k rows permuted for interleaved RoPE (as llama.cpp does for llama),
    undoing it would lower the loss; for gemma3 it should raise it a lot.
    """
    import torch

    def nll() -> float:
        with torch.no_grad():
            out = model(input_ids=ids, labels=ids)
        return float(out.loss)

    cfg = model.config
    stored = nll()
    saved = {}
    for layer in model.model.layers:
        a = layer.self_attn
        for mod, heads in (
            (a.q_proj, cfg.num_attention_heads),
            (a.k_proj, cfg.num_key_value_heads),
        ):
            saved[mod] = mod.weight.data.clone()
            mod.weight.data = reverse_llama_permutation(mod.weight.data, heads)
        for norm in (a.q_norm, a.k_norm):
            saved[norm] = norm.weight.data.clone()
            norm.weight.data = reverse_llama_permutation(norm.weight.data, 1)
    permuted = nll()
    for mod, w in saved.items():
        mod.weight.data = w
    assert nll() == stored
    return {"nll_as_stored": round(stored, 4), "nll_llama_unpermuted": round(permuted, 4)}


def make_reference_fixture(gguf_path: Path, out_dir: Path) -> dict:
    """reference.npz + reference.json from transformers' Gemma3ForCausalLM."""
    import torch
    import transformers

    from engine.models.gemma3 import gguf_to_hf_name

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    timings = {}
    t0 = time.time()
    tok = reference_tokenizer(gguf_path)
    timings["tokenizer_load_s"] = time.time() - t0
    t0 = time.time()
    model = load_reference_model(gguf_path)
    timings["model_load_s"] = time.time() - t0
    rss_after_load = peak_rss_mb()
    cfg = model.config

    arrays: dict[str, np.ndarray] = {}
    info: dict = {
        "prompts": {"short": SHORT_PROMPT, "long": LONG_PROMPT},
        "config": {
            "layer_types": cfg.layer_types,
            "rope_parameters": cfg.rope_parameters,
            "sliding_window": cfg.sliding_window,
            "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
            "head_dim": cfg.head_dim,
            "vocab_size": cfg.vocab_size,
            "hidden_activation": cfg.hidden_activation,
            "final_logit_softcapping": cfg.final_logit_softcapping,
            "attn_logit_softcapping": cfg.attn_logit_softcapping,
            "rms_norm_eps": cfg.rms_norm_eps,
            "tie_word_embeddings": getattr(cfg, "tie_word_embeddings", None),
            "attn_implementation": cfg._attn_implementation,
        },
    }

    for tag, text in (("short", SHORT_PROMPT), ("long", LONG_PROMPT)):
        ids = tok(text, return_tensors="pt")["input_ids"]
        t0 = time.time()
        with torch.no_grad():
            out = model(input_ids=ids, output_attentions=True, use_cache=False)
        timings[f"forward_{tag}_s"] = time.time() - t0
        T = ids.shape[1]
        attn = torch.stack([a[0] for a in out.attentions])  # [L, H, T, T]
        logits = out.logits[0, -1].double()  # [V]
        top = torch.topk(logits, TOP_K)
        arrays[f"{tag}_ids"] = ids[0].numpy().astype(np.int32)
        arrays[f"{tag}_top50_ids"] = top.indices.numpy().astype(np.int32)
        arrays[f"{tag}_top50_values"] = top.values.numpy().astype(np.float32)
        arrays[f"{tag}_logsumexp"] = np.float32(torch.logsumexp(logits, 0).item())
        info[f"{tag}_tokens"] = T
        info[f"{tag}_top5"] = tok.convert_ids_to_tokens(top.indices[:5].tolist())
        if tag == "short":
            arrays["short_attn"] = attn.numpy().astype(np.float32)
            continue
        slices = []
        for i, (layer, head, r0, r1) in enumerate(LONG_SLICES):
            start, stop, _ = slice(r0, r1).indices(T)
            slices.append((layer, head, start, stop))
            arrays[f"long_attn_{i}"] = attn[layer, head, start:stop].numpy().astype(np.float32)
        arrays["long_slices"] = np.array(slices, dtype=np.int32)
        # The window convention: query i sees keys i-w+1 .. i on sliding layers.
        w, last = cfg.sliding_window, T - 1
        sliding = [i for i, t in enumerate(cfg.layer_types) if t == "sliding_attention"]
        row = attn[sliding, :, last]  # [Ls, H, T]
        info["sliding_window_check"] = {
            "query": last,
            "keys_seen_per_sliding_row": sorted({int(n) for n in (row > 0).sum(-1).flatten()}),
            "first_key_seen": int((row[0, 0] > 0).nonzero()[0]),
            "expected_first_key_if_w_keys": last - w + 1,
            "global_layer_keys_seen": int((attn[5, 0, last] > 0).sum()),
        }
        t0 = time.time()
        info["qk_permutation_check"] = check_qk_permutation(model, ids)
        timings["permutation_check_s"] = time.time() - t0
        del out, attn

    generated = []
    t0 = time.time()
    for i, prompt in enumerate(GENERATE_PROMPTS):
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            seq = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=N_NEW_TOKENS,
                do_sample=False,
            )
        new = seq[0, ids.shape[1] :]
        arrays[f"gen{i}_prompt_ids"] = ids[0].numpy().astype(np.int32)
        arrays[f"gen{i}_new_ids"] = new.numpy().astype(np.int32)
        generated.append({"prompt": prompt, "continuation": tok.decode(new)})
    timings["generate_3x20_s"] = time.time() - t0
    info["generated"] = generated

    params = dict(model.named_parameters())
    for name in WEIGHT_PROBES:
        w = params[gguf_to_hf_name(name)].detach()
        arrays[f"weight__{name}"] = (w[:2, :16] if w.ndim == 2 else w[:16]).numpy().copy()

    np.savez_compressed(out_dir / "reference.npz", **arrays)
    info["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    info["peak_rss_mb"] = {"after_model_load": round(rss_after_load), "end": round(peak_rss_mb())}
    info["versions"] = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    info["source"] = gguf_path.name
    (out_dir / "reference.json").write_text(json.dumps(info, ensure_ascii=False, indent=1))
    print("reference:", json.dumps({k: info[k] for k in ("timings_s", "peak_rss_mb")}))
    print("reference:", json.dumps(info["qk_permutation_check"]), info["sliding_window_check"])
    for g in generated:
        print("generated:", json.dumps(g, ensure_ascii=False))
    return info


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["tokens", "reference"], help="make one part only")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="fixture directory")
    args = parser.parse_args(argv)

    from engine.io.gemma_package import gemma_gguf_path

    gguf_path = gemma_gguf_path()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "tokens"):
        make_token_fixture(gguf_path, args.out)
    if args.only in (None, "reference"):
        make_reference_fixture(gguf_path, args.out)
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"fixtures in {args.out}: {total / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
