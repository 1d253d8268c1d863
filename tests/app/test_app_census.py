"""AppTest of the Census page: it runs a census of the bundled corpus on MiniLM with the
progress bar's callback, shows what the saved files hold (maps, types, one row per head), a
head's per-text values equal viz/metrics.py on the engine's own maps of each text, loads a
census the command line wrote, opens a head on the Attention page with its best text, and
turns a missing model or a bad upload into a message, never an exception."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import engine
from app_pages.census import runner
from app_pages.census.runner import MAX_APP_TEXTS, UploadProblem, run_into, save_upload
from app_pages.census.text import CENSUS_TEXT
from engine.__main__ import main as engine_main
from engine.census.corpus import read_corpus
from engine.census.settings import CensusSettings
from engine.models.registry import MODELS
from tests import app_helpers
from viz.figures.census import TYPES
from viz.metrics import head_metric_arrays

PAGE = "app_pages/census/page.py"
pytestmark = pytest.mark.skipif(not MODELS["minilm"].is_installed(),
                                reason="minilm is not installed")


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    """The page's results folder, in tmp_path (the page reads the variable on every run)."""
    monkeypatch.setenv("ATTENTION_STUDIO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "census"


def grid(heads: pd.DataFrame, column: str) -> np.ndarray:
    out = np.full((heads["layer"].max() + 1, heads["head"].max() + 1), np.nan)
    out[heads["layer"], heads["head"]] = heads[column]
    return out


def heat_z(at, key: str) -> np.ndarray:
    heat = app_helpers.figure(at, key).data[0]
    return np.array([[np.nan if v is None else v for v in row] for row in heat.z], dtype=float)


def texts_of(at, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def test_chinese_text_uses_full_width_punctuation():
    """中文 strings: ，：；？！（） outside format fields and code spans, never , : ; ? ! ( )."""
    bad = {k: zh for k, (_, zh) in CENSUS_TEXT.items()
           if re.search(r"[,;:?!()]", re.sub(r"\{[^}]*\}|`[^`]*`", "", zh))}
    assert not bad
    assert "，" in CENSUS_TEXT["intro"][1] and "：" in CENSUS_TEXT["title"][1]


def test_the_progress_callback_counts_every_text_and_token(tmp_path):
    """What feeds st.progress: from (0, n, 0) up to (n, n, every token), never backwards."""
    calls = []
    model = engine.load("minilm", "auto")
    folder = tmp_path / "run"
    settings = CensusSettings(model="minilm", max_texts=7, batch_size=3)
    manifest = run_into(folder, settings, model, lambda *a: calls.append(a))
    assert calls[0] == (0, 7, 0) and calls[-1] == (7, 7, manifest["n_tokens"])
    assert [c[0] for c in calls] == sorted(c[0] for c in calls) and len(calls) == 4  # 3+3+1
    assert (folder / "manifest.json").is_file() and [p.name for p in tmp_path.iterdir()] == [
        "run"]  # the work folder was renamed into place
    with pytest.raises(ValueError, match=f"at most {MAX_APP_TEXTS}"):
        run_into(tmp_path / "big", CensusSettings(model="minilm", max_texts=MAX_APP_TEXTS + 1),
                 model, lambda *a: None)


def test_uploads_are_capped_and_kept_by_their_hash(results):
    for name, data, key in (("a.pdf", b"x", "upload_type"), ("a.txt", b" \n", "upload_empty"),
                            ("a.txt", b"x" * (5 * 2**20 + 1), "upload_too_big")):
        with pytest.raises(UploadProblem) as info:
            save_upload(name, data)
        assert info.value.key == key
    first = save_upload("../../evil name.TXT", b"one\ntwo\n")
    assert first == save_upload("other.txt", b"one\ntwo\n")  # same bytes, same file
    assert first.suffix == ".txt" and ".." not in first.name and first.read_bytes() == \
        b"one\ntwo\n"


def test_runs_the_bundled_corpus_and_opens_a_head_on_the_attention_page(results):
    at = app_helpers.open_page(PAGE, census_n=5, census_probe=False)
    assert not app_helpers.specs(at)  # nothing shown before the run
    at.button(key="census_run").click()
    app_helpers.rerun(at)
    (folder,) = [p for p in results.iterdir() if (p / "manifest.json").is_file()]
    assert any(str(folder) in s for s in texts_of(at, "success"))
    assert not [p for p in results.iterdir() if p.name.startswith(".")]  # no leftovers
    heads = pd.read_parquet(folder / "heads.parquet")
    texts = pd.read_parquet(folder / "texts.parquet")
    assert json.loads((folder / "manifest.json").read_text())["n_texts"] == 5
    model = engine.load("minilm", "auto")
    n_heads = model.config.n_encoder_layers * model.config.n_heads
    assert len(at.dataframe[0].value) == len(heads) == n_heads == 72

    # the maps draw the saved means and types, cell by cell
    np.testing.assert_allclose(heat_z(at, "census_map"), grid(heads, "entropy_mean"), atol=0)
    codes = heat_z(at, "census_types").astype(int)
    assert [[TYPES[c] for c in row] for row in codes] == [
        list(heads[heads["layer"] == layer].sort_values("head")["type"])
        for layer in range(6)]

    # one head's per-text values = viz/metrics.py on the engine's maps of each text alone
    at.session_state["census_layer"] = 3
    at.session_state["census_head"] = 5
    app_helpers.rerun(at)
    assert any("already saved" in s for s in texts_of(at, "caption"))  # not run again
    assert not [b for b in at.button if b.key == "census_run"]
    at.session_state["census_rank"] = "prev_token"
    app_helpers.rerun(at)
    box = app_helpers.figure(at, "census_dist").data[0]
    corpus = read_corpus(None, "text", 5).texts
    want = {i: float(head_metric_arrays(model.attend(t)["encoder.self.3"])["prev_token"][5])
            for i, t in enumerate(corpus)}
    got = dict(zip(np.asarray(box.customdata, int).tolist(), np.asarray(box.x, float),
                   strict=True))
    assert sorted(got) == sorted(want)
    np.testing.assert_allclose([got[i] for i in sorted(got)], [want[i] for i in sorted(want)],
                               atol=1e-5)
    best = max(want, key=want.get)
    assert texts_of(at, "code")[-1] == corpus[best]
    per_text = texts[(texts["layer"] == 3) & (texts["head"] == 5)]
    assert per_text.loc[per_text["prev_token"].idxmax(), "text"] == corpus[best]

    # the click-through sets the Attention page's widgets and switches to it
    at.button(key="census_open").click()
    app_helpers.rerun(at)
    state = at.session_state
    assert (state["attn_model"], state["attn_text"], state["attn_kind"], state["attn_layer"],
            state["attn_head"]) == ("minilm", corpus[best], "encoder.self", 3, 5)
    assert at.title[0].value == "Where does each head look?"
    assert at.text_area(key="attn_text").value == corpus[best]


def test_loads_a_census_the_command_line_saved_and_says_when_its_model_is_missing(
        results, monkeypatch):
    out = results / "from-cli"
    assert engine_main(["census", "--model", "minilm", "--max-texts", "4", "--probe",
                        "induction", "--out", str(out)]) == 0
    heads = pd.read_parquet(out / "heads.parquet")
    at = app_helpers.open_page(PAGE, census_source="saved")
    assert at.selectbox(key="census_saved").value == str(out)
    assert len(at.dataframe[0].value) == len(heads) == 72
    assert "induction score (probe)" in at.selectbox(key="census_metric").options
    at.session_state["census_metric"] = "induction"
    app_helpers.rerun(at)
    np.testing.assert_allclose(heat_z(at, "census_map"), grid(heads, "induction"), atol=0)
    assert at.button(key="census_open")  # minilm is here: the click-through is offered

    # the same census of a model this app does not register, or has not installed
    for folder, model in (("unknown", "no-such-model"), ("missing", "smollm2-135m")):
        shutil.copytree(out, results / folder)
        manifest = json.loads((results / folder / "manifest.json").read_text())
        (results / folder / "manifest.json").write_text(json.dumps({**manifest,
                                                                     "model": model}))
    entry = MODELS["smollm2-135m"]
    monkeypatch.setitem(MODELS, "smollm2-135m",
                        dataclasses.replace(entry, is_installed=lambda: False))
    app_helpers.rerun(at)  # the picker now lists the copies
    at.session_state["census_saved"] = str(results / "unknown")
    app_helpers.rerun(at)
    assert any("no-such-model" in s for s in texts_of(at, "info"))
    at.session_state["census_saved"] = str(results / "missing")
    app_helpers.rerun(at)
    assert any("smollm2-135m is not installed" in s for s in texts_of(at, "warning"))
    assert entry.install in texts_of(at, "code")
    assert not [b for b in at.button if b.key == "census_open"]


def test_uploads_empty_bad_and_good_files(results, monkeypatch):
    at = app_helpers.open_page(PAGE, census_source="upload", census_n=2)
    assert any("Upload a corpus file" in s for s in texts_of(at, "info"))
    uploader = at.file_uploader(key="census_upload")
    assert sorted(uploader.allowed_type) == [".csv", ".jsonl", ".parquet", ".txt"]
    uploader.set_value(("empty.txt", b"", "text/plain"))
    app_helpers.rerun(at)
    assert any("empty.txt is empty" in s for s in texts_of(at, "warning"))
    at.file_uploader(key="census_upload").set_value(("c.jsonl", b'{"body": "x"}\n',
                                                     "application/json"))
    app_helpers.rerun(at)
    assert any("no field 'text'" in s for s in texts_of(at, "warning"))
    at.file_uploader(key="census_upload").set_value(
        ("c.csv", b"text\nThe first small text.\nA second one here.\nAnd a third.\n",
         "text/csv"))
    app_helpers.rerun(at)

    def boom(*args, **kwargs):
        raise RuntimeError("the engine broke")

    with monkeypatch.context() as patch:  # a failing run is a message and leaves nothing
        patch.setattr(runner, "run_census", boom)
        at.button(key="census_run").click()
        app_helpers.rerun(at)
    assert any("RuntimeError: the engine broke" in s for s in texts_of(at, "error"))
    assert not list(results.iterdir())
    at.button(key="census_run").click()
    app_helpers.rerun(at)
    (folder,) = [p for p in results.iterdir() if (p / "manifest.json").is_file()]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["n_texts"] == 2 and manifest["corpus"]["format"] == "csv"
    assert len(at.dataframe[0].value) == 72
    at.session_state["lang"] = "zh"
    app_helpers.rerun(at)
    assert at.title[0].value == CENSUS_TEXT["title"][1]
    columns = list(at.dataframe[0].value.columns)
    assert len(columns) == 17 and not [c for c in columns if re.search(r"[a-z]{2,}", c)]
    assert app_helpers.title(app_helpers.chart(at, "头的类型")) == "头的类型"
    legend = [t.name for t in app_helpers.figure(at, "census_types").data[1:]]
    assert legend == [CENSUS_TEXT[f"type_{t}"][1] for t in TYPES]
