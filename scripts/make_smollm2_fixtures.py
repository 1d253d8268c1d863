"""Make the SmolLM2-135M-Instruct reference fixtures in tests/fixtures/smollm2/ (test-only:
transformers).

transformers is our independent oracle: from the same Q4_1 GGUF it builds its own tokenizer
(GPT2Tokenizer with the file's merges), its own dequantization (torch, not the `gguf`
package) and its own LlamaForCausalLM (eager attention, float32, output_attentions=True).
Its answers are stored small so that CI compares against them without loading transformers:

    .venv/bin/python scripts/make_smollm2_fixtures.py                # tokens + reference model
    .venv/bin/python scripts/make_smollm2_fixtures.py --only tokens  # tokenizer fixture only

Files (under tests/fixtures/smollm2/):

- tokens.json: {"cases": [{"name", "text", "ids", "tokens", "decoded"}], ...}: the texts of
  the Gemma fixtures (English, Chinese, emoji with ZWJ, code with tabs, leading and double
  spaces, ...) through transformers' GGUF tokenizer (no BOS: the file says add_bos_token
  false).
- reference.npz (float32/int32, compressed):
    {short,chinese,long}_ids        [T]             prompt ids
    {short,chinese}_attn            [30, 9, T, T]   every map of every layer
    long_rows                       [r]             rows of the long prompt kept per map
    long_attn                       [30, 9, r, T]   those rows of every map of every layer
    {tag}_top50_ids / _values       [50]            last-position logits, largest first
    {tag}_logsumexp                 []              of the last-position logits
    {tag}_last_hidden               [576]           the final norm's output, last position
- reference.json: prompts, timings and peak RSS of the reference load, versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
OUT_DIR = ROOT / "tests" / "fixtures" / "smollm2"

from make_gemma_fixtures import LONG_TEXT, TEXTS  # noqa: E402  (the same texts as Gemma's)

SHORT_PROMPT = "The capital of France is"
CHINESE_PROMPT = "我爱自然语言处理。今天天气很好！"
# ~800 tokens: the Gemma long text and its first half again (repeats show induction heads).
LONG_PROMPT = LONG_TEXT + "\n\n" + LONG_TEXT[: len(LONG_TEXT) // 4]
TOP_K = 50
SMOLLM2_TEXTS = {**TEXTS, "digits": "Call 555-0123 or 2024/12/01: 1234567890 items, 3.5%"}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gguf_path() -> Path:
    from engine.models.smollm2 import smollm2_gguf_path

    return smollm2_gguf_path()


def reference_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def load_reference_model(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def make_token_fixture(path: Path, out_dir: Path) -> dict:
    import transformers

    from engine.text.gguf_tokenizer import gguf_tokenizer

    ref = reference_tokenizer(path)
    ours = gguf_tokenizer(path)
    cases, mismatches = [], []
    for name, text in SMOLLM2_TEXTS.items():
        ids = ref(text)["input_ids"]
        cases.append({"name": name, "text": text, "ids": ids,
                      "tokens": ref.convert_ids_to_tokens(ids),
                      "decoded": ref.decode(ids, skip_special_tokens=True)})
        if ours.encode(text).ids != ids:
            mismatches.append(name)
    fixture = {"source": path.name,
               "reference": "transformers AutoTokenizer.from_pretrained(dir, gguf_file=...)",
               "versions": {"transformers": transformers.__version__}, "cases": cases}
    (out_dir / "tokens.json").write_text(json.dumps(fixture, ensure_ascii=False, indent=1))
    report = {"cases": len(cases), "case_mismatches": mismatches}
    print("tokens:", json.dumps(report))
    return report


def long_rows(n: int) -> list[int]:
    """Rows of the long prompt kept per map (of every head of every layer): one in the
    middle and the last (the one that predicts), to keep the fixture under 2 MB."""
    return [n // 2, n - 1]


def make_reference_fixture(path: Path, out_dir: Path) -> dict:
    import torch
    import transformers

    rss0 = peak_rss_mb()
    t0 = time.time()
    tok = reference_tokenizer(path)
    model = load_reference_model(path)
    t_load = time.time() - t0
    arrays: dict[str, np.ndarray] = {}
    info = {"prompts": {"short": SHORT_PROMPT, "chinese": CHINESE_PROMPT, "long": LONG_PROMPT}}
    for tag, text in info["prompts"].items():
        ids = tok(text)["input_ids"]
        with torch.inference_mode():
            out = model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
        attn = torch.stack([a[0] for a in out.attentions]).float()  # [30, 9, T, T]
        logits = out.logits[0, -1].double()
        top = torch.topk(logits, TOP_K)
        arrays[f"{tag}_ids"] = np.array(ids, dtype=np.int32)
        arrays[f"{tag}_top50_ids"] = top.indices.numpy().astype(np.int32)
        arrays[f"{tag}_top50_values"] = top.values.numpy().astype(np.float32)
        arrays[f"{tag}_logsumexp"] = np.array(float(torch.logsumexp(logits, 0)), np.float64)
        arrays[f"{tag}_last_hidden"] = out.hidden_states[-1][0, -1].numpy().astype(np.float32)
        if tag == "long":
            rows = long_rows(len(ids))
            arrays["long_rows"] = np.array(rows, dtype=np.int32)
            arrays["long_attn"] = attn[:, :, rows].numpy().astype(np.float32)
        else:
            arrays[f"{tag}_attn"] = attn.numpy().astype(np.float32)
        info[f"{tag}_tokens"] = len(ids)
        info[f"{tag}_top5"] = tok.convert_ids_to_tokens(top.indices[:5].tolist())
    np.savez_compressed(out_dir / "reference.npz", **arrays)
    info.update({
        "reference": "transformers LlamaForCausalLM.from_pretrained(dir, gguf_file=..., "
                     "attn_implementation='eager', dtype=float32), output_attentions=True",
        "reference_load_s": round(t_load, 1),
        "reference_peak_rss_mb": round(peak_rss_mb() - rss0, 0),
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "source": path.name,
    })
    (out_dir / "reference.json").write_text(json.dumps(info, ensure_ascii=False, indent=1))
    print("reference:", {k: v for k, v in info.items() if k != "prompts"})
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("tokens", "reference"))
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = gguf_path()
    if args.only in (None, "tokens"):
        make_token_fixture(path, args.out)
    if args.only in (None, "reference"):
        make_reference_fixture(path, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
