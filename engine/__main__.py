"""Command line: `python -m engine models` and `python -m engine attention ...`.

Bad input exits 2 with one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from engine.errors import InputError, ModelNotInstalled


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        fail(message)


def fail(message: str) -> None:
    print(f"error: {message}".replace("\n", " "), file=sys.stderr)
    raise SystemExit(2)


def cmd_models(_args) -> int:
    from engine.models.registry import MODELS

    rows = [("name", "kind", "layers", "heads", "kv_heads", "positions", "installed")]
    for e in MODELS.values():
        how = e.install or "ships in assets/ (re-train: python -m engine.train.dates --variant all)"
        installed = "yes" if e.is_installed() else f"no: {how}"
        rows.append((e.name, e.kind, e.layers, str(e.heads), str(e.kv_heads), e.positions,
                     installed))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0


def cmd_attention(args) -> int:
    import numpy as np

    from engine.models.registry import load

    if not args.out.endswith(".npz"):
        fail(f"--out must name a .npz file, got {args.out!r}")
    model = load(args.model, device=args.device)
    record = model.attend(args.text, target=args.target, mask=args.mask, kv_heads=args.kv_heads,
                          window=args.window)
    record.meta["truncated"] = bool(record.meta.get("truncated"))
    record.to_npz(args.out)
    for notice in record.meta.get("notices", []):
        print(f"notice: {notice}", file=sys.stderr)
    shapes = {k: record[k].shape for k in record.keys()[:1]}
    print(f"wrote {args.out}: {len(record.keys())} maps, {len(record.tokens)} tokens "
          f"(first {next(iter(shapes))} {tuple(np.shape(record[next(iter(shapes))]))})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("models", help="list every model the engine knows")
    att = sub.add_parser("attention", help="record attention maps to an NPZ file")
    att.add_argument("--model", required=True)
    att.add_argument("--text", required=True)
    att.add_argument("--target")
    att.add_argument("--mask", choices=["auto", "causal", "none"], default="auto")
    att.add_argument("--window", type=int)
    att.add_argument("--kv-heads", type=int, dest="kv_heads")
    att.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    att.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        return {"models": cmd_models, "attention": cmd_attention}[args.command](args)
    except ModelNotInstalled as exc:
        fail(f"model {exc.name!r} is not installed; install it with: {exc.command}")
    except (InputError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted")
    return 1


if __name__ == "__main__":
    sys.exit(main())

