"""Running a census from the app: the caps that keep one session from holding the server, the
uploaded corpus kept as a file, and `engine.census.run.run_census` with a progress callback
into a folder that appears whole or not at all.

Why the caps: a census runs in the session's own script thread, so other sessions' pages keep
answering, but they share the CPU with it. The app runs at most MAX_APP_TEXTS texts and one
census at a time (a second session waits for the first, which the cap keeps short); bigger
ones belong on the command line or on Ray, whose command the page shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import streamlit as st

from engine.api import LoadedModel
from engine.census.corpus import FORMATS, Corpus, read_corpus
from engine.census.run import run_census
from engine.census.settings import CensusSettings
from engine.io.cache_dir import cache_dir

MAX_APP_TEXTS = 200  # texts one app run may take (the CLI and Ray have no such cap)
MAX_UPLOAD_MB = 5
MAX_UPLOAD_TEXTS = 2_000  # texts of an uploaded file the app reads at all
UPLOADS = "census-uploads"  # beside the results folder, never listed as a census


class UploadProblem(Exception):
    """An upload the page refuses: `key` of its message in CENSUS_TEXT, and its fields."""

    def __init__(self, key: str, **fmt) -> None:
        super().__init__(key)
        self.key, self.fmt = key, fmt


def save_upload(name: str, data: bytes) -> Path:
    """The uploaded bytes as a file named by their hash (the same upload reuses one file, and
    the census manifest's corpus path stays valid); only the suffix of `name` is kept."""
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise UploadProblem("upload_type", name=name)
    if not data.strip():
        raise UploadProblem("upload_empty", name=name)
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        raise UploadProblem("upload_too_big", name=name, mb=len(data) / 2**20,
                            cap=MAX_UPLOAD_MB)
    path = cache_dir(UPLOADS) / f"{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def census_folder(root: Path, model: LoadedModel, corpus: Corpus, n_texts: int,
                  probe: bool) -> Path:
    """Where this app run's census lives: named by everything that changes its numbers, so
    the same choice shows the saved result instead of running again."""
    identity = json.dumps([model.name, model.weights_hash, corpus.sha256, corpus.field,
                           n_texts, probe])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", model.name).strip("-.") or "model"
    return root / f"app-{stem}-{n_texts}-{digest}"


@st.cache_resource(show_spinner=False)
def _run_lock() -> threading.Lock:
    return threading.Lock()  # one per server process: every session shares it


@contextlib.contextmanager
def one_at_a_time(on_wait: Callable[[], None]) -> Iterator[None]:
    """Hold the app's census lock; `on_wait` tells the user when another session has it."""
    lock = _run_lock()
    if not lock.acquire(blocking=False):
        on_wait()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def run_into(folder: Path, settings: CensusSettings, model: LoadedModel,
             on_progress: Callable[[int, int, int], None]) -> dict:
    """Run the census into a hidden folder beside `folder`, then rename it into place: an
    interrupted run leaves no half-written census under the name the page lists."""
    if settings.max_texts is None or settings.max_texts > MAX_APP_TEXTS:
        raise ValueError(f"the app runs at most {MAX_APP_TEXTS} texts")
    work = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
    try:
        manifest = run_census(settings, work, on_progress=on_progress, model=model)
        try:
            os.replace(work, folder)
        except OSError:  # another session finished the same census first: keep theirs
            if not (folder / "manifest.json").is_file():
                raise
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def upload_corpus(name: str, data: bytes, field: str) -> tuple[Path, Corpus]:
    """(saved path, corpus of at most MAX_UPLOAD_TEXTS texts) of an uploaded file."""
    path = save_upload(name, data)
    return path, read_corpus(path, field, MAX_UPLOAD_TEXTS)
