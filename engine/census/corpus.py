"""Reading a corpus: one text per line (.txt), per JSON line (.jsonl, `field`), per row
(.csv or .parquet, column `field`).

Bytes that are not UTF-8 are replaced by U+FFFD and counted (`Corpus.undecodable`, in the
manifest), not refused: one stray byte should not cost a whole census, and the count says
it happened. Blank texts are skipped and counted. Anything else wrong with the file (missing,
empty, unknown format, a missing field or column, a line that is not JSON, a value that is
not text) is an InputError naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError

FORMATS = (".txt", ".jsonl", ".csv", ".parquet")
BUNDLED = Path(__file__).resolve().parents[2] / "assets" / "corpus" / "sentences.txt"
REPLACEMENT = "\ufffd"


@dataclass
class Corpus:
    texts: list[str]
    path: str
    sha256: str  # of the file's bytes
    format: str
    field: str | None
    undecodable: int = 0  # undecodable byte sequences replaced by U+FFFD
    blank_skipped: int = 0
    total_texts: int = 0  # non-blank texts in the file, before --max-texts

    def describe(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "format": self.format,
                "field": self.field, "texts_in_file": self.total_texts,
                "texts_used": len(self.texts), "blank_skipped": self.blank_skipped,
                "undecodable_bytes_replaced": self.undecodable}


def decode_counting(data: bytes) -> tuple[str, int]:
    """UTF-8 with errors replaced, and how many undecodable sequences were replaced.

    A U+FFFD already in the file is the valid bytes EF BF BD, which always decode whole, so
    the replacements are the U+FFFDs beyond those."""
    text = data.decode("utf-8", errors="replace")
    return text, text.count(REPLACEMENT) - data.count(REPLACEMENT.encode())


def read_corpus(path: str | Path | None = None, field: str = "text",
                max_texts: int | None = None) -> Corpus:
    """The texts of a corpus file, in file order (the bundled corpus when `path` is None)."""
    path = Path(path) if path is not None else BUNDLED
    if max_texts is not None and max_texts < 1:
        raise InputError(f"--max-texts must be at least 1, got {max_texts}")
    fmt = path.suffix.lower()
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown corpus format {path.suffix or '(none)'!r}; "
                         f"use one of {', '.join(FORMATS)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the corpus {path}: {exc.strerror or exc}") from exc
    values, undecodable = _values(path, fmt, data, field)
    texts = [t for t in values if t.strip()]
    corpus = Corpus(texts=texts[:max_texts], path=str(path),
                    sha256=hashlib.sha256(data).hexdigest(), format=fmt.lstrip("."),
                    field=None if fmt == ".txt" else field, undecodable=undecodable,
                    blank_skipped=len(values) - len(texts), total_texts=len(texts))
    if not corpus.texts:
        raise InputError(f"{path}: the corpus has no texts"
                         + (f" (all {len(values)} are blank)" if values else ""))
    return corpus


def _values(path: Path, fmt: str, data: bytes, field: str) -> tuple[list[str], int]:
    if fmt == ".parquet":
        return _parquet(path, data, field), 0
    text, undecodable = decode_counting(data)
    if fmt == ".txt":
        return text.splitlines(), undecodable
    if fmt == ".jsonl":
        return _jsonl(path, text, field), undecodable
    return _csv(path, text, field), undecodable


def _jsonl(path: Path, text: str, field: str) -> list[str]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}, line {n}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or field not in row:
            raise InputError(f"{path}, line {n}: no field {field!r} (choose it with --field)")
        out.append(_text(path, f"line {n}", row[field]))
    return out


def _csv(path: Path, text: str, field: str) -> list[str]:
    import pandas as pd

    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a CSV table ({str(exc).strip()})") from exc
    return _column(path, frame, field)


def _parquet(path: Path, data: bytes, field: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a Parquet file ({exc})") from exc
    if field not in table.column_names:
        raise InputError(f"{path}: no column {field!r} (columns: "
                         f"{', '.join(table.column_names) or 'none'}; choose one with --field)")
    column = table.column(field)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise InputError(f"{path}: column {field!r} holds {column.type}, not text")
    try:
        values = column.to_pylist()
    except UnicodeDecodeError as exc:  # Parquet strings must be UTF-8: refused, not guessed
        raise InputError(f"{path}: column {field!r} holds bytes that are not UTF-8") from exc
    return ["" if v is None else v for v in values]


def _column(path: Path, frame, field: str) -> list[str]:
    if field not in frame.columns:
        raise InputError(f"{path}: no column {field!r} (columns: "
                         f"{', '.join(map(str, frame.columns)) or 'none'}; choose one with "
                         "--field)")
    return [_text(path, f"row {i + 1}", v) for i, v in enumerate(frame[field].tolist())]


def _text(path: Path, where: str, value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{path}, {where}: the text is {type(value).__name__}, not a string")
    return value
