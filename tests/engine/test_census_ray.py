"""`--engine ray`: the same census through Ray Data (two CPU actors, one model each) equals
`--engine local` within 1e-6; a Ray that cannot start is one line suggesting --engine local.
Skipped where ray is not installed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.engine.test_census import TEXTS, cli, one_error_line, tiny, write_txt  # noqa: F401

ray = pytest.importorskip("ray")


def test_ray_with_two_workers_equals_local(tiny, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    texts = (TEXTS * 2)[:20]
    texts = [f"{t} w{i % 40}" for i, t in enumerate(texts)]  # 20 distinct texts
    corpus = write_txt(tmp_path / "c.txt", texts)
    args = ["--model", tiny[0], "--corpus", corpus, "--batch-size", 4, "--probe", "induction"]
    assert cli(*args, "--out", tmp_path / "local") == 0
    assert cli(*args, "--engine", "ray", "--workers", 2, "--out", tmp_path / "ray") == 0
    capsys.readouterr()
    for name, keys in (("texts.parquet", ["text_id", "block", "layer", "head"]),
                       ("heads.parquet", ["block", "layer", "head"])):
        local = pd.read_parquet(tmp_path / "local" / name).sort_values(keys)
        other = pd.read_parquet(tmp_path / "ray" / name).sort_values(keys)
        assert len(local) == len(other) > 0
        pd.testing.assert_frame_equal(local.reset_index(drop=True),
                                      other.reset_index(drop=True), check_exact=False,
                                      atol=1e-6, rtol=0)
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["engine"] == "ray" and manifest["settings"]["workers"] == 2
    assert manifest["n_texts"] == 20 and manifest["versions"]["ray"] == ray.__version__
    assert not ray.is_initialized()  # the census shut down the Ray it started


def test_a_ray_that_fails_to_start_is_one_line_suggesting_local(tiny, tmp_path,  # noqa: F811
                                                               monkeypatch, capsys):
    def no_cluster(*args, **kwargs):
        raise ConnectionError("Could not find any running Ray instance at 10.0.0.9:6379")

    monkeypatch.setattr(ray, "init", no_cluster)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    corpus = write_txt(tmp_path / "c.txt", TEXTS[:3])
    out = tmp_path / "o"
    assert cli("--model", tiny[0], "--corpus", corpus, "--engine", "ray", "--out", out) == 2
    line = one_error_line(capsys)
    assert "Ray failed to start" in line and "10.0.0.9:6379" in line
    assert "--engine local" in line
    assert not (out / "manifest.json").exists() and not (out / "heads.parquet").exists()
