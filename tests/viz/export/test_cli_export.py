"""`python -m cli.export`: exit 2 with one line on bad arguments; real engine round trips."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cli.export import main, regenerate
from viz import export as ex

ROOT = Path(__file__).resolve().parents[3]
HAS_ENGINE = importlib.util.find_spec("engine") is not None and (ROOT / "engine/api.py").exists()
needs_engine = pytest.mark.skipif(not HAS_ENGINE, reason="engine/api.py not written yet")
TEXT, TARGET = "the cat sat on the mat", "le chat"


@pytest.mark.parametrize("argv, message", [
    (["--model", "m", "--text", "t"], "--out"),
    (["--model", "m", "--text", "t", "--out", "x.gif"], "format"),
    (["--model", "m", "--text", "t", "--out", "x.png", "--head", "1"], "--layer"),
    (["--model", "m", "--text", "t", "--out", "x.png", "--scale", "0"], "--scale"),
    (["--model", "m", "--text", "t", "--out", "x.png", "--block", "bad"], "block"),
    (["--model", "m", "--text", "t", "--out", "x.png", "--layer", "x"], "layer"),
    (["--model", "m", "--text", "t", "--out", "x.png", "frobnicate"], "unrecognized arguments"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@needs_engine
def test_subprocess_bad_layer_and_model(tmp_path):
    for extra in (["--model", "transformer-base", "--layer", "99"], ["--model", "no-such-model"]):
        cmd = [sys.executable, "-m", "cli.export", "--text", "a b", "--target", "x",
               "--out", str(tmp_path / "x.csv"), *extra]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, res.stderr
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


@needs_engine
def test_cli_csv_equals_engine_numbers(tmp_path):
    import engine

    out = tmp_path / "cross.csv"
    cmd = [sys.executable, "-m", "cli.export", "--model", "transformer-base", "--text", TEXT,
           "--target", TARGET, "--block", "decoder.cross", "--layer", "1", "--head", "2",
           "--out", str(out)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rec = engine.load("transformer-base", device="cpu").attend(TEXT, target=TARGET)
    a = rec["decoder.cross.1"][2]
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == a.size
    got = np.array([np.float32(r["weight"]) for r in rows]).reshape(a.shape)
    np.testing.assert_array_equal(got, a)
    assert [r["key_token"] for r in rows[: a.shape[1]]] == rec.tokens
    assert rows[0]["query_token"] == rec.target_tokens[0]


@needs_engine
def test_cli_bundle_regenerates_from_manifest(tmp_path):
    out = tmp_path / "layer.zip"
    argv = ["--model", "transformer-base", "--text", TEXT, "--target", TARGET,
            "--block", "encoder.self", "--layer", "0", "--out", str(out)]
    assert main(argv) == 0
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["source"]["model"] == "transformer-base"
        assert manifest["source"]["weights_hash"] and manifest["source"]["engine_version"]
        assert manifest["selection"]["keys"] == ["encoder.self.0"]
        names = {f["name"] for f in manifest["files"]}
        assert {"attention.npz", "attention.csv", "figures/encoder.self.html"} <= names
        if ex.chromium_available():
            assert "figures/encoder.self.0.h7.png" in names
        for name in ("attention.npz", "attention.csv"):
            assert regenerate(manifest, name) == zf.read(name), name
