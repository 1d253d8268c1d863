"""Long pasted texts: how many tokens a model reads of them, where its cut falls, the first N
tokens of a text for a page that can draw only so many, and the size above which a page
refuses a text instead of freezing on it."""

from __future__ import annotations

from dataclasses import dataclass

# Far above what any installed model reads (the longest limit, 8,192 tokens, is ~35,000
# characters of English), so nothing readable is refused; above it every rerun would carry
# and re-tokenise megabytes for a text the engine cuts anyway.
MAX_CHARS = 100_000


@dataclass(frozen=True)
class Count:
    """A text's tokens for one codec: `n` it has, `kept` the model reads (≤ `limit`), and
    `cut_at`, the character where the unread part starts (None when nothing is cut or the
    codec cannot say)."""

    n: int
    kept: int
    limit: int
    cut_at: int | None = None

    @property
    def cut(self) -> bool:
        return self.kept < self.n


def count_tokens(codec, text: str) -> Count:
    """How `codec` reads `text` (the engine's own encode, so the numbers are the engine's);
    raises what `codec.encode` raises on an empty or unreadable text."""
    enc = codec.encode(text)
    n = enc.n_original or len(enc.ids)
    limit = int(getattr(codec, "max_tokens", n))
    if n <= len(enc.ids):
        return Count(n, n, limit)
    return Count(n, len(enc.ids), limit, _start_of_token(codec, text, len(enc.ids)))


def _real_offsets(codec, text: str) -> list[tuple[int, int]] | None:
    """Character offsets of the text's tokens, specials ([CLS], <bos>) left out, or None when
    the codec has no `tokenizers` object to ask."""
    tok = getattr(codec, "tok", None)
    if tok is None or not hasattr(tok, "encode"):
        return None
    full = tok.encode(text)
    return [o for o, special in zip(full.offsets, full.special_tokens_mask, strict=True)
            if not special]


def _specials(codec) -> int:
    """How many special tokens ([CLS] … [SEP], <bos>) the codec adds to any text."""
    return len(codec.encode("a").ids) - len(_real_offsets(codec, "a") or [])


def _start_of_token(codec, text: str, kept: int) -> int | None:
    """The character where the first unread token starts, counting the specials the codec
    keeps (a cut text keeps its closing [SEP]) as read."""
    offsets = _real_offsets(codec, text)
    if not offsets:
        return None
    i = max(0, kept - _specials(codec))
    return offsets[i][0] if i < len(offsets) else None


def first_tokens(codec, text: str, keep: int) -> tuple[str, int, int]:
    """(`text` cut to its first tokens so that `codec` reads at most `keep`, tokens read,
    tokens the whole text has). The cut falls at the end of a token of the whole text; the
    prefix is re-tokenised to count what the model will read (a word cut off from its
    neighbour may split differently), and shortened until it fits. A codec without offsets
    gets its text back whole (the engine's own cut then applies, with its notice)."""
    enc = codec.encode(text)
    n = enc.n_original or len(enc.ids)
    if n <= keep:
        return text, n, n
    offsets = _real_offsets(codec, text)
    if not offsets:
        return text, len(enc.ids), n
    n_real = max(1, min(keep - _specials(codec), len(offsets)))
    while True:
        prefix = text[: offsets[n_real - 1][1]]
        kept = len(codec.encode(prefix).ids)
        if kept <= keep or n_real == 1:
            return prefix, kept, n
        n_real = max(1, n_real - max(1, kept - keep))
