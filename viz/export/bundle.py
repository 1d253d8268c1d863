"""ZIP bundles: every head of the given maps as data files and figures, plus a
manifest.json from which each file regenerates byte for byte (`regenerate_file`, given the
maps re-made by the caller: this package never runs a model)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from viz.export.data import DATA_FORMATS, FIXED_ZIP_TIME, AttentionData, data_bytes, json_safe
from viz.export.render import IMAGE_FORMATS, chromium_available, figure_bytes
from viz.metrics import split_key
from viz.style import DEFAULT, Style

Progress = Callable[[float, str], None]

BUNDLE_FORMATS = ("npz", "csv", "png", "html")
TIDY_MAX_ROWS = 2_000_000  # above this, CSV/JSON are left out of bundles (NPZ keeps all)


def versions() -> dict[str, str]:
    """Versions of the packages that shape exported bytes."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "plotly", "kaleido", "attention-studio"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _figure_for(data: AttentionData, keys: Sequence[str], head: int | None,
                style: Style) -> go.Figure:
    """Head heatmap of keys[0] (head given) or the model view of `keys` (one block kind)."""
    from viz.figures.heatmap import head_heatmap
    from viz.figures.model_view import model_view

    if head is None:
        title = keys[0] if len(keys) == 1 else split_key(keys[0])[0]
        return model_view([data.attn[k] for k in keys], layer_labels=list(keys), style=style,
                          title=title)
    q_tok, k_tok = data.token_pair(keys[0])
    return head_heatmap(data.attn[keys[0]][head], q_tok, k_tok, style=style,
                        title=f"{keys[0]} head {head}")


def build_file(data: AttentionData, spec: Mapping[str, Any], style: Style = DEFAULT,
               meta: Mapping[str, Any] | None = None) -> bytes:
    """Bytes of one bundle file from its manifest spec (format, keys, head, figure size).

    The same function writes the bundle and regenerates from a manifest, so both agree.
    meta replaces data.meta in NPZ files (bundles store the regeneration recipe there, not
    run-dependent details such as timings).
    """
    sel = AttentionData({k: data.attn[k] for k in spec["keys"]}, data.tokens,
                        data.target_tokens, dict(data.meta if meta is None else meta),
                        data.heads)
    fmt = spec["format"]
    if fmt in DATA_FORMATS:
        if spec.get("head") is not None:
            sel = sel.select(head=spec["head"])
        return data_bytes(sel, fmt)
    fig = _figure_for(sel, spec["keys"], spec.get("head"), style)
    return figure_bytes(fig, fmt, width=spec.get("width"), height=spec.get("height"),
                        scale=spec.get("scale", 1.0))


def _plan(data: AttentionData, formats: Sequence[str], fig_kw: dict) -> list[dict]:
    """The files of a bundle: data over all keys, one image per head, one HTML per block."""
    keys = list(data.attn)
    cells = sum(a.size for a in data.attn.values())
    plan = []
    for fmt in formats:
        if fmt in DATA_FORMATS:
            if fmt in ("csv", "json") and cells > TIDY_MAX_ROWS:
                continue
            plan.append(dict(name=f"attention.{fmt}", format=fmt, keys=keys, head=None))
        elif fmt == "html":  # one interactive model view per block kind (plotly.js is 4 MB)
            for block in dict.fromkeys(split_key(k)[0] for k in keys):
                plan.append(dict(name=f"figures/{block}.html", format="html", head=None,
                                 keys=[k for k in keys if split_key(k)[0] == block]))
        elif fmt in IMAGE_FORMATS:
            for k in keys:
                plan += [dict(name=f"figures/{k}.h{h}.{fmt}", format=fmt, keys=[k], head=h,
                              **fig_kw) for h in range(data.attn[k].shape[0])]
        else:
            raise ValueError(f"unknown bundle format {fmt!r}")
    return plan


def export_bundle(
    data: AttentionData | Any,
    out: str | Path | io.BufferedIOBase,
    *,
    source: Mapping[str, Any] | None = None,
    formats: Sequence[str] = BUNDLE_FORMATS,
    style: Style = DEFAULT,
    width: int | None = None,
    height: int | None = None,
    scale: float = 1.0,
    progress: Progress | None = None,
    skip_unavailable: bool = True,
) -> dict:
    """ZIP of every head of the given maps (a layer: data.select(block, layer); or the whole
    model) plus manifest.json, enough to regenerate each file with `regenerate_file`.

    data: AttentionData or an engine record. source: how the maps were made:
    {"model", "text", "target", "attend": attend() kwargs, "engine_version", "weights_hash"}
    (missing entries are taken from data.meta). progress(fraction, message) is called after
    each file. skip_unavailable: without Chromium, leave PNG/SVG/PDF out (the manifest's
    notes say so) instead of raising ExportUnavailable. Returns the manifest.
    """
    if not isinstance(data, AttentionData):
        data = AttentionData.from_record(data)
    meta = data.meta
    src = dict(source or {})
    for k in ("model", "text", "target", "device", "engine_version", "weights_hash"):
        src.setdefault(k, meta.get(k))
    src.setdefault("attend", meta.get("settings", {}))
    if src.get("engine_version") is None:
        src["engine_version"] = (meta.get("versions") or {}).get("engine")
    fig_kw = dict(width=width, height=height, scale=scale)
    formats = [f.lower() for f in formats]
    notes = []
    if skip_unavailable and set(formats) & set(IMAGE_FORMATS) and not chromium_available():
        notes.append("Chromium not found: PNG/SVG/PDF left out (apt-get install -y chromium)")
        formats = [f for f in formats if f not in IMAGE_FORMATS]
    cells = sum(a.size for a in data.attn.values())
    if cells > TIDY_MAX_ROWS and set(formats) & {"csv", "json"}:
        notes.append(f"{cells} rows are too many for CSV/JSON: use attention.npz")
    plan = _plan(data, formats, fig_kw)
    if not plan:
        raise ValueError("nothing to export: no formats selected")
    manifest = {
        "schema": "attention-studio/bundle-1",
        "source": json_safe(src),
        "selection": {"keys": list(data.attn), "heads": data.heads},
        "tokens": data.tokens,
        "target_tokens": data.target_tokens,
        "meta": json_safe(meta),
        "versions": versions(),
        "style": style.to_dict(),
        "notes": notes,
        "files": [],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, spec in enumerate(plan):
            blob = build_file(data, spec, style, meta={"source": manifest["source"]})
            info = zipfile.ZipInfo(spec["name"], date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, blob)
            manifest["files"].append(dict(spec, sha256=hashlib.sha256(blob).hexdigest(),
                                          bytes=len(blob)))
            if progress:
                progress((i + 1) / (len(plan) + 1), f"wrote {spec['name']}")
        info = zipfile.ZipInfo("manifest.json", date_time=FIXED_ZIP_TIME)
        zf.writestr(info, json.dumps(manifest, indent=2, ensure_ascii=False))
    if progress:
        progress(1.0, "done")
    if isinstance(out, (str, Path)):
        Path(out).write_bytes(buf.getvalue())
    else:
        out.write(buf.getvalue())
    return manifest


def regeneration_request(manifest: Mapping[str, Any]) -> dict:
    """How the bundle's maps were made, as the caller re-runs them: {"model", "device",
    "text", "target", "attend": attend() keyword arguments}."""
    src = manifest["source"]
    return dict(model=src["model"], device=src.get("device") or "cpu", text=src["text"],
                target=src.get("target"), attend=dict(src.get("attend") or {}))


def regenerate_file(manifest: Mapping[str, Any], name: str,
                    record: AttentionData | Any) -> bytes:
    """Rebuild file `name` of a bundle byte for byte (data files always; images when Chromium
    and package versions are the same) from the maps re-made as `regeneration_request`
    says: `record` is AttentionData or any record `AttentionData.from_record` reads.
    """
    spec = next((f for f in manifest["files"] if f["name"] == name), None)
    if spec is None:
        raise KeyError(f"{name!r} is not in the manifest")
    data = record if isinstance(record, AttentionData) else AttentionData.from_record(record)
    data = AttentionData({k: data.attn[k] for k in manifest["selection"]["keys"]}, data.tokens,
                         data.target_tokens, data.meta)
    heads = manifest["selection"].get("heads")
    if heads is not None:
        data = data.select(head=heads[0])
    return build_file(data, spec, Style(**manifest["style"]), meta={"source": manifest["source"]})
