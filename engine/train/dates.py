"""Train the date-normalisation encoder-decoders shipped in `assets/seq2seq/`.

    python -m engine.train.dates --variant all            # the shipped MHA, GQA and MQA models
    python -m engine.train.dates --variant gqa --steps 200 --out /tmp/s2s   # a quick try

The model is the original Transformer (Vaswani et al., 2017) at a small size, with the three
attention variants of Ainslie et al., 2023 ("GQA"): 8 query heads sharing 8 (MHA), 2 (GQA) or
1 (MQA) K/V heads. Everything else (depth, width, data, steps, seed) is the same across
variants, so their accuracy and KV-cache sizes can be compared.

Reproducible: the data stream is a pure function of the seed (`engine.datasets.dates`), the
weights are initialised from the seed (`init_weights`), and torch runs deterministic kernels;
the same command and seed give bit-identical weights on the same machine and thread count.

Writes, per variant, `seq2seq-<variant>.safetensors` (weights, never pickle) and
`seq2seq-<variant>.json` (config + training metadata + held-out accuracy), then regenerates
the model card `README.md` in the output directory from every JSON found there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm import tqdm

from engine.core.config import ModelConfig
from engine.core.transformer import Request, Transformer, init_weights
from engine.datasets import dates
from engine.models.seq2seq import (
    ASSETS,
    VARIANTS,
    config_to_dict,
    normalise,
    save_checkpoint,
)
from engine.variants import count_parameters

KV_HEADS = {"mha": 8, "gqa": 2, "mqa": 1}
EVAL_SEED = 0  # the held-out sample every variant and every training seed is scored on
TASK = (
    "date normalisation: a date written in English or Chinese (many forms) → ISO 8601 "
    "YYYY-MM-DD, 1950-2049"
)


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides the weights, besides the variant."""

    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.01
    clip: float = 1.0
    seed: int = 0
    d_model: int = 128
    n_heads: int = 8
    d_ff: int = 512
    n_layers: int = 2  # on each side
    norm_position: str = "pre"
    max_len: int = 64
    eval_n: int = 2000


def model_config(variant: str, s: TrainSettings, vocab_size: int) -> ModelConfig:
    """The encoder-decoder of one variant: only `n_kv_heads` differs between variants."""
    return ModelConfig(
        arch="encoder-decoder",
        vocab_size=vocab_size,
        d_model=s.d_model,
        n_heads=s.n_heads,
        n_kv_heads=max(1, KV_HEADS[variant] * s.n_heads // 8),
        d_ff=s.d_ff,
        n_encoder_layers=s.n_layers,
        n_decoder_layers=s.n_layers,
        positions="sinusoidal",
        norm_position=s.norm_position,
        final_norm=s.norm_position == "pre",
        max_len=s.max_len,
        embed_scale=s.d_model**0.5,
        tie_embeddings=True,
        pad_id=0,
        bos_id=1,
        eos_id=2,
        name=f"seq2seq-{variant}",
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(seed: int, tokenizer: Tokenizer, batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless deterministic batches from `dates.train_stream(seed)`.

    Yields src [B, S] (right-padded, ends with [EOS]), src_is_real [B, S], and the decoder's
    input [B, 11] = [BOS] y0..y9 and labels [B, 11] = y0..y9 [EOS]; targets are never padded.
    """
    stream = dates.train_stream(seed)
    bos, eos = tokenizer.token_to_id(dates.BOS), tokenizer.token_to_id(dates.EOS)
    pad = tokenizer.token_to_id(dates.PAD)
    while True:
        pairs = [next(stream) for _ in range(batch_size)]
        src = [e.ids for e in tokenizer.encode_batch([p[0] for p in pairs])]  # ends with [EOS]
        targets = tokenizer.encode_batch([p[1] for p in pairs], add_special_tokens=False)
        tgt = [[bos, *e.ids, eos] for e in targets]
        width = max(map(len, src))
        src_ids = torch.tensor([row + [pad] * (width - len(row)) for row in src])
        tgt_ids = torch.tensor(tgt)  # [B, 12]
        yield src_ids, src_ids != pad, tgt_ids[:, :-1], tgt_ids[:, 1:]


def lr_factor(step: int, s: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to 0."""
    if step < s.warmup:
        return (step + 1) / s.warmup
    progress = (step - s.warmup) / max(1, s.steps - s.warmup)
    return 0.5 * (1.0 + np.cos(np.pi * min(1.0, progress)))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def train_model(
    variant: str,
    s: TrainSettings,
    tokenizer: Tokenizer,
    device: torch.device,
    progress: bool = True,
) -> tuple[Transformer, list[float], float]:
    """Train one variant; returns (model in eval mode, loss per step, training seconds)."""
    seed_everything(s.seed)
    cfg = model_config(variant, s, tokenizer.get_vocab_size())
    model = init_weights(Transformer(cfg), seed=s.seed).to(device).train()
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": s.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=s.lr,
        betas=(0.9, 0.98),
        eps=1e-9,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, s))
    data = batches(s.seed, tokenizer, s.batch_size)
    bar = tqdm(total=s.steps, desc=cfg.name, disable=not progress, mininterval=1.0, unit="step")
    # CUDA's fused attention kernels have non-deterministic backward passes; the math kernel
    # is deterministic and, at this size, about as fast.
    kernel = sdpa_kernel(SDPBackend.MATH) if device.type == "cuda" else nullcontext()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # raise rather than silently differ
    start = time.perf_counter()
    try:
        with kernel:
            losses = _train_loop(model, opt, sched, data, s, device, bar)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        bar.close()
    seconds = time.perf_counter() - start
    return model.eval(), losses, seconds


def _train_loop(model, opt, sched, data, s: TrainSettings, device, bar) -> list[float]:
    req = Request(record=())  # fused attention, no maps
    losses: list[float] = []
    for step in range(s.steps):
        src, src_real, tgt_in, labels = (t.to(device) for t in next(data))
        logits = model(src, src_real, tgt_in, None, req=req).logits  # [B, 11, V]
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == s.steps - 1:
            correct = logits.argmax(-1) == labels  # [B, 11]
            bar.set_postfix(
                loss=f"{losses[-1]:.4f}",
                tok_acc=f"{float(correct.float().mean()):.3f}",
                seq_acc=f"{float(correct.all(-1).float().mean()):.3f}",
                refresh=False,
            )
        bar.update(1)
    return losses


def evaluate(
    model: Transformer, tokenizer: Tokenizer, n: int, seed: int = EVAL_SEED
) -> tuple[float, list[dict]]:
    """Greedy exact match on `n` held-out pairs; returns (accuracy, first failures)."""
    pairs = dates.heldout_set(n, seed=seed)
    outs = normalise(model, tokenizer, [p[0] for p in pairs])
    failures = [
        {"input": src, "expected": tgt, "output": o.output}
        for o, (src, tgt) in zip(outs, pairs, strict=True)
        if o.output != tgt
    ]
    return 1 - len(failures) / n, failures[:20]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_variant(
    variant: str,
    s: TrainSettings,
    device: torch.device,
    out_dir: Path,
    command: str,
    threads: int,
    progress: bool = True,
) -> dict:
    """Train, evaluate and write one variant; returns its JSON card."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_path = dates.save_tokenizer(out_dir / "tokenizer.json")
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    model, losses, seconds = train_model(variant, s, tokenizer, device, progress)
    t0 = time.perf_counter()
    accuracy, failures = evaluate(model, tokenizer, s.eval_n)
    eval_seconds = time.perf_counter() - t0
    cfg = model.cfg
    weights = out_dir / f"{cfg.name}.safetensors"
    save_checkpoint(model, weights)
    card = {
        "name": cfg.name,
        "variant": variant,
        "attention": cfg.variant,
        "task": TASK,
        "tokenizer": "tokenizer.json",
        "max_source_chars": dates.MAX_SOURCE_CHARS,
        "config": config_to_dict(cfg),
        "params": count_parameters(model),
        "kv_cache_bytes_per_token": cfg.kv_cache_bytes_per_token(4),
        "cross_kv_bytes_per_source_token": 2
        * cfg.n_decoder_layers
        * cfg.kv_heads
        * cfg.head_dim
        * 4,
        "weights_bytes": weights.stat().st_size,
        "weights_sha256": file_sha256(weights),
        "training": {
            **asdict(s),
            "command": command,
            "device": device.type,
            "device_name": device_name(device),
            "threads": threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "train_seconds": round(seconds, 1),
            "eval_seconds": round(eval_seconds, 1),
            "final_loss": round(float(np.mean(losses[-50:])), 5),
            "finished_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eval": {
            "heldout_exact_match": round(accuracy, 4),
            "heldout_n": s.eval_n,
            "heldout_seed": EVAL_SEED,
            "failures": failures,
        },
    }
    (out_dir / f"{cfg.name}.json").write_text(
        json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return card


# --------------------------------------------------------------------------- model card

CARD_HEAD = """\
# seq2seq-mha / seq2seq-gqa / seq2seq-mqa: date normalisation, trained here

Small encoder-decoder Transformers (Vaswani et al., 2017) trained in this repository to turn a
date written in English or Chinese into ISO 8601, in three attention variants that differ only
in how many K/V heads their 8 query heads share (Ainslie et al., 2023): MHA 8, GQA 2, MQA 1.
They exist so that MHA, GQA and MQA can be compared on real, trained weights, and so that
cross-attention shows a readable alignment (output year digits → source year, and so on).

    "March 3rd, 2021"  "3 Mar 21"  "Wednesday, 3 March 2021"  "03/03/2021"
    "2021年3月3日"  "二〇二一年三月三日"  "3.3.2021"  "2021-3-3"         →  "2021-03-03"

Files: `seq2seq-<variant>.safetensors` (float32 weights, our tensor names; `lm_head` is tied to
the decoder's token embedding and not stored), `seq2seq-<variant>.json` (the `ModelConfig`,
training settings, held-out accuracy and a few failures), `tokenizer.json` (shared).
Load with `engine.models.seq2seq.load_seq2seq("mha", device="cpu")` or
`engine.load("seq2seq-mha")`.
"""

CARD_TAIL = """\
KV-cache bytes per token: decoder self-attention K and V, float32, for one generated token of
one sequence: `2 · n_decoder_layers · n_kv_heads · d_head · 4`. The encoder's K/V for
cross-attention are computed once per input and add `cross_kv_bytes_per_source_token` (same
formula) per source token; both are in each JSON.

## Data
`engine/datasets/dates.py`, generated from the seed, dates uniform in 1950-01-01 .. 2049-12-31,
21 written forms (English month names, ordinals, weekdays and abbreviations in title, lower and
upper case; numeric with `/`, `.`, `-`; Chinese with Arabic digits or Chinese numerals, 日 or 号,
optional weekday). Conventions for ambiguous inputs:
- two-digit years: 50-99 → 1950-1999, 00-49 → 2000-2049;
- slashes with the year last are **month first** (US): `04/03/2021` → 2021-04-03;
- dots or dashes with the year last are **day first**: `04.03.2021`, `04-03-2021` → 2021-03-04;
- a four-digit year written first is year-month-day (`2021/3/4`, `2021.3.4`, `20210304`).

The held-out set is a fixed 5% of string space (a keyed BLAKE2 hash of the NFKC input), so no
input string is in both; accuracy above is greedy exact match on `heldout_n` distinct held-out
inputs (`dates.heldout_set(n, seed=0)`).

## Tokenizer
Character level (`tokenizers` WordLevel over single characters), NFKC-normalised so full-width
digits typed on a Chinese keyboard work; `[PAD]`=0, `[BOS]`=1, `[EOS]`=2, `[UNK]`=3. Sources end
with `[EOS]`; the decoder starts from `[BOS]`.

## Inputs outside the domain (`engine/models/seq2seq.py: prepare_source`)
- empty or blank input: `ValueError("empty input: type a date, e.g. ...")`;
- longer than 48 characters: the first 48 are used, with the notice
  "input was N characters; only the first 48 were used ...";
- characters outside the vocabulary: read as `[UNK]`, with a notice naming them;
- no digit, Chinese numeral or month name (e.g. "hello world"): best-effort output with the
  notice "the input does not look like a date; the output is the model's best guess";
- an output that is not a valid date in range gets a notice too.

## Reproduce
Run the command in the table from the repository root. Same command and seed → identical
weights (`weights_sha256` in the JSON) on the same machine, torch version and (on CPU) thread
count: checked by training all three twice on the H200 and comparing hashes. Another device
or torch version gives weights that differ in the last bits, and perhaps in a few answers.

Without a GPU, `python -m engine.train.dates --variant all --device cpu` trains the same recipe on
one CPU thread: about 4 steps a second on the 2-core development machine, so 4-5 minutes a
variant (during development, MHA at these settings took 310 s on that CPU and scored 100% on
1,000 held-out inputs). `--steps 200 --out /tmp/s2s` is a quick try.
"""


def where(t: dict) -> str:
    """'NVIDIA H200' or 'x86_64, 1 thread' for the card."""
    if t["device"] != "cpu":
        return t["device_name"]
    return f"{t['device_name']}, {t['threads']} thread{'s' if t['threads'] != 1 else ''}"


def write_card(out_dir: Path) -> Path:
    """Regenerate `README.md` in `out_dir` from every `seq2seq-*.json` there."""
    rows = []
    for variant in VARIANTS:
        path = out_dir / f"seq2seq-{variant}.json"
        if not path.exists():
            continue
        c = json.loads(path.read_text(encoding="utf-8"))
        t, cfg = c["training"], c["config"]
        kv = cfg["n_kv_heads"] or cfg["n_heads"]
        rows.append(
            f"| `{c['name']}` | {c['attention']} ({cfg['n_heads']} q / {kv} kv) "
            f"| {100 * c['eval']['heldout_exact_match']:.2f}% (n={c['eval']['heldout_n']}) "
            f"| {c['params']:,} | {c['kv_cache_bytes_per_token']:,} "
            f"| {c['weights_bytes'] / 1e6:.2f} MB "
            f"| {t['train_seconds']:.0f} s on {t['device']} ({where(t)}), torch {t['torch']} "
            f"| `{t['command']}` |"
        )
    if not rows:
        raise FileNotFoundError(f"no seq2seq-*.json in {out_dir}")
    first = json.loads(next(out_dir.glob("seq2seq-*.json")).read_text(encoding="utf-8"))
    cfg, t = first["config"], first["training"]
    shape = (
        f"Shared shape: d_model {cfg['d_model']}, {cfg['n_heads']} query heads of d_head "
        f"{cfg['d_model'] // cfg['n_heads']}, d_ff {cfg['d_ff']}, {cfg['n_encoder_layers']} "
        f"encoder + {cfg['n_decoder_layers']} decoder layers, {cfg['norm_position']}-norm, "
        f"sinusoidal positions, tied decoder embedding / output; trained {t['steps']} steps of "
        f"{t['batch_size']} pairs (AdamW, lr {t['lr']}, {t['warmup']} warm-up steps, cosine "
        f"decay), seed {t['seed']}."
    )
    table = [
        "| model | attention | held-out exact match | params | KV-cache bytes / token "
        "| weights | training time and device | command |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    text = "\n".join([CARD_HEAD, "## Results", "", *table, "", shape, "", CARD_TAIL])
    path = out_dir / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = TrainSettings()
    p = argparse.ArgumentParser(prog="python -m engine.train.dates",
                                description=__doc__.split("\n")[0])
    p.add_argument("--variant", choices=[*VARIANTS, "all"], default="all")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", type=Path, default=ASSETS)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--d-model", type=int, default=d.d_model)
    p.add_argument("--d-ff", type=int, default=d.d_ff)
    p.add_argument("--layers", type=int, default=d.n_layers, help="layers on each side")
    p.add_argument("--eval-n", type=int, default=d.eval_n, help="held-out pairs to score")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.steps < 1:
        raise SystemExit("--steps must be >= 1")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    device = resolve_device(args.device)
    settings = replace(
        TrainSettings(),
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        d_model=args.d_model,
        d_ff=args.d_ff,
        n_layers=args.layers,
        eval_n=args.eval_n,
        warmup=min(TrainSettings.warmup, max(1, args.steps // 10)),
    )
    command = "python -m engine.train.dates " + " ".join(shlex.quote(a) for a in argv)
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    for variant in variants:
        card = train_variant(
            variant, settings, device, args.out, command.strip(), args.threads,
            progress=not args.no_progress,
        )  # fmt: skip
        t = card["training"]
        print(
            f"{card['name']}: held-out exact match {100 * card['eval']['heldout_exact_match']:.2f}%"
            f", {card['params']:,} params, {card['kv_cache_bytes_per_token']} KV bytes/token, "
            f"{t['train_seconds']:.0f} s on {t['device']}, {card['weights_bytes'] / 1e6:.2f} MB",
            flush=True,
        )
    print(f"model card: {write_card(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
