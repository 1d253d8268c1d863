"""Headless export: `python -m cli.export --model NAME --text TEXT [...] --out FILE`.

Runs engine.load(NAME).attend(TEXT, ...) and writes one figure (png/svg/pdf/html), the
numbers (csv/json/npz) or a bundle (zip). This thin module is the one place that joins the
engine (which knows nothing of Plotly) to viz (which knows nothing of the engine): it turns
the record into viz.export.AttentionData and hands it over.

Without --layer the figure is the model view of the block; with --layer the layer's heads;
with --layer and --head that head's heatmap.
Bad arguments exit 2 with one line on stderr; other failures exit 1 with one line.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

BLOCKS = ("encoder.self", "decoder.self", "decoder.cross")
PROG = "python -m cli.export"


class UsageError(Exception):
    """Bad arguments: exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    from viz.export import FORMATS
    from viz.style import SEQUENTIAL

    e = _Parser(prog=PROG, description="Export an attention figure, the numbers or a bundle.")
    e.add_argument("--model", required=True)
    e.add_argument("--text", required=True)
    e.add_argument("--target", default=None, help="decoder text of an encoder-decoder")
    e.add_argument("--block", choices=BLOCKS, default=None)
    e.add_argument("--layer", type=int, default=None)
    e.add_argument("--head", type=int, default=None)
    e.add_argument("--format", choices=FORMATS, default=None,
                   help="default: the suffix of --out")
    e.add_argument("--out", required=True)
    e.add_argument("--mask", choices=("auto", "causal", "none"), default="auto")
    e.add_argument("--device", default="cpu")
    e.add_argument("--width", type=int, default=None)
    e.add_argument("--height", type=int, default=None)
    e.add_argument("--scale", type=float, default=1.0)
    e.add_argument("--dpi", type=float, default=None, help="PNG: sets scale = dpi / 96")
    e.add_argument("--palette", default="cividis", help=f"e.g. {', '.join(SEQUENTIAL)}")
    e.add_argument("--font-size", type=int, default=12)
    e.add_argument("--font-family", default=None)
    e.add_argument("--no-title", action="store_true")
    e.add_argument("--transparent", action="store_true")
    return e


def _check(args) -> str:
    from viz.export import FORMATS

    fmt = (args.format or Path(args.out).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise UsageError(f"cannot tell the format from --out {args.out!r}; pass --format")
    if args.head is not None and args.layer is None:
        raise UsageError("--head needs --layer")
    for name in ("layer", "head", "width", "height", "font_size"):
        v = getattr(args, name)
        if v is not None and v < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0")
    for name in ("scale", "dpi"):
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v > 0):  # nan <= 0 is False
            raise UsageError(f"--{name} must be a finite number > 0")
    if not args.text:
        raise UsageError("--text is empty")
    return fmt


def _style(args):
    import plotly.colors as pcolors

    from viz.style import Style

    try:
        pcolors.get_colorscale(args.palette)
    except Exception:  # noqa: BLE001
        raise UsageError(f"unknown palette {args.palette!r}") from None
    kw = dict(palette=args.palette, font_size=args.font_size, show_title=not args.no_title,
              transparent=args.transparent)
    if args.font_family:
        kw["font_family"] = args.font_family
    return Style(**kw)


def _figure(data, key: str, layer_only: bool, head: int | None, style):
    from viz.figures.heatmap import head_heatmap
    from viz.figures.model_view import model_view

    if head is not None:
        q, k = data.token_pair(key)
        return head_heatmap(data.attn[key][head], q, k, style=style, title=f"{key} head {head}")
    keys = [key] if layer_only else list(data.attn)
    return model_view([data.attn[k] for k in keys], layer_labels=keys, style=style,
                      title=key if layer_only else f"{key.rsplit('.', 1)[0]} (all layers)")


def export(args) -> Path:
    """Run the export described by parsed arguments; returns the output path."""
    from viz import export as ex

    fmt = _check(args)
    style = _style(args)
    try:
        import engine
    except ImportError as e:
        raise RuntimeError(f"the engine is not available ({e})") from None
    from engine.core.block_key import kind_of
    not_installed = getattr(engine, "ModelNotInstalled", ())
    try:
        model = engine.load(args.model, device=args.device)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise UsageError(f"cannot load model {args.model!r}: {e}") from None
    except not_installed as e:
        raise UsageError(str(e).splitlines()[0]) from None
    attend = dict(mask=args.mask)
    try:
        rec = model.attend(args.text, target=args.target, **attend)
    except ValueError as e:
        raise UsageError(str(e)) from None
    data = ex.AttentionData.from_record(rec)
    blocks = sorted({kind_of(k) for k in data.attn}, key=BLOCKS.index)
    block = args.block or blocks[0]
    if block not in blocks:
        raise UsageError(f"block {block!r} not in this model; it has {', '.join(blocks)}")
    try:
        sel = data.select(block=block, layer=args.layer, head=None)
        if args.head is not None:
            sel.select(head=args.head)
    except ValueError as e:
        raise UsageError(str(e)) from None
    out = Path(args.out)
    if fmt == "zip":
        meta = rec.meta
        source = dict(model=args.model, text=args.text, target=args.target, attend=attend,
                      device=args.device, weights_hash=meta.get("weights_hash"),
                      engine_version=meta.get("engine_version"))
        ex.export_bundle(sel if args.head is None else sel.select(head=args.head), out,
                         source=source, style=style, width=args.width, height=args.height,
                         scale=args.scale)
    elif fmt in ex.DATA_FORMATS:
        out.write_bytes(ex.data_bytes(sel if args.head is None else sel.select(head=args.head),
                                      fmt))
    else:
        key = next(iter(sel.attn))
        fig = _figure(sel, key, args.layer is not None, args.head, style)
        out.write_bytes(ex.figure_bytes(fig, fmt, width=args.width, height=args.height,
                                        scale=args.scale, dpi=args.dpi))
    return out


def regenerate(manifest: dict, name: str) -> bytes:
    """File `name` of a bundle rebuilt byte for byte: the model the manifest names is run
    again on its text and settings, and viz rebuilds the file from those maps."""
    import engine
    from viz import export as ex

    req = ex.regeneration_request(manifest)
    rec = engine.load(req["model"], device=req["device"]).attend(
        req["text"], target=req["target"], **req["attend"])
    return ex.regenerate_file(manifest, name, ex.AttentionData.from_record(rec))


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        out = export(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - one line, no traceback
        print(f"{PROG}: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
