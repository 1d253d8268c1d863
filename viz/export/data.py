"""Attention numbers as files: tidy CSV/JSON rows and NPZ in the engine's layout.

`AttentionData` is plain data (maps, tokens, meta): the caller turns an engine record into
it (`AttentionData.from_record` reads any object with `tokens`, `target_tokens`, `keys()`
and `[key]`), so nothing here knows the engine.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viz.metrics import split_key

DATA_FORMATS = ("csv", "json", "npz")
COLUMNS = ("block", "layer", "head", "query_index", "query_token", "key_index", "key_token",
           "weight")
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # zip entries get a fixed date: same input, same bytes


@dataclass
class AttentionData:
    """Attention maps of one input: what the data exports and bundles need.

    attn: {"encoder.self.0": float32 [H, Tq, Tk], ...} (record keys, see docs/contract.md);
    tokens: source/decoder-only tokens; target_tokens: decoder tokens of an
    encoder-decoder (else None); heads: original head indices when a subset was selected.
    """

    attn: dict[str, np.ndarray]
    tokens: list[str]
    target_tokens: list[str] | None = None
    meta: dict = field(default_factory=dict)
    heads: list[int] | None = None

    @classmethod
    def from_record(cls, rec: Any) -> AttentionData:
        """From an engine AttentionRecord (duck-typed: tokens, target_tokens, keys(), [key])."""
        return cls(
            attn={k: np.asarray(rec[k], dtype=np.float32) for k in rec.keys()},
            tokens=list(rec.tokens),
            target_tokens=None if rec.target_tokens is None else list(rec.target_tokens),
            meta=dict(getattr(rec, "meta", {}) or {}),
        )

    def token_pair(self, key: str) -> tuple[list[str], list[str]]:
        """(query tokens, key tokens) of a record key, checked against the map's shape."""
        block, _ = split_key(key)
        if self.target_tokens is None or block.startswith("encoder"):
            q, k = self.tokens, self.tokens
        elif block == "decoder.cross":
            q, k = self.target_tokens, self.tokens
        else:
            q, k = self.target_tokens, self.target_tokens
        shape = self.attn[key].shape
        if shape[-2:] != (len(q), len(k)):
            raise ValueError(
                f"{key} has shape {shape} but there are {len(q)} query and {len(k)} key tokens"
            )
        return q, k

    def select(self, block: str | None = None, layer: int | None = None,
               head: int | None = None) -> AttentionData:
        """Subset by block ('decoder.self'), layer and head (keeps [H', Tq, Tk] arrays)."""
        keys = [k for k in self.attn
                if (block is None or split_key(k)[0] == block)
                and (layer is None or split_key(k)[1] == layer)]
        if not keys:
            have = ", ".join(self.attn) or "none"
            raise ValueError(f"no attention for block={block} layer={layer}; have: {have}")
        attn = {k: self.attn[k] for k in keys}
        heads = self.heads
        if head is not None:
            n = min(a.shape[0] for a in attn.values())
            if not 0 <= head < n:
                raise ValueError(f"head {head} outside 0..{n - 1}")
            attn = {k: a[head : head + 1] for k, a in attn.items()}
            heads = [head if self.heads is None else self.heads[head]]
        return AttentionData(attn, self.tokens, self.target_tokens, self.meta, heads)


def json_safe(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def tidy_columns(data: AttentionData) -> Iterable[dict[str, np.ndarray | list]]:
    """Per record key, the tidy columns (see COLUMNS) as arrays; weights as float32 strings.

    Shapes: each key [H, Tq, Tk] -> columns of length H·Tq·Tk, ordered head, query, key.
    """
    for key, a in data.attn.items():
        block, layer = split_key(key)
        q_tok, k_tok = data.token_pair(key)
        h, tq, tk = a.shape
        heads = np.asarray(data.heads if data.heads is not None else range(h))
        n = h * tq * tk
        qi = np.tile(np.repeat(np.arange(tq), tk), h)
        ki = np.tile(np.arange(tk), h * tq)
        yield dict(
            block=[block] * n, layer=[layer] * n, head=np.repeat(heads, tq * tk).tolist(),
            query_index=qi.tolist(), query_token=np.asarray(q_tok, dtype=object)[qi].tolist(),
            key_index=ki.tolist(), key_token=np.asarray(k_tok, dtype=object)[ki].tolist(),
            # shortest text that reads back as the same float32
            weight=np.asarray(a, dtype=np.float32).reshape(-1).astype(str).tolist(),
        )


def tidy_rows(data: AttentionData) -> list[dict]:
    """Tidy rows (block, layer, head, query_index, query_token, key_index, key_token, weight)."""
    rows = []
    for cols in tidy_columns(data):
        cols = dict(cols, weight=[float(w) for w in cols["weight"]])
        rows.extend(dict(zip(COLUMNS, vals, strict=True))
                    for vals in zip(*(cols[c] for c in COLUMNS), strict=True))
    return rows


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An .npz (readable by np.load, no pickle) with fixed zip dates: same arrays, same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            b = io.BytesIO()
            np.lib.format.write_array(b, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(info, b.getvalue())
    return buf.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell):
    """A text cell a spreadsheet would run as a formula ("=HYPERLINK(…)", "+1", "@SUM…") with
    a leading apostrophe, which spreadsheets show as text (OWASP's CSV-injection advice).
    Only CSV text is changed; numbers, and every JSON and NPZ value, stay as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def data_bytes(data: AttentionData, fmt: str) -> bytes:
    """Attention numbers as csv/json (tidy rows) or npz (engine layout: tokens,
    target_tokens, one float32 [H, Tq, Tk] per key, heads, meta JSON)."""
    fmt = fmt.lower()
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for cols in tidy_columns(data):
            for token_column in ("query_token", "key_token"):
                cols[token_column] = [spreadsheet_safe(t) for t in cols[token_column]]
            w.writerows(zip(*(cols[c] for c in COLUMNS), strict=True))
        return buf.getvalue().encode("utf-8")
    if fmt == "json":
        return json.dumps(tidy_rows(data), ensure_ascii=False, separators=(",", ":")).encode()
    if fmt == "npz":
        arrays: dict[str, np.ndarray] = {
            "tokens": np.asarray(data.tokens, dtype=str),
            "target_tokens": np.asarray(data.target_tokens or [], dtype=str),
            # numpy str arrays drop trailing NULs: the exact tokens also travel as JSON
            "tokens_json": np.asarray(json.dumps(list(data.tokens))),
            "target_tokens_json": np.asarray(json.dumps(list(data.target_tokens or []))),
        }
        arrays.update({k: np.asarray(a, dtype=np.float32) for k, a in data.attn.items()})
        if data.heads is not None:
            arrays["heads"] = np.asarray(data.heads, dtype=np.int32)
        arrays["meta"] = np.asarray(json.dumps(json_safe(data.meta), sort_keys=True))
        return npz_bytes(arrays)
    raise ValueError(f"unknown data format {fmt!r}; choose one of {', '.join(DATA_FORMATS)}")
