"""The head census end to end: files, numbers against an independent path (transformers'
maps of each text alone, summarised by viz/metrics.py), resume after an interruption, corpus
formats and every error of issue 16 as one line with exit 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from engine.__main__ import main as engine_main
from engine.census import corpus as corpus_mod
from engine.census import rows as rows_mod
from engine.census import run as run_mod
from viz.metrics import METRICS, head_metric_arrays

transformers = pytest.importorskip("transformers")
from tests.engine.test_hf_families import SMALL, WORDS, causal_lm, write_tokenizer  # noqa: E402

TEXTS = [" ".join(WORDS[(3 * i + 5 * j) % 40] for j in range(4 + (7 * i) % 13))
         for i in range(11)]  # 11 texts of 4 to 16 words: batches of 3 pad them


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random Llama with GQA (4 query heads, 2 K/V heads) saved by transformers."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    ref = causal_lm(transformers.LlamaConfig(**SMALL, max_position_embeddings=128))
    ref.save_pretrained(str(folder))
    write_tokenizer(folder)
    return folder, ref


def write_txt(path, texts, blank_every=0):
    lines = []
    for i, t in enumerate(texts):
        lines.append(t)
        if blank_every and i % blank_every == 0:
            lines.append("   ")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cli(*args) -> int:
    try:
        return engine_main(["census", *map(str, args)])
    except SystemExit as exc:
        return exc.code


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and "\r" not in ln]
    assert "Traceback" not in err
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_census_equals_transformers_maps_summarised_by_viz(tiny, tmp_path, capsys):
    folder, ref = tiny
    corpus = write_txt(tmp_path / "c.txt", TEXTS, blank_every=4)
    assert cli("--model", folder, "--corpus", corpus, "--batch-size", 3, "--probe",
               "induction", "--out", tmp_path / "out") == 0
    assert "wrote" in capsys.readouterr().out
    heads = pd.read_parquet(tmp_path / "out" / "heads.parquet")
    texts = pd.read_parquet(tmp_path / "out" / "texts.parquet")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert not (tmp_path / "out" / "parts").exists()

    # the oracle: each text alone (no padding) through transformers, metrics from viz
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    per_text = {}
    for text_id, text in enumerate(TEXTS):
        ids = tok.encode(text).ids
        with torch.no_grad():
            attn = ref(torch.tensor([ids]), output_attentions=True).attentions
        for layer, a in enumerate(attn):
            per_text[text_id, layer] = head_metric_arrays(a[0].numpy(), self_attention=True)
        assert (texts.loc[texts.text_id == text_id, "n_tokens"] == len(ids)).all()
    for m in METRICS:
        for layer in range(SMALL["num_hidden_layers"]):
            stack = np.stack([per_text[i, layer][m] for i in range(len(TEXTS))])  # [N, H]
            row = heads[(heads.block == "decoder.self") & (heads.layer == layer)]
            np.testing.assert_allclose(row[f"{m}_mean"], stack.mean(0), atol=2e-6, err_msg=m)
            np.testing.assert_allclose(row[f"{m}_std"], stack.std(0), atol=2e-6, err_msg=m)
            got = texts[texts.layer == layer].pivot(index="text_id", columns="head", values=m)
            np.testing.assert_allclose(got.to_numpy(), stack, atol=2e-6, err_msg=m)

    n_heads = SMALL["num_hidden_layers"] * SMALL["num_attention_heads"]
    assert len(heads) == n_heads and len(texts) == n_heads * len(TEXTS)
    assert list(heads.kv_head[:4]) == [0, 0, 1, 1]  # 2 query heads share each K/V head
    assert (heads.n_texts == len(TEXTS)).all() and heads.type.isin(
        ["induction", "previous-token", "sink", "self", "local", "broad", "mixed"]).all()
    assert heads.induction.between(0, 1).all()
    for col in ("block", "layer", "head", "kv_head", "n_texts", "induction", "type",
                *(f"{m}_{s}" for m in METRICS for s in ("mean", "std"))):
        assert col in heads.columns and col in manifest["columns"]["heads.parquet"]
    assert {"text_id", "block", "layer", "head", *METRICS} <= set(texts.columns)
    assert manifest["n_texts"] == len(TEXTS) and manifest["corpus"]["blank_skipped"] == 3
    assert manifest["weights_hash"] and len(manifest["corpus"]["sha256"]) == 64
    assert manifest["engine"] == "local" and manifest["versions"]["torch"]
    assert manifest["truncated"]["count"] == 0 and manifest["elapsed_s"] > 0


def test_resume_after_an_interruption_recomputes_only_the_unfinished(tiny, tmp_path,
                                                                       monkeypatch, capsys):
    folder, _ = tiny
    corpus = write_txt(tmp_path / "c.txt", TEXTS)
    args = ["--model", folder, "--corpus", corpus, "--batch-size", 2]
    assert cli(*args, "--out", tmp_path / "whole") == 0
    real, calls = rows_mod.batch_rows, []

    def interrupted_after_three(model, texts, ids):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(list(ids))
        return real(model, texts, ids)

    monkeypatch.setattr(rows_mod, "batch_rows", interrupted_after_three)
    out = tmp_path / "cut"
    assert cli(*args, "--out", out) == 2
    assert "--resume" in one_error_line(capsys)
    assert len(list((out / "parts").glob("part-*.parquet"))) == 3
    assert not any((out / f).exists() for f in ("heads.parquet", "manifest.json"))

    assert cli(*args, "--out", out) == 2  # without --resume: refused, nothing overwritten
    assert "--resume" in one_error_line(capsys)

    first = [i for batch in calls for i in batch]
    calls.clear()
    monkeypatch.setattr(rows_mod, "batch_rows", lambda m, t, ids: calls.append(list(ids))
                        or real(m, t, ids))
    assert cli(*args, "--out", out, "--resume") == 0
    again = [i for batch in calls for i in batch]
    assert sorted(first + again) == list(range(len(TEXTS))) and not set(first) & set(again)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed_texts"] == len(first)
    for name in ("heads.parquet", "texts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name),
                                      pd.read_parquet(tmp_path / "whole" / name), atol=1e-6)
    assert cli(*args, "--out", out) == 2  # a finished census is never overwritten
    assert "finished census" in one_error_line(capsys)


def test_a_text_over_the_models_limit_is_cut_and_counted(tmp_path, capsys):
    import engine

    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("MiniLM's package is not installed")
    long = " ".join(["word"] * 600)  # MiniLM reads 512 tokens
    corpus = write_txt(tmp_path / "c.txt", ["A short one.", long, "Another."])
    assert cli("--model", "minilm", "--corpus", corpus, "--out", tmp_path / "o") == 0
    assert "1 cut to 512 tokens" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["truncated"] == {"count": 1, "text_ids": [1]}
    texts = pd.read_parquet(tmp_path / "o" / "texts.parquet")
    assert (texts.loc[texts.text_id == 1, "n_tokens"] == 512).all()
    assert texts.loc[texts.text_id == 1, "truncated"].all()
    assert not texts.loc[texts.text_id != 1, "truncated"].any()


def test_a_text_over_the_record_budget_is_skipped_and_counted(tiny, tmp_path, monkeypatch,
                                                              capsys):
    """Its batch is retried one text at a time, so its neighbours are still recorded."""
    import engine.api

    folder, _ = tiny
    monkeypatch.setattr(engine.api, "MAX_RECORD_BYTES", 2 * 4 * 40 * 40 * 4 * 3)  # ~40 tokens
    long = " ".join(WORDS[i % 40] for i in range(60))
    corpus = write_txt(tmp_path / "c.txt", [TEXTS[0], long, TEXTS[1]])
    assert cli("--model", folder, "--corpus", corpus, "--out", tmp_path / "o") == 0
    assert "1 skipped" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["skipped_over_record_budget"] == {"count": 1, "text_ids": [1]}
    texts = pd.read_parquet(tmp_path / "o" / "texts.parquet")
    assert sorted(texts.text_id.unique()) == [0, 2]


def test_undecodable_bytes_are_replaced_and_counted(tiny, tmp_path, capsys):
    folder, _ = tiny
    path = tmp_path / "c.txt"
    path.write_bytes(b"w1 w2 \xff w3\nw4 \xc3\x28 w5 \xef\xbf\xbd\nw6 w7\n")  # two bad, one U+FFFD
    c = corpus_mod.read_corpus(path)
    assert c.undecodable == 2 and c.texts[0] == "w1 w2 \ufffd w3"
    assert cli("--model", folder, "--corpus", path, "--out", tmp_path / "o") == 0
    assert "2 undecodable byte sequences replaced" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["corpus"]["undecodable_bytes_replaced"] == 2


@pytest.mark.parametrize("name,content,says", [
    ("empty.txt", b"", "no texts"),
    ("blank.txt", b"\n  \n\t\n", "all 3 are blank"),
    ("no_col.csv", b"id,body\n1,hello\n", "no column 'text' (columns: id, body"),
    ("no_field.jsonl", b'{"body": "hello"}\n', "line 1: no field 'text'"),
    ("bad.jsonl", b'{"text": "ok"}\nnot json\n', "line 2: not JSON"),
    ("num.jsonl", b'{"text": 3}\n', "line 1: the text is int"),
    ("c.docx", b"x", "unknown corpus format '.docx'"),
    ("bad.parquet", b"PAR1 not really", "not a Parquet file"),
])
def test_corpus_errors_exit_2_with_one_line_naming_the_file(tiny, tmp_path, capsys, name,
                                                            content, says):
    path = tmp_path / name
    path.write_bytes(content)
    assert cli("--model", tiny[0], "--corpus", path, "--out", tmp_path / "o") == 2
    line = one_error_line(capsys)
    assert says in line and str(path) in line
    assert not (tmp_path / "o").exists()  # nothing written


def test_missing_corpus_file_and_bad_options_exit_2(tiny, tmp_path, capsys):
    for args, says in [(["--corpus", tmp_path / "nope.txt"], "cannot read the corpus"),
                       (["--batch-size", 0], "must be at least 1"),
                       (["--engine", "spark"], "invalid choice"),
                       (["--probe", "copying"], "invalid choice")]:
        assert cli("--model", tiny[0], *args, "--out", tmp_path / "o") == 2
        assert says in one_error_line(capsys)


def test_a_missing_model_or_an_encoder_decoder_is_one_line(tmp_path, capsys):
    assert cli("--model", "seq2seq-mha", "--out", tmp_path / "o") == 2
    assert "encoder-decoder" in one_error_line(capsys)
    assert cli("--model", "no-such-model", "--out", tmp_path / "o2") == 2
    one_error_line(capsys)


def test_every_corpus_format_reads_the_same_texts(tmp_path):
    texts = ["first text", "第二个文本", "a, quoted \"third\""]
    write_txt(tmp_path / "c.txt", texts, blank_every=1)
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"body": t, "n": i})
                                                for i, t in enumerate(texts)) + "\n\n")
    frame = pd.DataFrame({"body": texts, "n": [1, 2, 3]})
    frame.to_csv(tmp_path / "c.csv", index=False)
    frame.to_parquet(tmp_path / "c.parquet")
    assert corpus_mod.read_corpus(tmp_path / "c.txt").texts == texts
    for ext in ("jsonl", "csv", "parquet"):
        c = corpus_mod.read_corpus(tmp_path / f"c.{ext}", field="body")
        assert c.texts == texts and c.format == ext and c.field == "body"
    assert corpus_mod.read_corpus(tmp_path / "c.csv", field="body", max_texts=2).texts == \
        texts[:2]


def test_the_bundled_corpus_holds_hundreds_of_english_and_chinese_sentences():
    c = corpus_mod.read_corpus(None)
    chinese = [t for t in c.texts if any("\u4e00" <= ch <= "\u9fff" for ch in t)]
    assert len(c.texts) >= 300 and len(chinese) >= 100 and len(c.texts) - len(chinese) >= 100
    assert c.undecodable == 0 and c.blank_skipped == 0
    assert len(set(c.texts)) == len(c.texts)


def test_a_census_of_minilm_on_the_bundled_corpus(tmp_path, capsys):
    """The real default path: MiniLM, the bundled corpus (first 16 texts), the probe."""
    import engine

    if not engine.MODELS["minilm"].is_installed():
        pytest.skip("MiniLM's package is not installed")
    assert cli("--model", "minilm", "--max-texts", 16, "--probe", "induction", "--out",
               tmp_path / "m") == 0
    heads = pd.read_parquet(tmp_path / "m" / "heads.parquet")
    assert len(heads) == 72 and (heads.block == "encoder.self").all()
    assert not heads[[c for c in heads.columns if c.endswith("_mean")]].isna().any().any()
    m = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert m["probe"]["bos_id"] == 101 and m["n_texts"] == 16  # [CLS] starts the probe
    row = heads[(heads.layer == 0) & (heads["head"] == 2)].iloc[0]  # MiniLM's previous-token head
    assert row.prev_token_mean > 0.9 and row.type == "previous-token"
    assert math.isclose(row.entropy_uniform, float(np.mean(
        np.log(pd.read_parquet(tmp_path / "m" / "texts.parquet")
               .drop_duplicates("text_id").n_tokens))), rel_tol=1e-9)


def test_the_real_command_line_is_one_line_with_exit_2(tiny, tmp_path):
    """`python -m engine census` in a fresh process: a bad corpus is one line, exit 2."""
    import subprocess
    import sys

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    bad = subprocess.run([sys.executable, "-m", "engine", "census", "--model", str(tiny[0]),
                          "--corpus", str(empty), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no texts" in bad.stderr


def test_only_the_ray_path_imports_ray():
    """ray in ray_run.py alone, and ray_run imported only inside run_census's ray branch:
    the app and the other commands never pay for it."""
    import ast
    from pathlib import Path

    folder = Path(run_mod.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = [(node, a.name if isinstance(node, ast.Import) else node.module or "")
                 for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                 for a in (node.names if isinstance(node, ast.Import) else [node])]
        top = {n for node, n in names if node.col_offset == 0}
        assert not any(n == "ray" or n.startswith("ray.") for n in top), path.name
        if path.name != "ray_run.py":
            assert not any(n.startswith("ray") for _, n in names), path.name
        if path.name != "run.py":
            assert not any(n == "engine.census.ray_run" for _, n in names), path.name
    assert any(n == "engine.census.ray_run" and node.col_offset > 0
               for node, n in [(node, node.module) for node in ast.walk(
                   ast.parse((folder / "run.py").read_text()))
                   if isinstance(node, ast.ImportFrom)])


def test_a_preloaded_model_and_a_progress_callback(tiny, tmp_path):
    """The app's way in: its cached model, and (done, total, tokens) as texts finish."""
    import engine

    model = engine.load(str(tiny[0]), device="cpu")
    corpus = write_txt(tmp_path / "c.txt", TEXTS[:5])
    seen = []
    manifest = run_mod.run_census(
        run_mod.CensusSettings(model=str(tiny[0]), corpus=str(corpus), batch_size=2),
        tmp_path / "o", model=model, on_progress=lambda *a: seen.append(a))
    assert [s[0] for s in seen] == [0, 2, 4, 5] and all(s[1] == 5 for s in seen)
    assert seen[-1][2] == manifest["n_tokens"]
