"""Opening Hugging Face checkpoints: the cache layout, shards, discovery, the command line,
and every error of issue 13's Errors section (one message naming what is wrong)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import engine
from engine.errors import InputError
from engine.models import hf, registry
from tests.engine.test_hf_families import SMALL, TEXT, causal_lm, check_decoder, write_tokenizer

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny Llama checkpoint folder (config.json, model.safetensors, tokenizer.json)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    ref = causal_lm(transformers.LlamaConfig(**SMALL, max_position_embeddings=64))
    ref.save_pretrained(str(folder))
    write_tokenizer(folder)
    return folder


@pytest.fixture(autouse=True)
def no_stray_checkpoints(monkeypatch, tmp_path):
    """Each test sees only the cache and model folders it makes."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("ATTENTION_STUDIO_MODELS", raising=False)


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def fake_cache(root: Path, repo_id: str, src: Path, revision: str = "0123abcd" * 5) -> Path:
    """huggingface_hub's layout: refs/main → snapshots/<rev>/<file> → ../../blobs/<sha256>."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for f in src.iterdir():
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(Path("../../blobs") / blob.name)
    return snap


def maps_of(path: str) -> dict:
    return engine.load(path, device="cpu").attend(TEXT).maps


# -- where checkpoints are ------------------------------------------------------------
def test_a_repo_id_opens_from_the_hf_cache(tiny, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snap = fake_cache(cache, "acme/tiny-llama", tiny)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert hf.cached_snapshot("acme/tiny-llama") == snap
    lm = engine.load("acme/tiny-llama", device="cpu")
    assert lm.name == "acme/tiny-llama"
    assert lm.weights_hash.startswith("sha256:")  # the blob's name is the file's sha256
    want = maps_of(str(tiny))
    got = lm.attend(TEXT).maps
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_the_cache_falls_back_to_hf_home_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert hf.hub_cache() == tmp_path / "hfhome" / "hub"
    monkeypatch.delenv("HF_HOME")
    assert hf.hub_cache() == Path.home() / ".cache" / "huggingface" / "hub"


def test_a_repo_id_not_in_the_cache_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(InputError) as info:
        engine.load("acme/absent", device="cpu")
    assert "acme/absent" in str(info.value)
    assert str(tmp_path / "hub" / "models--acme--absent") in str(info.value)


def test_a_sharded_checkpoint_opens_like_a_single_file(tmp_path):
    ref = causal_lm(transformers.LlamaConfig(**SMALL, max_position_embeddings=64))
    ref.save_pretrained(str(tmp_path), max_shard_size="20KB")
    shards = sorted(tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "model.safetensors.index.json").is_file()
    write_tokenizer(tmp_path)
    check_decoder(ref, tmp_path)


def test_bf16_weights_run_in_float32_on_the_cpu(tmp_path):
    import copy

    ref = causal_lm(transformers.LlamaConfig(**SMALL, max_position_embeddings=64))
    with torch.no_grad():  # the reference holds the bf16-rounded values, in float32
        for p in ref.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    copy.deepcopy(ref).to(torch.bfloat16).save_pretrained(str(tmp_path))
    write_tokenizer(tmp_path)
    lm = engine.load(str(tmp_path), device="cpu")
    assert lm.transformer.lm_head.weight.dtype == torch.float32
    check_decoder(ref, tmp_path)
    with pytest.raises(InputError, match="CUDA"):
        engine.load(str(tmp_path), device="cpu", dtype="bfloat16")


# -- discovery --------------------------------------------------------------------------
def test_discover_lists_cache_and_model_folders_from_config_alone(tiny, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    fake_cache(cache, "acme/tiny-llama", tiny)
    roots = tmp_path / "mine"
    ok = copy_folder(tiny, roots / "ok")
    (ok / "model.safetensors").write_bytes(b"not read: facts come from config.json")
    odd = copy_folder(tiny, roots / "odd")
    cfg = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**cfg, "model_type": "mamba"}))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("ATTENTION_STUDIO_MODELS", f"{roots}:{tmp_path / 'missing'}")
    found = {c.name: c for c in hf.discover()}
    assert set(found) == {"acme/tiny-llama", str(ok), str(odd)}
    c = found["acme/tiny-llama"]
    assert c.where == "hf-cache" and c.size_bytes == (tiny / "model.safetensors").stat().st_size
    assert c.facts == {"kind": "decoder", "layers": "2", "heads": 4, "kv_heads": 2,
                       "positions": "rope"}
    assert found[str(ok)].facts["layers"] == "2"
    assert found[str(odd)].facts is None and found[str(odd)].model_type == "mamba"
    assert "not supported" in found[str(odd)].why


def test_cli_models_lists_registered_cached_and_folder_checkpoints(tiny, tmp_path, monkeypatch,
                                                                   capsys):
    from engine.__main__ import main

    cache = tmp_path / "hub"
    fake_cache(cache, "acme/tiny-llama", tiny)
    odd = copy_folder(tiny, tmp_path / "mine" / "odd")
    (odd / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("ATTENTION_STUDIO_MODELS", str(tmp_path / "mine"))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "minilm" in out and "transformer-base" in out
    line = next(x for x in out.splitlines() if x.startswith("acme/tiny-llama"))
    assert "decoder" in line and "2 × 4" in line and "rope" in line and "KB" in line
    odd_line = next(x for x in out.splitlines() if x.startswith(str(odd)))
    assert "unsupported" in odd_line and "'mamba'" in odd_line


# -- the command line ---------------------------------------------------------------------
def test_cli_attention_with_layers_text_file_and_stdin(tiny, tmp_path, monkeypatch, capsys):
    from engine.__main__ import main

    text_file = tmp_path / "in.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "a.npz"
    argv = ["attention", "--model", str(tiny), "--text-file", str(text_file), "--layers", "1",
            "--out", str(out)]
    assert main(argv) == 0
    with np.load(out, allow_pickle=False) as data:
        assert [k for k in data.files if k.startswith("decoder.")] == ["decoder.self.1"]
    monkeypatch.setattr(sys, "stdin", type("In", (), {"buffer": __import__("io").BytesIO(
        TEXT.encode())})())
    assert main(["attention", "--model", str(tiny), "--text-file", "-", "--layers",
                 "decoder.self.0,1", "--dtype", "float32", "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as data:
        assert sorted(k for k in data.files if k.startswith("decoder.")) == [
            "decoder.self.0", "decoder.self.1"]


@pytest.mark.parametrize("extra, says", [
    (["--layers", "x"], "--layers"),
    (["--layers", "7"], "no layer 7"),
    (["--text-file", "/nonexistent/in.txt"], "/nonexistent/in.txt"),
    (["--dtype", "bfloat16", "--device", "cpu"], "CUDA"),
])
def test_cli_attention_errors_are_one_line(tiny, tmp_path, capsys, extra, says):
    from engine.__main__ import main

    argv = ["attention", "--model", str(tiny), "--out", str(tmp_path / "a.npz"), *extra]
    if "--text-file" not in extra:
        argv += ["--text", TEXT]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err, err


def test_cli_over_budget_names_the_option_that_fixes_it(tiny, tmp_path, monkeypatch, capsys):
    from engine import api
    from engine.__main__ import main

    monkeypatch.setattr(api, "MAX_RECORD_BYTES", 1000)
    with pytest.raises(SystemExit):
        main(["attention", "--model", str(tiny), "--text", TEXT, "--out", str(tmp_path / "a.npz")])
    err = capsys.readouterr().err
    assert "--layers" in err and "layers=[" not in err, err


def test_every_cli_option_has_a_help_line(capsys):
    from engine.__main__ import main

    with pytest.raises(SystemExit):
        main(["attention", "--help"])
    options = capsys.readouterr().out.split("options:", 1)[1]
    blocks = {}
    for block in re.split(r"\n(?=  -)", options):
        names = re.findall(r"--[\w-]+", block.split("  ", 2)[1] if "  " in block else block)
        for name in names:
            blocks[name] = block
    for option in ("--model", "--text", "--text-file", "--target", "--mask", "--window",
                   "--kv-heads", "--layers", "--dtype", "--device", "--out"):
        assert option in blocks, option
        words = re.sub(r"--[\w-]+( [A-Z_]+|\s*\{[^}]*\})?,?", "", blocks[option]).split()
        assert len(words) >= 3, (option, blocks[option])


# -- errors (issue 13, "Errors") -----------------------------------------------------------
def test_an_unsupported_model_type_is_named_with_the_supported_list(tiny, tmp_path):
    folder = copy_folder(tiny, tmp_path / "m")
    (folder / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(InputError) as info:
        engine.load(str(folder), device="cpu")
    msg = str(info.value)
    assert "'mamba'" in msg and "llama" in msg and "t5" in msg and "gemma2" in msg


@pytest.mark.parametrize("missing", ["config.json", "tokenizer.json", "model.safetensors"])
def test_a_folder_missing_a_file_names_it(tiny, tmp_path, missing):
    folder = copy_folder(tiny, tmp_path / "m")
    (folder / missing).unlink()
    with pytest.raises(InputError, match=missing.replace(".", r"\.")):
        engine.load(str(folder), device="cpu")


def test_a_shard_index_pointing_at_a_missing_shard_names_it(tmp_path):
    ref = causal_lm(transformers.LlamaConfig(**SMALL, max_position_embeddings=64))
    ref.save_pretrained(str(tmp_path), max_shard_size="20KB")
    write_tokenizer(tmp_path)
    gone = sorted(tmp_path.glob("model-*.safetensors"))[-1]
    gone.unlink()
    with pytest.raises(InputError, match=gone.name):
        engine.load(str(tmp_path), device="cpu")


def test_a_corrupt_weights_file_names_it(tiny, tmp_path):
    folder = copy_folder(tiny, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])
    with pytest.raises(ValueError, match=str(weights)):
        engine.load(str(folder), device="cpu")


def test_a_wrong_shape_names_file_and_tensor(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = copy_folder(tiny, tmp_path / "m")
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    name = "model.layers.1.self_attn.k_proj.weight"
    tensors[name] = tensors[name][:-1].contiguous()
    save_file(tensors, str(weights))
    with pytest.raises(ValueError) as info:
        engine.load(str(folder), device="cpu")
    assert str(weights) in str(info.value) and "layers.1.self_attn.k_proj" in str(info.value)


def test_a_tokenizer_larger_than_the_embedding_names_both_sizes(tiny, tmp_path):
    folder = copy_folder(tiny, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    tok = json.loads((folder / "tokenizer.json").read_text())
    n_tok = len(tok["model"]["vocab"])
    # a model whose embedding is smaller than the tokenizer: cut every vocab-sized tensor
    from safetensors.torch import load_file, save_file

    tensors = {k: (v[: n_tok - 4] if v.shape[0] == cfg["vocab_size"] else v)
               for k, v in load_file(str(folder / "model.safetensors")).items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**cfg, "vocab_size": n_tok - 4}))
    with pytest.raises(InputError) as info:
        engine.load(str(folder), device="cpu")
    assert str(n_tok) in str(info.value) and str(n_tok - 4) in str(info.value)


def test_a_gguf_path_goes_to_the_gguf_builder(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="not found"):
        engine.load(str(tmp_path / "absent.gguf"), device="cpu")
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    seen = {}
    built = SimpleNamespace(notices=[])

    class FakeGGUF:
        @staticmethod
        def build_gguf(p, device, progress, dtype):
            seen["args"] = (p, device, dtype)
            return built

    monkeypatch.setitem(sys.modules, "engine.models.gguf", FakeGGUF)
    monkeypatch.setattr(registry, "_loaded", {})
    assert engine.load(str(path), device="cpu") is built
    assert seen["args"] == (str(path), torch.device("cpu"), None)
    monkeypatch.setitem(sys.modules, "engine.models.gguf", None)  # the module is missing
    monkeypatch.setattr(registry, "_loaded", {})
    with pytest.raises(InputError, match="GGUF"):
        engine.load(str(path), device="cpu")
