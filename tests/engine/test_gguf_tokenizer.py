"""Tokenizers rebuilt from GGUF metadata (engine/text/gguf_tokenizer.py) against transformers'
GGUF tokenizer on tiny files written here: byte-level BPE with each pre-tokenizer
(`tokenizer.ggml.pre`), BOS/EOS flags, and a Llama-2-style SentencePiece vocabulary.
SmolLM2's real vocabulary is checked in test_smollm2_parity.py (19 texts).
"""

from __future__ import annotations

import pytest

from engine.text.gguf_tokenizer import (
    PRE_TOKENIZERS,
    build_byte_level_tokenizer,
    bytes_to_unicode,
    gguf_tokenizer,
    score_merges,
    tokenizer_from_metadata,
)

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

TEXTS = [
    "The quick brown fox, the end. It's 2024!",
    "我爱自然语言处理。",
    "Family 👨\u200d👩\u200d👧\u200d👦 and 👍🏽",
    "def f(x):\n\tif x:\n\t\treturn  x\n",
    "  two leading spaces",
    "double  spaces   here 12345",
    "<|im_start|>user\nhi<|im_end|>",
]


def byte_level_vocab():
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    symbols = list(bytes_to_unicode().values())
    merges = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "Ġ Ġ", "ĠĠ Ġ", "Ċ ĉ", "r e"]
    merged = ["Ġt", "he", "Ġthe", "Ġa", "in", "ĠĠ", "ĠĠĠ", "Ċĉ", "re"]
    tokens = specials + symbols + merged
    return tokens, [3] * 3 + [1] * (len(tokens) - 3), merges


def write_tokenizer_gguf(path, *, model="gpt2", pre=None, add_bos=None, add_eos=None,
                         drop=()):
    w = gguf.GGUFWriter(str(path), "llama")
    if model == "gpt2":
        tokens, types, merges = byte_level_vocab()
        entries = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": tokens,
                   "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges}
        bos, eos = 1, 2
    else:  # Llama-2-style SentencePiece: merges from the scores
        pieces = ["▁", "h", "e", "l", "o", "t", "▁t", "he", "▁the", "ll", "▁hello", "▁h",
                  "▁he", "▁hell", "hell"]
        tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces
        types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)
        scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(len(pieces))]
        entries = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
                   "tokenizer.ggml.token_type": types, "tokenizer.ggml.scores": scores}
        bos, eos = 1, 2
        w.add_unk_token_id(0)
    for key, value in entries.items():
        if key in drop:
            continue
        w.add_string(key, value) if isinstance(value, str) else w.add_array(key, value)
    if pre is not None:
        w.add_string("tokenizer.ggml.pre", pre)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    if add_eos is not None:
        w.add_add_eos_token(add_eos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def reference(path):
    return transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.mark.parametrize("pre", ["smollm", "llama-bpe", "qwen2", "gpt-2", None])
def test_byte_level_ids_equal_transformers(tmp_path, pre):
    path = write_tokenizer_gguf(tmp_path / "bpe.gguf", pre=pre)
    ours, theirs = gguf_tokenizer(path), reference(path)
    for text in TEXTS:
        assert ours.encode(text).ids == theirs(text)["input_ids"], (pre, text)
        ids = ours.encode(text).ids
        assert ours.decode(ids, skip_special_tokens=False) == text


@pytest.mark.parametrize("add_bos, add_eos", [(True, False), (False, True), (True, True)])
def test_bos_and_eos_flags_are_honoured(tmp_path, add_bos, add_eos):
    path = write_tokenizer_gguf(tmp_path / "flags.gguf", pre="llama-bpe", add_bos=add_bos,
                                add_eos=add_eos)
    ours, theirs = gguf_tokenizer(path), reference(path)
    ids = ours.encode("the end").ids
    assert ids == theirs("the end")["input_ids"]
    assert (ids[0] == 1) == add_bos and (ids[-1] == 2) == add_eos


def test_llama_sentencepiece_ids_equal_transformers(tmp_path):
    path = write_tokenizer_gguf(tmp_path / "sp.gguf", model="llama")
    ours, theirs = gguf_tokenizer(path), reference(path)
    for text in ["hello the hell", " hello", "héllo\nthe", "tt  he"]:
        assert ours.encode(text).ids == theirs(text)["input_ids"], text
    assert ours.encode("hello").ids[0] == 1  # SentencePiece files add BOS unless told not to


def test_score_merges_rank_by_score_then_longer_left():
    tokens = ["a", "b", "c", "ab", "bc", "abc"]
    assert score_merges(tokens, [0, 0, 0, -1, -2, -3]) == [
        ("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")]


@pytest.mark.parametrize("drop, missing", [
    (("tokenizer.ggml.model",), "tokenizer.ggml.model"),
    (("tokenizer.ggml.merges",), "tokenizer.ggml.merges"),
    (("tokenizer.ggml.tokens", "tokenizer.ggml.merges"), "tokenizer.ggml.tokens"),
])
def test_missing_tokenizer_metadata_names_what_is_missing(tmp_path, drop, missing):
    path = write_tokenizer_gguf(tmp_path / "partial.gguf", drop=drop)
    with pytest.raises(ValueError, match=missing.replace(".", r"\.")) as err:
        gguf_tokenizer(path)
    assert str(path) in str(err.value)


def test_unknown_pre_tokenizer_and_tokenizer_kind_are_named(tmp_path):
    path = write_tokenizer_gguf(tmp_path / "pre.gguf", pre="no-such-pre")
    with pytest.raises(ValueError, match="no-such-pre") as err:
        gguf_tokenizer(path)
    assert "smollm" in str(err.value) and "llama-bpe" in str(err.value)
    with pytest.raises(ValueError, match="'bert'.*supported: llama, gpt2"):
        tokenizer_from_metadata({"tokenizer.ggml.model": "bert"}, "x.gguf")
    assert {"smollm", "llama-bpe", "qwen2", "gpt-2", "default"} <= set(PRE_TOKENIZERS)


def test_control_token_outside_the_byte_alphabet_is_respelled_not_added():
    tokens, types, merges = byte_level_vocab()
    tokens, types = [*tokens, "<ctl ✓>"], [*types, 3]
    tok = build_byte_level_tokenizer(tokens, types, merges)
    assert tok.get_vocab_size() == len(tokens)
    assert "<ctl ✓>" not in [t.content for t in tok.get_added_tokens_decoder().values()]
