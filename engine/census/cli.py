"""`python -m engine census ...`: the head census from the command line.

Bad input exits 2 with one line on stderr, never a traceback; Ctrl-C keeps the finished
batches (run again with --resume).
"""

from __future__ import annotations

import argparse
import sys

from engine.errors import InputError, ModelNotInstalled, OneLineParser, fail

USAGE_EXAMPLE = ("python -m engine census --model minilm --out census/minilm "
                 "[--corpus FILE] [--probe induction]")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m engine census",
                description="What every attention head does across a corpus: per-head "
                "metrics, the induction probe and a label per head.")
    p.add_argument("--model", required=True, help="a registered name (minilm, smollm2-135m, "
                   "gemma3-270m) or a checkpoint `python -m engine models` lists")
    p.add_argument("--corpus", metavar="FILE", help=".txt (one text per line), .jsonl, .csv "
                   "or .parquet (default: the bundled assets/corpus/sentences.txt)")
    p.add_argument("--field", default="text", help="the JSON field or column holding the "
                   "text (.jsonl, .csv, .parquet; default: text)")
    p.add_argument("--max-texts", dest="max_texts", type=positive, metavar="N",
                   help="the first N texts only")
    p.add_argument("--batch-size", dest="batch_size", type=positive, default=8, metavar="B",
                   help="texts per right-padded batch (default 8)")
    p.add_argument("--probe", choices=["induction"], help="also run the induction probe "
                   "(Olsson et al., 2022) and add its score")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process (default); ray: Ray Data actors (a local Ray, "
                   "or the cluster RAY_ADDRESS names)")
    p.add_argument("--workers", type=positive, metavar="W", help="Ray actors, one model "
                   "each (default: one per GPU, else 2)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA when present, else CPU")
    p.add_argument("--out", required=True, metavar="DIR", help="the census folder: "
                   "heads.parquet, texts.parquet, manifest.json")
    p.add_argument("--resume", action="store_true", help="continue an interrupted census "
                   "in DIR: finished batches are not recomputed")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from engine.census.run import run_census
    from engine.census.settings import CensusSettings

    try:
        settings = CensusSettings(model=args.model, corpus=args.corpus, field=args.field,
                                  max_texts=args.max_texts, batch_size=args.batch_size,
                                  probe=args.probe, engine=args.engine, device=args.device,
                                  workers=args.workers)
        manifest = run_census(settings, args.out, resume=args.resume, progress=True)
    except ModelNotInstalled as exc:
        fail(f"model {exc.name!r} is not installed; install it with: {exc.command}")
    except (InputError, ValueError, OSError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"interrupted: finished batches are kept in {args.out}/parts; run the same "
             "command with --resume to go on")
    except Exception as exc:  # never a traceback: say what failed, in one line
        fail(f"{type(exc).__name__}: {exc}")
    notes = []
    if manifest["truncated"]["count"]:
        notes.append(f"{manifest['truncated']['count']} cut to {manifest['max_tokens']} "
                     "tokens")
    if manifest["skipped_over_record_budget"]["count"]:
        notes.append(f"{manifest['skipped_over_record_budget']['count']} skipped (over the "
                     "record budget)")
    if manifest["corpus"]["undecodable_bytes_replaced"]:
        notes.append(f"{manifest['corpus']['undecodable_bytes_replaced']} undecodable byte "
                     "sequences replaced by U+FFFD")
    print(f"wrote {args.out}: {manifest['n_texts']} texts, {manifest['n_tokens']:,} tokens, "
          f"{manifest['elapsed_s']:.1f} s" + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
