"""Readable labels for tokens: the text a token stands for, not the tokenizer's spelling.

Tokenizers spell their pieces in private alphabets:

    byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen2)   "Ġworld" = " world", "Ċ" = "\\n";
                                                       every byte is one character of GPT-2's
                                                       table, so "我" (E6 88 91) can be cut
                                                       into "Ġæ" + "Ī" + "ĳ"
    SentencePiece (Gemma, Llama 2)                    "▁world" = " world"; "<0xE6>" one byte
                                                       (byte fallback)
    WordPiece (BERT, MiniLM)                          "##ing" continues a word: kept as is

`readable_labels(tokens, kind)` turns each token into its bytes, decodes the bytes of the
whole sequence as UTF-8, and gives each token the characters it holds. A character whose
bytes are spread over several tokens is shown in each of them with its share, "我 1/3",
"我 2/3", "我 3/3" (this token holds part 1, 2, 3 of the 3 tokens the character spans); a
byte that belongs to no complete character (the rest of it was cut off, or the bytes are not
UTF-8) is shown as "<0xNN>". Tokens that are not in the tokenizer's alphabet (added or
special tokens such as "<|im_start|>" or "<bos>") keep their own spelling.

Pure functions over strings; the raw tokens stay what the record and the exports hold.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

KINDS = ("byte-level", "sentencepiece", "wordpiece", "plain")
SENTENCEPIECE_SPACE = "\u2581"  # "▁"
# With show_whitespace=True, what stands for characters a label cannot show.
VISIBLE = {"\n": "↵", "\r": "␍", "\t": "⇥"}


@lru_cache(maxsize=1)
def _byte_of_symbol() -> dict[str, int]:
    """GPT-2's printable symbol → the byte it stands for (the inverse of bytes_to_unicode)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {chr(b): b for b in keep}, 0
    for b in range(256):
        if b not in keep:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def token_bytes(token: str, kind: str) -> bytes | None:
    """The bytes a token stands for, or None when it is spelled outside the tokenizer's
    alphabet (an added or special token, shown as written)."""
    if kind == "byte-level":
        table = _byte_of_symbol()
        if not all(c in table for c in token):
            return None
        return bytes(table[c] for c in token)
    if kind == "sentencepiece":
        if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            try:
                return bytes([int(token[3:5], 16)])  # a byte-fallback token
            except ValueError:
                pass
        return token.replace(SENTENCEPIECE_SPACE, " ").encode("utf-8")
    return None  # wordpiece / plain: the token is its own label


@dataclass(frozen=True)
class _Char:
    text: str  # the character, or "<0xNN>" for a byte outside any complete character
    start: int  # byte span in the joined sequence
    stop: int


def _utf8_chars(data: bytes) -> list[_Char]:
    """Characters of `data` with their byte spans; stray bytes become "<0xNN>"."""
    out, i = [], 0
    while i < len(data):
        lead = data[i]
        n = 1 if lead < 0x80 else 2 if 0xC2 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 \
            else 4 if 0xF0 <= lead < 0xF5 else 0
        try:
            text = data[i : i + n].decode("utf-8") if n and i + n <= len(data) else None
        except UnicodeDecodeError:
            text = None
        if text is None:
            out.append(_Char(f"<0x{lead:02X}>", i, i + 1))
            i += 1
        else:
            out.append(_Char(text, i, i + n))
            i += n
    return out


def readable_labels(tokens: Sequence[str], kind: str, show_whitespace: bool = False
                    ) -> list[str]:
    """One readable label per token (same length and order as `tokens`).

    `kind` is one of `KINDS`: "byte-level" (Ġ/Ċ symbols), "sentencepiece" (▁ and <0xNN>),
    "wordpiece" or "plain" (labels are the tokens). Spaces and newlines come out as the
    characters they stand for; with `show_whitespace` newline, carriage return and tab are
    drawn as ↵ ␍ ⇥ (for axis labels, where a real newline would vanish).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; one of {', '.join(KINDS)}")
    raw = [token_bytes(t, kind) for t in tokens]
    labels: list[str] = [t if b is None else "" for t, b in zip(tokens, raw, strict=True)]
    # Runs of tokens with bytes decode together (a character may span several of them);
    # a token without bytes (special) ends a run.
    run: list[int] = []
    for i in [*range(len(tokens)), None]:
        if i is not None and raw[i] is not None:
            run.append(i)
            continue
        if run:
            _label_run(run, raw, labels)
            run = []
    if show_whitespace:
        labels = [_visible(label) for label in labels]
    return labels


def _label_run(run: list[int], raw: list[bytes | None], labels: list[str]) -> None:
    starts, pos = [], 0  # byte offset where each token of the run starts
    for i in run:
        starts.append(pos)
        pos += len(raw[i])
    parts: list[list[tuple[str, str | None]]] = [[] for _ in run]
    for ch in _utf8_chars(b"".join(raw[i] for i in run)):
        # tokens overlapping the character's bytes; empty tokens hold none of them
        first = bisect_right(starts, ch.start) - 1
        last = bisect_left(starts, ch.stop) - 1
        owners = [k for k in range(first, last + 1) if raw[run[k]]]
        if len(owners) == 1:
            parts[owners[0]].append((ch.text, None))
            continue
        for n, k in enumerate(owners, start=1):
            parts[k].append((ch.text, f"{n}/{len(owners)}"))
    for k, i in enumerate(run):
        labels[i] = _join(parts[k])


def _join(parts: list[tuple[str, str | None]]) -> str:
    """Characters of one token; a share ("我 1/2") is set off from a neighbour by one space
    (unless the neighbour is a space already), so that "a我 1/2" cannot be misread."""
    out = ""
    for j, (text, share) in enumerate(parts):
        if share is None:
            out += text
            continue
        if out and not out.endswith(" "):
            out += " "
        out += f"{text} {share}"
        if j < len(parts) - 1 and not parts[j + 1][0].startswith(" "):
            out += " "
    return out


def _visible(label: str) -> str:
    return "".join(VISIBLE.get(c, c) for c in label)
