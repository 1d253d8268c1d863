"""GGUF files of every supported architecture and quantization type, written in the test.

A tiny random Hugging Face model (transformers, test-only) is written as a GGUF the way
llama.cpp writes one (its tensor names, llama's Q/K row permutation, Gemma's 1 + w norms,
each 2-D weight quantized with `gguf.quants.quantize`), then opened with
`engine.models.gguf.build_gguf`. Oracles, none of them our code:

- the same float model with each weight replaced by its quantized-then-dequantized value
  (quantization works row by row, so it commutes with the row permutation): every map and
  the logits must agree within 1e-4;
- transformers' own GGUF loader (`from_pretrained(dir, gguf_file=...)`, its own
  dequantization) on the same file, for the architectures it reads;
- transformers' torch dequantizer on K-quant blocks, which `gguf` cannot write.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.io.gguf import SUPPORTED_TYPES, read_gguf
from engine.models.gguf import build_gguf, describe_gguf, hf_config

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as Q  # noqa: E402
from gguf.quants import dequantize, quantize  # noqa: E402

ATOL = 1e-4
WRITABLE = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0")
K_QUANTS = ("Q4_K", "Q5_K", "Q6_K")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTENTION_STUDIO_CACHE", str(tmp_path / "cache"))


# --- tiny vocabularies ---------------------------------------------------------------------------


def byte_level_vocab():
    from engine.text.gguf_tokenizer import bytes_to_unicode

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    symbols = list(bytes_to_unicode().values())
    merges = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n"]
    merged = ["Ġt", "he", "Ġthe", "Ġa", "in"]
    tokens = specials + symbols + merged
    types = [3] * len(specials) + [1] * (len(symbols) + len(merged))
    return tokens, types, merges


def sentencepiece_vocab():
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>"]
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "t", "▁t", "he", "▁the", "\n"]
    types = [3] * len(specials) + [6] * 256 + [1] * (len(pieces) - 1) + [4]
    return specials + bytes_ + pieces, types


# --- tiny models ---------------------------------------------------------------------------------

# (transformers config class, kwargs); the Gemma 2/3 heads are 256 wide because transformers'
# GGUF loader keeps their query_pre_attn_scalar at its default, 256.
SPECS = {
    "llama": ("LlamaConfig", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                  tie_word_embeddings=False)),
    "qwen2": ("Qwen2Config", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2,
                                  tie_word_embeddings=True)),
    "gemma": ("GemmaConfig", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=32)),
    "gemma2": ("Gemma2Config", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=2, num_key_value_heads=1,
                                    head_dim=256, query_pre_attn_scalar=256, sliding_window=4)),
    "gemma3": ("Gemma3TextConfig", dict(hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=6, num_attention_heads=2,
                                        num_key_value_heads=1, head_dim=256,
                                        query_pre_attn_scalar=256, sliding_window=4)),
}
FLOAT_MODELS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                "gemma": "GemmaForCausalLM", "gemma2": "Gemma2ForCausalLM",
                "gemma3": "Gemma3ForCausalLM"}


def tiny_hf_model(arch: str, seed: int = 0):
    cls_name, kwargs = SPECS[arch]
    vocab = len(byte_level_vocab()[0]) if arch in ("llama", "qwen2") else len(
        sentencepiece_vocab()[0])
    cfg = getattr(transformers, cls_name)(vocab_size=vocab, max_position_embeddings=128,
                                          rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2,
                                          pad_token_id=0, attn_implementation="eager",
                                          **kwargs)
    torch.manual_seed(seed)
    model = getattr(transformers, FLOAT_MODELS[arch])(cfg).eval()
    with torch.no_grad():  # random norms and biases too, so that a wrong map shows
        for p in model.parameters():
            if p.ndim == 1:
                p.copy_(torch.randn_like(p) * 0.1 + (0.0 if arch.startswith("gemma") else 1.0))
            else:
                p.copy_(torch.randn_like(p) * 0.08)
    return model


def gguf_name(hf_name: str, arch: str) -> str:
    """llama.cpp's name for a transformers parameter (written independently of the engine's
    map: from llama.cpp's tensor table)."""
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight":
           "output_norm.weight", "lm_head.weight": "output.weight"}
    if hf_name in top:
        return top[hf_name]
    _, _, n, *rest = hf_name.split(".")
    leaf, suffix = ".".join(rest[:-1]), rest[-1]
    sandwich = arch in ("gemma2", "gemma3")
    table = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
             "self_attn.k_norm": "attn_k_norm", "mlp.gate_proj": "ffn_gate",
             "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "post_attention_layernorm": "post_attention_norm" if sandwich else "ffn_norm",
             "pre_feedforward_layernorm": "ffn_norm",
             "post_feedforward_layernorm": "post_ffw_norm"}
    return f"blk.{n}.{table[leaf]}.{suffix}"


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute (HF halves → interleaved pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2) \
        .reshape(w.shape)


def write_gguf(path, model, arch: str, qtype: str = "Q8_0", *, tokenizer: bool = True,
               extra_kv=None):
    """`model` as llama.cpp would write it; returns {hf name: the float weight the file
    decodes to} for the float oracle."""
    cfg = model.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_uint32(f"{arch}.block_count", cfg.num_hidden_layers)
    w.add_uint32(f"{arch}.embedding_length", cfg.hidden_size)
    w.add_uint32(f"{arch}.feed_forward_length", cfg.intermediate_size)
    w.add_uint32(f"{arch}.context_length", cfg.max_position_embeddings)
    w.add_uint32(f"{arch}.attention.head_count", cfg.num_attention_heads)
    w.add_uint32(f"{arch}.attention.head_count_kv", cfg.num_key_value_heads)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    if arch.startswith("gemma"):
        w.add_uint32(f"{arch}.attention.key_length", head_dim)
        w.add_uint32(f"{arch}.attention.value_length", head_dim)
    else:
        w.add_uint32(f"{arch}.rope.dimension_count", head_dim)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", cfg.rms_norm_eps)
    if arch in ("gemma2", "gemma3"):
        w.add_uint32(f"{arch}.attention.sliding_window", cfg.sliding_window)
    if arch == "gemma2":
        w.add_float32(f"{arch}.attn_logit_softcapping", cfg.attn_logit_softcapping)
        w.add_float32(f"{arch}.final_logit_softcapping", cfg.final_logit_softcapping)
    theta = (cfg.rope_parameters.get("full_attention", cfg.rope_parameters)["rope_theta"])
    w.add_float32(f"{arch}.rope.freq_base", theta)
    for key, value in (extra_kv or {}).items():
        w.add_string(key, value) if isinstance(value, str) else w.add_uint32(key, value)
    if tokenizer and arch in ("llama", "qwen2"):
        tokens, types, merges = byte_level_vocab()
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_string("tokenizer.ggml.pre", "smollm" if arch == "llama" else "qwen2")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_add_bos_token(arch == "llama")
    elif tokenizer:
        tokens, types = sentencepiece_vocab()
        w.add_string("tokenizer.ggml.model", "llama")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_scores([0.0] * len(tokens))
        w.add_bos_token_id(2)
        w.add_eos_token_id(1)
        w.add_unk_token_id(3)
        w.add_pad_token_id(0)
    decoded = {}
    for hf_name, p in model.state_dict().items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        x = p.detach().numpy().astype(np.float32)
        name = gguf_name(hf_name, arch)
        stored = x
        if arch == "llama" and ".attn_q." in name:
            stored = llama_cpp_permute(x, cfg.num_attention_heads)
        elif arch == "llama" and ".attn_k." in name:
            stored = llama_cpp_permute(x, cfg.num_key_value_heads)
        elif arch.startswith("gemma") and name.endswith("norm.weight"):
            stored = x + 1  # llama.cpp writes Gemma's 1 + w
        if x.ndim == 2:
            q = quantize(stored, Q[qtype])
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=Q[qtype])
            decoded[hf_name] = dequantize(quantize(x, Q[qtype]), Q[qtype]).reshape(x.shape)
        else:
            w.add_tensor(name, stored)
            decoded[hf_name] = x
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return decoded


def hf_maps(model, ids):
    with torch.inference_mode():
        out = model(torch.tensor([ids]), output_attentions=True)
    return out.logits[0].numpy(), [a[0].numpy() for a in out.attentions]


def our_maps(loaded, ids):
    from engine.core.transformer import Request

    with torch.inference_mode():
        out = loaded.transformer(torch.tensor([ids]), req=Request(record=None))
    n = loaded.config.n_decoder_layers
    return out.logits[0].numpy(), [out.record[f"decoder.self.{i}"].weights[0].numpy()
                                   for i in range(n)]


def assert_same(ours, theirs, what):
    (logits_a, maps_a), (logits_b, maps_b) = ours, theirs
    assert len(maps_a) == len(maps_b)
    for layer, (a, b) in enumerate(zip(maps_a, maps_b, strict=True)):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=0, err_msg=f"{what}: layer {layer}")
    np.testing.assert_allclose(logits_a, logits_b, atol=ATOL, rtol=1e-4, err_msg=what)


IDS = [5, 40, 77, 123, 9, 200, 31, 64, 250, 7, 88, 19]  # 12 > the Gemma windows of 4


# --- every architecture, every writable type ---------------------------------------------------


@pytest.mark.parametrize("arch", list(SPECS))
def test_each_architecture_round_trips_against_the_float_model(tmp_path, arch):
    model = tiny_hf_model(arch)
    path = tmp_path / f"tiny-{arch}.gguf"
    decoded = write_gguf(path, model, arch, "Q8_0")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in decoded.items()}, strict=False)
    ours = build_gguf(path, "cpu")
    assert ours.config.kv_heads == model.config.num_key_value_heads
    assert_same(our_maps(ours, IDS), hf_maps(model, IDS), arch)


@pytest.mark.parametrize("qtype", WRITABLE)
def test_each_quantization_type_round_trips_against_the_float_model(tmp_path, qtype):
    model = tiny_hf_model("llama", seed=1)
    path = tmp_path / f"tiny-{qtype}.gguf"
    decoded = write_gguf(path, model, "llama", qtype)
    assert {t.type_name for t in read_gguf(path).tensors.values()} == {"F32", qtype}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in decoded.items()}, strict=False)
    assert_same(our_maps(build_gguf(path, "cpu"), IDS), hf_maps(model, IDS), qtype)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2", "gemma3"])
def test_transformers_gguf_loader_agrees(tmp_path, arch):
    """transformers reads the file itself (names, permutation, norms, its own dequantizer)."""
    model = tiny_hf_model(arch, seed=2)
    path = tmp_path / f"tiny-{arch}.gguf"
    write_gguf(path, model, arch, "Q4_1" if arch == "llama" else "Q8_0")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file=path.name, dtype=torch.float32,
        attn_implementation="eager").eval()
    assert_same(our_maps(build_gguf(path, "cpu"), IDS), hf_maps(theirs, IDS), arch)


def test_the_cache_is_reused_and_equal(tmp_path):
    model = tiny_hf_model("qwen2")
    path = tmp_path / "tiny.Q8_0.gguf"  # a dot in the stem, as in most GGUF names
    write_gguf(path, model, "qwen2")
    first = build_gguf(path, "cpu", name="tiny")
    files = sorted(p.name for p in (tmp_path / "cache" / "tiny").iterdir())
    key = first.weights_hash.removeprefix("sha256:")[:16]
    assert f"tiny.Q8_0-{key}-v1.safetensors" in files  # keyed by the file's sha256
    assert any(f.endswith(".tokenizer.json") and key in f for f in files)
    calls = []
    second = build_gguf(path, "cpu", lambda f, m: calls.append((f, m)), name="tiny")
    assert calls == [(1.0, "tiny loaded from cache")]
    for (k, a), (_, b) in zip(first.transformer.state_dict().items(),
                              second.transformer.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert first.weights_hash == second.weights_hash


# --- dequantization of every supported type against transformers' dequantizer --------------


def _q5_0_reference(raw: np.ndarray) -> np.ndarray:
    """Q5_0 by ggml's dequantize_row_q5_0, in numpy: per 32 values an fp16 scale d, 32 high
    bits qh, 16 bytes of low nibbles; value = (5-bit code - 16) * d."""
    blocks = raw.reshape(-1, 22)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [n, 1]
    qh = blocks[:, 2:6].copy().view(np.uint32)  # [n, 1]
    qs = blocks[:, 6:].astype(np.uint32)  # [n, 16]
    j = np.arange(16, dtype=np.uint32)
    lo = (qs & 0xF) | (((qh >> j) & 1) << 4)
    hi = (qs >> 4) | (((qh >> (j + 16)) & 1) << 4)
    return ((np.concatenate([lo, hi], 1).astype(np.float32) - 16) * d).reshape(-1)


def _transformers_dequantize(raw: np.ndarray, qtype: str) -> np.ndarray:
    """transformers' torch dequantizer; for the types it lacks, numpy by the format."""
    from transformers.integrations.gguf.dequant import dequantize as hf_dequantize

    if qtype == "F32":
        return raw.astype(np.float32).reshape(-1)
    if qtype == "F16":
        return raw.view(np.float16).astype(np.float32).reshape(-1)
    if qtype == "BF16":  # the top 16 bits of a float32
        return (raw.reshape(-1).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if qtype == "Q5_0":
        return _q5_0_reference(raw)
    flat = torch.from_numpy(np.ascontiguousarray(raw).reshape(-1).view(np.uint8).copy())
    return hf_dequantize(flat, int(Q[qtype])).numpy()


def _write_raw(path, name, raw, qtype, shape):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=Q[qtype])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _k_quant_blocks(qtype: str, n_blocks: int, rng) -> np.ndarray:
    """Random K-quant blocks whose fp16 scale fields are sane (random bytes there would be
    NaN or huge): layouts from ggml-common.h."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[Q[qtype]]
    blocks = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    halves = rng.uniform(0.001, 0.05, (n_blocks, 2)).astype(np.float16).view(np.uint8)
    if qtype in ("Q4_K", "Q5_K"):  # d, dmin first
        blocks[:, :4] = halves.reshape(n_blocks, 4)
    else:  # Q6_K: ql, qh, scales (int8), then d last
        blocks[:, -2:] = halves.reshape(n_blocks, 4)[:, :2]
    return blocks


@pytest.mark.parametrize("qtype", WRITABLE + K_QUANTS)
def test_dequantize_equals_transformers_dequantizer(tmp_path, qtype):
    rng = np.random.default_rng(3)
    rows, cols = 4, 512
    if qtype in K_QUANTS:
        per_row = cols // 256
        raw = _k_quant_blocks(qtype, rows * per_row, rng).reshape(rows, -1)
    else:
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        raw = quantize(x, Q[qtype])
    path = tmp_path / f"{qtype}.gguf"
    _write_raw(path, "t.weight", raw, qtype, (rows, cols))
    g = read_gguf(path)
    assert g.tensors["t.weight"].type_name == qtype and g.tensors["t.weight"].shape == (4, 512)
    ours = g.dequantize("t.weight", chunk_rows=3)
    theirs = _transformers_dequantize(raw, qtype).reshape(rows, cols)
    assert np.isfinite(ours).all() and np.abs(ours).max() > 0
    np.testing.assert_array_equal(ours, theirs.astype(np.float32))


def test_unsupported_quantization_type_is_named_with_the_supported_list(tmp_path):
    rng = np.random.default_rng(4)
    _, type_size = gguf.GGML_QUANT_SIZES[Q.Q2_K]
    raw = rng.integers(0, 256, (2, type_size), dtype=np.uint8)
    path = tmp_path / "q2k.gguf"
    _write_raw(path, "t.weight", raw, "Q2_K", (2, 256))
    g = read_gguf(path)
    with pytest.raises(ValueError, match="Q2_K") as err:
        g.dequantize("t.weight")
    assert str(path) in str(err.value)
    assert all(t in str(err.value) for t in SUPPORTED_TYPES)


# --- header, errors --------------------------------------------------------------------------


def test_describe_reads_the_header_only(tmp_path):
    model = tiny_hf_model("llama")
    path = tmp_path / "tiny.gguf"
    write_gguf(path, model, "llama", "Q4_0")
    info = describe_gguf(path)
    assert (info["architecture"], info["kind"], info["layers"], info["heads"],
            info["kv_heads"], info["positions"]) == ("llama", "decoder", 2, 4, 2, "rope")
    assert info["size_bytes"] == path.stat().st_size
    assert info["tensor_types"]["Q4_0"] == 2 * 7 + 2  # 7 matrices a layer, embeddings, head
    json.dumps(info)  # plain values only


def test_hf_config_matches_transformers_reading_of_the_header(tmp_path):
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    for arch in ("llama", "qwen2", "gemma3"):
        model = tiny_hf_model(arch)
        path = tmp_path / f"{arch}.gguf"
        write_gguf(path, model, arch)
        ours = hf_config(read_gguf(path))
        theirs = load_gguf_checkpoint(str(path))["config"]
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                    "tie_word_embeddings"):
            assert ours[key] == theirs[key], (arch, key)
        assert ours["rms_norm_eps"] == pytest.approx(theirs["rms_norm_eps"])


def test_unsupported_architecture_is_named_with_the_supported_ones(tmp_path):
    path = tmp_path / "phi.gguf"
    w = gguf.GGUFWriter(str(path), "phi3")
    w.add_uint32("phi3.block_count", 1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match="phi3") as err:
        build_gguf(path, "cpu")
    assert "llama, qwen2, gemma, gemma2, gemma3" in str(err.value) and str(path) in str(err.value)


def test_missing_tokenizer_metadata_says_what_is_missing(tmp_path):
    model = tiny_hf_model("llama")
    path = tmp_path / "no-tokenizer.gguf"
    write_gguf(path, model, "llama", tokenizer=False)
    with pytest.raises(ValueError, match="tokenizer.ggml.model") as err:
        build_gguf(path, "cpu")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("keep", [30, 600, -100])
def test_truncated_file_names_the_file_and_where(tmp_path, keep):
    model = tiny_hf_model("qwen2")
    good = tmp_path / "good.gguf"
    write_gguf(good, model, "qwen2")
    data = good.read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[:keep])
    with pytest.raises(ValueError, match="truncated") as err:
        build_gguf(bad, "cpu")
    assert str(bad) in str(err.value)


def test_a_gguf_path_opens_through_engine_load(tmp_path):
    import engine

    model = tiny_hf_model("llama")
    path = tmp_path / "tiny-load.gguf"
    write_gguf(path, model, "llama")
    loaded = engine.load(str(path), device="cpu")
    rec = loaded.attend("the end")
    assert rec.tokens[0] == "<|im_start|>"  # this tiny file says add_bos_token (id 1)
    assert rec["decoder.self.1"].shape[0] == 4
    assert rec.tokens[1:] == ["t", "he", "Ġ", "e", "n", "d"]  # tiny merges: no "Ġe"
    assert loaded.codec.labels(rec.tokens)[1:] == ["t", "he", " ", "e", "n", "d"]


def test_gguf_files_under_the_model_roots_are_listed(tmp_path, monkeypatch, capsys):
    from engine.__main__ import main
    from engine.models.registry import discover

    model = tiny_hf_model("llama")
    (tmp_path / "mine").mkdir()
    write_gguf(tmp_path / "mine" / "tiny.gguf", model, "llama", "Q8_0")
    (tmp_path / "mine" / "broken.gguf").write_bytes(b"GGUF not really")
    monkeypatch.setenv("ATTENTION_STUDIO_MODELS", str(tmp_path / "mine"))
    found = {Path(c.name).name: c for c in discover() if c.name.endswith(".gguf")}
    assert found["tiny.gguf"].facts == {"kind": "decoder", "layers": "2", "heads": 4,
                                        "kv_heads": 2, "positions": "rope"}
    assert found["broken.gguf"].facts is None and found["broken.gguf"].why
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny.gguf" in out and "broken.gguf" in out and "unsupported" in out
