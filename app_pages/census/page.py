"""Census: what every head does across a corpus, not one sentence (issue 16).

Wiring only: pick a model and a corpus (the bundled sentences, an upload, or a census saved
under the results folder) → `engine.census.run.run_census` with a progress callback
(`runner.run_into`, capped at MAX_APP_TEXTS) or `results.load_census` → `views.show_census`
(viz.figures.census maps, the table, one head's distribution, the Attention click-through).
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from app_pages.census.results import describe, load_census, results_root, saved_folders
from app_pages.census.runner import (
    MAX_APP_TEXTS,
    MAX_UPLOAD_MB,
    MAX_UPLOAD_TEXTS,
    UploadProblem,
    census_folder,
    one_at_a_time,
    run_into,
    upload_corpus,
)
from app_pages.census.text import CENSUS_TEXT
from app_pages.census.views import show_census
from app_pages.shared.i18n import translator
from app_pages.shared.models import get_model, model_picker
from app_pages.shared.sidebar import current_settings
from app_pages.shared.widget_state import keep_valid, persist
from engine.census.corpus import read_corpus
from engine.census.settings import CensusSettings
from engine.errors import InputError, ModelNotInstalled

say = translator(CENSUS_TEXT)
SOURCES = ("bundled", "upload", "saved")
BATCH_SIZE = 8
MAX_FIELD = 200  # characters of a JSON field or column name


def bigger_runs(root: Path, name: str | None) -> None:
    """The cap, and the command lines for a census past it (local, then Ray)."""
    model = name or "minilm"
    with st.expander(say("bigger_title"), icon=":material/terminal:"):
        st.caption(say("bigger", cap=MAX_APP_TEXTS, root=root))
        st.code(f".venv/bin/python -m engine census --model {model} --corpus FILE "
                f"--probe induction --out {root}/{model}-full\n"
                f"RAY_ADDRESS=HEAD_IP:6379 .venv/bin/python -m engine census --model {model} "
                f"--corpus FILE --engine ray --workers 8 --probe induction "
                f"--out {root}/{model}-ray", language="bash")


def pick_saved(root: Path) -> str | None:
    folders = [str(p) for p in saved_folders(root)]
    if not folders:
        st.info(say("no_saved", root=root))
        return None
    keep_valid("census_saved", folders)
    labels = {p: describe(Path(p)) for p in folders}
    return st.selectbox(say("saved"), folders, key="census_saved", format_func=labels.get)


def pick_corpus(source: str) -> tuple[str | None, str] | None:
    """(corpus path or None for the bundled one, field), or None after saying why not."""
    if source == "bundled":
        return None, "text"
    c = st.columns([3, 1])
    with c[0]:
        # Plain data only, capped (tests/test_security.py reads this list); parsed by
        # engine.census.corpus (pyarrow for Parquet: nothing is unpickled).
        upload = st.file_uploader(say("upload", mb=MAX_UPLOAD_MB),
                                  type=["txt", "jsonl", "csv", "parquet"], key="census_upload",
                                  max_upload_size=MAX_UPLOAD_MB, help=say("upload_help"))
    with c[1]:
        field = st.text_input(say("field"), key="census_field").strip()
    if len(field) > MAX_FIELD:  # no field name is that long: say so rather than search it
        st.warning(say("field_cut", n=MAX_FIELD))
        field = field[:MAX_FIELD]
    field = field or "text"
    if upload is None:
        st.info(say("upload_first"))
        return None
    try:
        path, corpus = upload_corpus(upload.name, upload.getvalue(), field)
    except UploadProblem as problem:
        st.warning(say(problem.key, **problem.fmt))
        return None
    except InputError as exc:
        st.warning(say("bad_corpus", msg=str(exc)))
        return None
    if corpus.total_texts > MAX_UPLOAD_TEXTS:
        st.info(say("upload_capped", name=upload.name, n=corpus.total_texts,
                    cap=MAX_UPLOAD_TEXTS))
    return str(path), field


def run_or_find(root: Path, name: str, corpus_path: str | None, field: str) -> str | None:
    """The folder of this choice's census: found saved, or run now with a progress bar."""
    settings = current_settings()
    c = st.columns([2, 3])
    with c[0]:
        n_texts = int(st.number_input(say("n_texts", cap=MAX_APP_TEXTS), 1, MAX_APP_TEXTS,
                                      key="census_n"))
    with c[1]:
        probe = st.toggle(say("probe"), key="census_probe", help=say("probe_help"))
    model = get_model(name, settings.device)
    if model is None:
        return None
    try:
        corpus = read_corpus(corpus_path, field, n_texts)
        census = CensusSettings(model=name, corpus=corpus_path, field=field, max_texts=n_texts,
                                batch_size=BATCH_SIZE, probe="induction" if probe else None,
                                device=settings.device)
    except InputError as exc:
        st.warning(say("bad_corpus", msg=str(exc)))
        return None
    folder = census_folder(root, model, corpus, n_texts, probe)
    if (folder / "manifest.json").is_file():
        st.caption(say("cached", folder=folder))
        return str(folder)
    if not st.button(say("run"), key="census_run", type="primary",
                     icon=":material/play_arrow:"):
        return None
    bar = st.progress(0.0, text=say("running", name=name, done=0, total=len(corpus.texts),
                                    tokens=0))

    def on_progress(done: int, total: int, tokens: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0),
                     text=(say("running", name=name, done=done, total=total, tokens=tokens)
                           if done < total else say("probing")))

    started = time.perf_counter()
    try:
        with one_at_a_time(lambda: st.info(say("waiting"))):
            run_into(folder, census, model, on_progress)
    except ModelNotInstalled as exc:
        st.warning(say("run_failed", msg=f"{exc.name}: {exc.command}"))
        return None
    except (InputError, ValueError, OSError) as exc:
        st.error(say("run_failed", msg=str(exc)))
        return None
    except Exception as exc:  # noqa: BLE001 - a message, never a traceback (Streamlit's
        # own stop and rerun signals are BaseExceptions: they still pass through)
        st.error(say("run_failed", msg=f"{type(exc).__name__}: {exc}"))
        return None
    finally:
        bar.empty()
    st.success(say("done", folder=folder, s=time.perf_counter() - started))
    return str(folder)


persist(("census_source", "census_model", "census_n", "census_probe", "census_field",
         "census_saved", "census_metric", "census_block", "census_layer", "census_head"),
        {"census_source": "bundled", "census_n": MAX_APP_TEXTS, "census_probe": True,
         "census_field": "text"})
st.title(say("title"))
st.markdown(say("intro"))
root = results_root()
source = st.radio(say("source"), SOURCES, key="census_source", horizontal=True,
                  format_func={s: say(f"source_{s}") for s in SOURCES}.get)
name = None
if source == "saved":
    folder = pick_saved(root)
else:
    name = model_picker("census_model", kinds=("encoder", "decoder"), default="minilm")
    st.caption(say("kinds_note"))
    picked = pick_corpus(source) if name is not None else None
    folder = run_or_find(root, name, *picked) if picked is not None else None
bigger_runs(root, name)
if folder is None:
    st.stop()
try:
    result = load_census(folder)
except InputError as exc:
    st.error(say("bad_folder", msg=str(exc)))
    st.stop()
show_census(result)
