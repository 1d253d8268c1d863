"""Census folders on disk: where the app keeps them, which ones are finished, and reading one
back (manifest.json, heads.parquet, texts.parquet) with a message instead of a traceback.

A folder counts as a census only once its manifest.json is there: engine/census/run.py writes
it last, so a folder without one is an unfinished (or interrupted) run and is not listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from engine.census.metrics import METRICS
from engine.errors import InputError
from engine.io.cache_dir import cache_dir

SUBDIR = "census"  # under $ATTENTION_STUDIO_CACHE (default ~/.cache/attention-studio)
KIND = "attention-studio head census"
HEAD_COLUMNS = ("block", "layer", "head", "n_texts", "type",
                *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")))
TEXT_COLUMNS = ("text_id", "block", "layer", "head", "text", *METRICS)
MAX_LISTED = 200  # folders listed in the picker, newest first


@dataclass(frozen=True)
class Census:
    folder: str
    manifest: dict
    heads: pd.DataFrame  # one row per (block, layer, head)
    texts: pd.DataFrame  # one row per (text, block, layer, head)

    def blocks(self) -> list[str]:
        return list(dict.fromkeys(self.heads["block"]))

    def grid(self, block: str, column: str) -> np.ndarray:
        """[layers, heads] of one heads.parquet column for `block` (NaN where missing)."""
        rows = self.heads[self.heads["block"] == block]
        n_l, n_h = int(rows["layer"].max()) + 1, int(rows["head"].max()) + 1
        out = np.full((n_l, n_h), np.nan)
        if column in rows:
            out[rows["layer"].to_numpy(), rows["head"].to_numpy()] = rows[column].to_numpy(
                dtype=np.float64, na_value=np.nan)
        return out

    def type_grid(self, block: str) -> list[list[str | None]]:
        rows = self.heads[self.heads["block"] == block]
        n_l, n_h = int(rows["layer"].max()) + 1, int(rows["head"].max()) + 1
        out: list[list[str | None]] = [[None] * n_h for _ in range(n_l)]
        for layer, head, kind in zip(rows["layer"], rows["head"], rows["type"], strict=True):
            out[int(layer)][int(head)] = str(kind)
        return out

    def head_texts(self, block: str, layer: int, head: int) -> pd.DataFrame:
        t = self.texts
        return t[(t["block"] == block) & (t["layer"] == layer) & (t["head"] == head)]


def results_root() -> Path:
    """The folder whose census subfolders the app lists and into which it saves its runs."""
    return cache_dir(SUBDIR)


def saved_folders(root: Path) -> list[Path]:
    """Finished census folders directly under `root`, newest first."""
    try:
        found = [p for p in root.iterdir()
                 if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").is_file()]
    except OSError:
        return []
    found.sort(key=lambda p: (p / "manifest.json").stat().st_mtime, reverse=True)
    return found[:MAX_LISTED]


def describe(folder: Path) -> str:
    """One line for the picker: folder name, model, texts."""
    try:
        m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return f"{folder.name} — {m.get('model', '?')}, {m.get('n_texts', '?')} texts"
    except (OSError, ValueError):
        return folder.name


def _stamp(folder: Path) -> float:
    try:
        return (folder / "manifest.json").stat().st_mtime
    except OSError:
        return 0.0


def load_census(folder: str | Path) -> Census:
    """The census in `folder`; InputError naming the file when it is not a finished one."""
    folder = Path(folder)
    return _load(str(folder), _stamp(folder))


# A resource, not data: the frames are shared read-only by every session (no copy per rerun).
@st.cache_resource(show_spinner=False, max_entries=16)
def _load(folder: str, stamp: float) -> Census:  # the stamp re-reads a rewritten folder
    path = Path(folder)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"{path} holds no finished census (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{manifest_path}: not a readable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise InputError(f"{manifest_path}: not a head census manifest")
    heads = _table(path / "heads.parquet", HEAD_COLUMNS)
    texts = _table(path / "texts.parquet", TEXT_COLUMNS)
    if heads.empty:
        raise InputError(f"{path / 'heads.parquet'} has no heads")
    return Census(folder, manifest, heads.reset_index(drop=True), texts.reset_index(drop=True))


def _table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - pyarrow's own errors: the file is damaged
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)}")
    return frame
