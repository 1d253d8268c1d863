"""`python -m engine`: the listing, the NPZ it writes, one-line errors with exit 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import needs_minilm


def run(*args):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                          text=True, timeout=300)


def test_models_lists_every_model_with_install_state():
    out = run("models")
    assert out.returncode == 0
    for name in ("minilm", "gemma3-270m", "seq2seq-mha", "transformer-base"):
        assert name in out.stdout
    assert "kv_heads" in out.stdout.splitlines()[0]


def test_attention_writes_the_documented_npz(tmp_path):
    path = tmp_path / "a.npz"
    out = run("attention", "--model", "transformer-base", "--text", "the cat sat",
              "--target", "le chat", "--out", str(path))
    assert out.returncode == 0, out.stderr
    with np.load(path, allow_pickle=False) as data:
        assert list(data["tokens"]) == ["the", "cat", "sat"]
        assert list(data["target_tokens"]) == ["[BOS]", "le", "chat"]
        assert data["encoder.self.0"].shape == (8, 3, 3)
        assert data["decoder.cross.5"].shape == (8, 3, 3)
        assert data["decoder.self.0"].dtype == np.float32
        meta = json.loads(str(data["meta"]))
    assert meta["model"] == "transformer-base" and meta["truncated"] is False


@needs_minilm
def test_attention_with_kv_heads_on_minilm(tmp_path):
    path = tmp_path / "m.npz"
    out = run("attention", "--model", "minilm", "--text", "hello world", "--kv-heads", "3",
              "--out", str(path))
    assert out.returncode == 0, out.stderr
    with np.load(path) as data:
        assert data["encoder.self.5"].shape == (12, 4, 4)
        assert json.loads(str(data["meta"]))["settings"]["kv_heads"] == 3


@pytest.mark.parametrize("args", [
    ["attention", "--model", "transformer-base", "--text", "", "--out", "x.npz"],
    ["attention", "--model", "transformer-base", "--text", "   ", "--out", "x.npz"],
    ["attention", "--model", "transformer-base", "--text", "a", "--kv-heads", "3",
     "--out", "x.npz"],
    ["attention", "--model", "nope", "--text", "a", "--out", "x.npz"],
    ["attention", "--model", "transformer-base", "--text", "a", "--out", "x.txt"],
    ["attention", "--model", "transformer-base", "--text", "a", "--window", "0",
     "--out", "x.npz"],
    ["attention", "--model", "transformer-base", "--text", "a", "--device", "tpu",
     "--out", "x.npz"],
    ["attention", "--text", "a"],
    ["frobnicate"],
])
def test_bad_input_exits_2_with_one_line(args, tmp_path):
    out = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120,
                         env={"PYTHONPATH": str(__import__("pathlib").Path.cwd())})
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
