"""Command line: `python -m engine models` and `python -m engine attention ...`.

Bad input exits 2 with one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys

from engine.errors import InputError, ModelNotInstalled, OneLineParser, fail


def size_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell, the last left as is."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


def cmd_models(_args) -> int:
    from engine.models.hf import hub_cache
    from engine.models.registry import MODELS, discover

    rows = [("name", "kind", "layers", "heads", "kv_heads", "positions", "installed")]
    for e in MODELS.values():
        how = e.install or "ships in assets/ (re-train: python -m engine.train.dates --variant all)"
        installed = "yes" if e.is_installed() else f"no: {how}"
        rows.append((e.name, e.kind, e.layers, str(e.heads), str(e.kv_heads), e.positions,
                     installed))
    table(rows)
    found = discover()
    for where, title in (("hf-cache", f"Hugging Face cache ({hub_cache()})"),
                         ("ATTENTION_STUDIO_MODELS", "ATTENTION_STUDIO_MODELS")):
        here = [c for c in found if c.where == where]
        print(f"\n{title}: {len(here) or 'no'} checkpoint{'s' * (len(here) != 1)}")
        if not here:
            continue
        rows = [("name", "kind", "layers × heads", "kv_heads", "positions", "size")]
        for c in here:
            if c.facts:
                f = c.facts
                rows.append((c.name, f["kind"], f"{f['layers']} × {f['heads']}",
                             str(f["kv_heads"]), f["positions"], size_text(c.size_bytes)))
            else:
                rows.append((c.name, "unsupported", f"model_type {c.model_type!r}", "-", "-",
                             f"{size_text(c.size_bytes)}; {c.why}"))
        table(rows)
    return 0


def parse_layers(text: str | None) -> list | None:
    """'3' → [3]; '0,5,11' → [0, 5, 11]; 'decoder.self.4' → ['decoder.self.4'] (mixable)."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        fail(f"--layers takes layer numbers or block keys separated by commas, got {text!r}")
    out: list = []
    for item in items:
        if item.isdigit():
            out.append(int(item))
        elif item.rsplit(".", 1)[-1].isdigit() and "." in item:
            out.append(item)
        else:
            fail(f"--layers: {item!r} is neither a layer number (3) nor a block key "
                 "(decoder.self.4)")
    return out


def read_text(args) -> str:
    if (args.text is None) == (args.text_file is None):
        fail("give the text with exactly one of --text or --text-file")
    if args.text is not None:
        return args.text
    try:
        if args.text_file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.text_file, "rb") as f:
                data = f.read()
    except OSError as exc:
        fail(f"cannot read --text-file {args.text_file}: {exc.strerror or exc}")
    return data.decode("utf-8", errors="replace")


def cmd_attention(args) -> int:
    import numpy as np

    from engine.models.registry import load

    if not args.out.endswith(".npz"):
        fail(f"--out must name a .npz file, got {args.out!r}")
    text = read_text(args)
    layers = parse_layers(args.layers)
    model = load(args.model, device=args.device, dtype=args.dtype)
    record = model.attend(text, target=args.target, mask=args.mask, kv_heads=args.kv_heads,
                          window=args.window, layers=layers, contributions=args.contributions)
    record.meta["truncated"] = bool(record.meta.get("truncated"))
    record.to_npz(args.out)
    for notice in record.meta.get("notices", []):
        print(f"notice: {notice}", file=sys.stderr)
    first = record.keys()[0]
    print(f"wrote {args.out}: {len(record.keys())} maps, {len(record.tokens)} tokens "
          f"(first {first} {tuple(np.shape(record[first]))})")
    return 0


def for_the_cli(message: str) -> str:
    """The engine's advice names Python arguments; on the command line, name the option."""
    return message.replace("layers=[k]", "--layers K")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["census"]:  # the head census parses its own options
        from engine.census.cli import main as census_main

        return census_main(argv[1:])
    parser = OneLineParser(prog="python -m engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    sub.add_parser("models", help="list the registered models and the checkpoints found in "
                   "the Hugging Face cache and under ATTENTION_STUDIO_MODELS")
    sub.add_parser("census", help="what every head does across a corpus (python -m engine "
                   "census --help)")
    att = sub.add_parser("attention", help="record attention maps to an NPZ file")
    att.add_argument("--model", required=True, help="a registered name, a Hugging Face "
                     "checkpoint folder, a repo id org/name in the HF cache, or a .gguf file")
    att.add_argument("--text", help="the input text")
    att.add_argument("--text-file", dest="text_file", metavar="FILE",
                     help="read the input text from FILE (UTF-8; - for standard input)")
    att.add_argument("--target", help="the decoder's text of an encoder-decoder (teacher "
                     "forcing); without it the decoder runs greedily")
    att.add_argument("--mask", choices=["auto", "causal", "none"], default="auto",
                     help="auto: the model's own mask (default); causal; none")
    att.add_argument("--window", type=int, help="a sliding window of N keys in every layer")
    att.add_argument("--kv-heads", type=int, dest="kv_heads",
                     help="convert to G K/V heads (GQA/MQA by mean pooling) first")
    att.add_argument("--layers", help="record only these: 3, 0,5,11 or a block key such as "
                     "decoder.self.4 (default: every block)")
    att.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                     help="compute dtype: float32 (default); bfloat16/float16 on CUDA only "
                     "(maps are written as float32)")
    att.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                     help="auto: CUDA when present, else CPU")
    att.add_argument("--contributions", action="store_true",
                     help="also the norm and flow maps of every recorded block, written as "
                     "norm.<block> and flow.<block> (engine/contributions.py)")
    att.add_argument("--out", required=True, help="the .npz file to write")
    args = parser.parse_args(argv)
    try:
        return {"models": cmd_models, "attention": cmd_attention}[args.command](args)
    except ModelNotInstalled as exc:
        fail(f"model {exc.name!r} is not installed; install it with: {exc.command}")
    except (InputError, ValueError, OSError) as exc:
        fail(for_the_cli(str(exc)))
    except KeyboardInterrupt:
        fail("interrupted")
    except Exception as exc:  # never a traceback: say what failed, in one line
        fail(f"{type(exc).__name__}: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
