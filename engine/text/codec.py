"""Text ↔ token ids for the models, on top of the `tokenizers` library.

Every codec reports truncation instead of hiding it, and refuses empty text with a message
the user can act on.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from tokenizers import Tokenizer

from engine.errors import InputError
from engine.text.readable import readable_labels


@dataclass
class Encoded:
    ids: list[int]
    tokens: list[str]
    truncated: bool = False
    n_original: int = 0  # token count before truncation


def check_text(text: str) -> str:
    """`text` made safe to tokenize: a str, lone surrogates (which UTF-8 cannot carry, e.g.
    from undecodable command-line bytes) replaced by "?", and not empty after stripping
    whitespace. Anything else is an InputError the user can act on."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    # Lone surrogates cannot be encoded to UTF-8 and would crash the tokenizer.
    text = text.encode("utf-8", "replace").decode("utf-8")
    if not text.strip():
        raise InputError("the text is empty: type a sentence to see its attention")
    return text


def check_tokens(ids: list[int], add_special: bool) -> None:
    """A model input needs at least one token (a target may be empty: [BOS] is prepended)."""
    if add_special and not ids:
        raise InputError("the text has no tokens this model can read: type a sentence")


def tokenizer_kind(tokenizer: Tokenizer) -> str:
    """How a tokenizer spells its tokens, for `readable_labels`: "wordpiece", "byte-level"
    (a ByteLevel decoder), "sentencepiece" (▁ / byte fallback) or "plain"."""
    model = type(tokenizer.model).__name__
    if model == "WordPiece":
        return "wordpiece"
    decoder = tokenizer.decoder
    spec = decoder.__getstate__() if decoder is not None else b""
    spec = spec.decode() if isinstance(spec, bytes) else str(spec)
    if '"ByteLevel"' in spec:
        return "byte-level"
    if "ByteFallback" in spec or "Metaspace" in spec or "\u2581" in spec or "▁" in spec:
        return "sentencepiece"
    return "plain"


class TokenizerCodec:
    """A `tokenizers.Tokenizer` (from tokenizer.json or built in code), padding off,
    truncation at `max_tokens` with the fact reported. `kind` (see `tokenizer_kind`, found
    from the tokenizer when not given) decides how `labels` reads the tokens."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, pad_token: str = "[PAD]",
                 unk_token: str | None = None, kind: str | None = None):
        self.tok = tokenizer
        self.kind = kind or tokenizer_kind(tokenizer)
        self.tok.no_padding()
        self.tok.no_truncation()  # measured ourselves so the original length is known
        self.max_tokens = max_tokens
        self.pad_token = pad_token
        self.pad_id = tokenizer.token_to_id(pad_token)
        self.unk_id = None if unk_token is None else tokenizer.token_to_id(unk_token)

    @classmethod
    def from_file(cls, path, max_tokens: int, **kw) -> TokenizerCodec:
        return cls(Tokenizer.from_file(str(path)), max_tokens, **kw)

    def encode(self, text: str, add_special: bool = True) -> Encoded:
        text = check_text(text)
        enc = self.tok.encode(text, add_special_tokens=add_special)
        ids, tokens = list(enc.ids), list(enc.tokens)
        check_tokens(ids, add_special)
        n = len(ids)
        if n > self.max_tokens:
            # Keep the special token that closes the sequence (e.g. [SEP]) when there is one.
            last_special = add_special and enc.special_tokens_mask[-1] == 1
            cut = self.max_tokens - (1 if last_special else 0)
            ids = ids[:cut] + (ids[-1:] if last_special else [])
            tokens = tokens[:cut] + (tokens[-1:] if last_special else [])
        return Encoded(ids, tokens, truncated=n > self.max_tokens, n_original=n)

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def labels(self, tokens: list[str]) -> list[str]:
        """Readable labels of `tokens` (this tokenizer's spelling): "Ġworld" → " world",
        "▁A" → " A", a byte token of "我" → "我 1/2" (`engine.text.readable`)."""
        return readable_labels(tokens, self.kind)

    def unknown_share(self, ids: list[int]) -> float:
        if self.unk_id is None or not ids:
            return 0.0
        return sum(i == self.unk_id for i in ids) / len(ids)


class HashWordCodec:
    """Words and punctuation → ids by a stable hash. Only for models with random weights
    (the Vaswani preset), where ids carry no meaning anyway."""

    SPECIALS = ("[PAD]", "[BOS]", "[EOS]")

    def __init__(self, vocab_size: int, max_tokens: int):
        self.vocab_size, self.max_tokens = vocab_size, max_tokens
        self.pad_id, self.pad_token = 0, "[PAD]"

    def encode(self, text: str, add_special: bool = True) -> Encoded:
        words = re.findall(r"\w+|[^\w\s]", check_text(text))
        check_tokens(words, add_special)
        n = len(words)
        words = words[: self.max_tokens]
        ids = [3 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in words]
        return Encoded(ids, words, truncated=n > self.max_tokens, n_original=n)

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"<{i}>" for i in ids)

    def labels(self, tokens: list[str]) -> list[str]:
        """Words are their own labels."""
        return list(tokens)

    def unknown_share(self, ids: list[int]) -> float:
        return 0.0
