"""Records carry readable labels beside the raw tokens, for every codec, through NPZ too."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from engine.api import LoadedModel
from engine.record import AttentionRecord
from engine.text.codec import TokenizerCodec
from tests.conftest import tiny


def byte_level_codec() -> TokenizerCodec:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["hello world", "hello there world"], trainer)
    return TokenizerCodec(tok, 64, pad_token="<pad>")


def test_byte_level_tokens_get_readable_labels_and_survive_npz(tmp_path):
    codec = byte_level_codec()
    model = tiny("decoder", vocab_size=max(61, codec.tok.get_vocab_size()))
    m = LoadedModel("tiny", model, codec, torch.device("cpu"))
    rec = m.attend("hello world\n我")
    assert any(t.startswith("Ġ") for t in rec.tokens)  # the raw tokens stay raw
    assert "".join(rec.labels[:-3]) == "hello world\n"  # Ġ and Ċ read as space and newline
    assert rec.labels[-3:] == ["我 1/3", "我 2/3", "我 3/3"]  # one character in three bytes
    assert len(rec.labels) == len(rec.tokens)
    q, k = rec.axis_labels("decoder.self.0")
    assert q == k == rec.labels
    rec.to_npz(tmp_path / "r.npz")
    back = AttentionRecord.from_npz(tmp_path / "r.npz")
    assert back.labels == rec.labels and back.tokens == rec.tokens


def test_a_record_without_labels_labels_with_its_tokens():
    import numpy as np

    rec = AttentionRecord(tokens=["a", "b"], maps={"encoder.self.0": np.ones((1, 2, 2)) / 2})
    assert rec.labels == ["a", "b"]
