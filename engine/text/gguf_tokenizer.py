"""Tokenizers rebuilt from a GGUF file's metadata, as `tokenizers.Tokenizer` objects.

A GGUF carries no tokenizer.json: it stores the vocabulary (`tokenizer.ggml.tokens`), token
types, scores, sometimes merges, the special ids and two flags (`add_bos_token`,
`add_eos_token`). `tokenizer.ggml.model` says which kind of tokenizer they describe:

- `llama`: SentencePiece BPE with byte fallback (Kudo & Richardson, 2018). Gemma files
  (`build_gemma_tokenizer`) and Llama-2-style files (`build_sentencepiece_tokenizer`).
- `gpt2`: byte-level BPE (Radford et al., 2019) with merges (`build_byte_level_tokenizer`);
  `tokenizer.ggml.pre` names how text is split before BPE (see `PRE_TOKENIZERS`).

`tokenizer_from_metadata(md)` picks the builder; `gguf_tokenizer(path, folder)` reads the
file and caches the JSON. The reference for every rule below is transformers' GGUF converter
(`integrations/gguf/gguf_tokenizer_mapping.py`), checked id for id in the tests.

Gemma's SentencePiece vocabulary stores no merges, so they are rebuilt:

- Every way of cutting a token into two tokens of the vocabulary is a merge. Merges rank by
  the *position of the merged token in the file* (earlier = merged first); Gemma's scores do
  not follow its merge order. Within one token, the cut with the longest left part ranks
  first. This is exactly the order transformers' GGUF converter produces
  (`generate_merges` with scores = -position), which is our reference.
- Tokens 138–167 (runs of 2–31 spaces) are stored with real spaces; spelled with "▁" here so
  that they match normalized text and the merges built from them.
- Control tokens (type 3: `<bos>`, `<start_of_turn>`, `<unusedN>`, ...) are special added
  tokens; user-defined tokens (type 4: "\\n", "\\t\\t", "<table>", ...) are non-special added
  tokens, matched whole in the raw text before BPE runs, as SentencePiece does.

Building takes a few seconds (500k merges); `gguf_tokenizer` caches the JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers.models import BPE

from engine.io import cache_dir as _cache
from engine.io.gguf import SkippedArray, read_gguf

SPACE = "\u2581"  # "▁", SentencePiece's visible space
TOKEN_TYPE_NORMAL, TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED, TOKEN_TYPE_BYTE = 1, 3, 4, 6


def respell(token: str) -> str:
    """A vocabulary entry as the tokenizer sees it: real spaces written as "▁"."""
    return token.replace(" ", SPACE) if " " in token else token


def gemma_merges(tokens: Sequence[str]) -> list[tuple[str, str]]:
    """BPE merges implied by a vocabulary whose order is the merge order.

    For token i (in file order) every cut (left, right) with both halves in the vocabulary is a
    merge of rank i; cuts of one token are listed longest-left first.
    """
    vocab = set(tokens)
    merges: list[tuple[str, str]] = []
    for token in tokens:
        for cut in range(len(token) - 1, 0, -1):
            left, right = token[:cut], token[cut:]
            if left in vocab and right in vocab:
                merges.append((left, right))
    return merges


def build_gemma_tokenizer(
    tokens: Sequence[str],
    token_types: Sequence[int],
    *,
    bos_id: int = 2,
    unk_id: int = 3,
    add_bos: bool = True,
) -> Tokenizer:
    """A `tokenizers.Tokenizer` equal to Gemma 3's, from GGUF `tokenizer.ggml.*` metadata.

    `tokens` and `token_types` are `tokenizer.ggml.tokens` / `tokenizer.ggml.token_type`, in
    file order (the index is the token id). `encode(text).ids` starts with `bos_id` when
    `add_bos` is true.
    """
    if len(tokens) != len(token_types):
        raise ValueError(f"{len(tokens)} tokens but {len(token_types)} token types")
    spelled = [respell(t) for t in tokens]
    vocab = {t: i for i, t in enumerate(spelled)}
    if len(vocab) != len(spelled):
        raise ValueError("the vocabulary has duplicate tokens after spelling spaces as '▁'")

    tok = Tokenizer(
        BPE(
            vocab=vocab,
            merges=gemma_merges(spelled),
            unk_token=spelled[unk_id],
            fuse_unk=True,
            byte_fallback=True,
            dropout=None,
        )
    )
    tok.normalizer = normalizers.Replace(" ", SPACE)
    # After the normalizer there is no " " left, so this split is a no-op; it is kept because
    # it is what Gemma's own tokenizer.json (and transformers' GemmaTokenizer) declares.
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous", invert=False)
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    )

    types = [int(t) for t in token_types]
    tok.add_special_tokens(
        [
            AddedToken(spelled[i], normalized=False, special=True)
            for i, t in enumerate(types)
            if t == TOKEN_TYPE_CONTROL
        ]
    )
    # Runs of spaces are user-defined too, but as "▁▁..." they can only be reached through
    # BPE, whose merges rank them first (ids 138-167), so leaving them to BPE is equivalent.
    tok.add_tokens(
        [
            AddedToken(tokens[i], normalized=False, special=False)
            for i, t in enumerate(types)
            if t == TOKEN_TYPE_USER_DEFINED and " " not in tokens[i]
        ]
    )
    tok.post_processor = _bos_eos(spelled, bos_id, None, add_bos, False)
    return tok


# --- Llama-2-style SentencePiece --------------------------------------------------------------


def score_merges(tokens: Sequence[str], scores: Sequence[float]) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece vocabulary's scores (higher = merged first).

    Every cut of a token into two vocabulary tokens is a merge carrying the token's score;
    ties go to the longer left part, then the longer right part (transformers'
    `generate_merges`, the reference).
    """
    vocab = {t: i for i, t in enumerate(tokens)}
    found = []
    for token, score in zip(tokens, scores, strict=True):
        local = [(token[:c], token[c:], float(score)) for c in range(1, len(token))
                 if token[:c] in vocab and token[c:] in vocab]
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        found.extend(local)
    found.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(left, right) for left, right, _ in found]


def build_sentencepiece_tokenizer(
    tokens: Sequence[str],
    token_types: Sequence[int],
    scores: Sequence[float] | None,
    merges: Sequence[str] | None = None,
    *,
    bos_id: int | None = 1,
    eos_id: int | None = 2,
    unk_id: int | None = 0,
    add_bos: bool = True,
    add_eos: bool = False,
    add_prefix_space: bool = True,
) -> Tokenizer:
    """A Llama-2-style SentencePiece BPE (`tokenizer.ggml.model = llama`, not Gemma).

    Spaces become "▁" through Metaspace, with one "▁" prepended to the text when
    `add_prefix_space` (`tokenizer.ggml.add_space_prefix`, default true); merges come from the
    file or, when it has none, from the scores (`score_merges`).
    """
    if merges is not None:
        pairs = [tuple(m.split(" ", 1)) for m in merges]
    elif scores is not None:
        pairs = score_merges(tokens, scores)
    else:
        raise ValueError("a SentencePiece vocabulary needs tokenizer.ggml.scores or "
                         "tokenizer.ggml.merges; the file has neither")
    tok = Tokenizer(BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=pairs,
                        unk_token=None if unk_id is None else tokens[unk_id], fuse_unk=True,
                        byte_fallback=True, dropout=None))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=SPACE, prepend_scheme="first" if add_prefix_space else "never", split=False)
    steps = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix_space:
        steps.append(decoders.Strip(content=" ", left=1))
    tok.decoder = decoders.Sequence(steps)
    _add_control_and_user_tokens(tok, tokens, token_types, set(tokens))
    tok.post_processor = _bos_eos(tokens, bos_id, eos_id, add_bos, add_eos)
    return tok


# --- byte-level BPE (tokenizer.ggml.model = gpt2) ---------------------------------------------

# How text is split before BPE, by `tokenizer.ggml.pre`. GPT-2's own split is ByteLevel's
# built-in regex; the others are the Split patterns llama.cpp and transformers use.
GPT2_SPLIT = None
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS = {
    "default": GPT2_SPLIT,
    "gpt-2": GPT2_SPLIT,
    "gpt2": GPT2_SPLIT,
    # SmolLM's tokenizer.json: every digit alone, then GPT-2's split. (transformers' GGUF
    # converter leaves the digit rule out; SmolLM's vocabulary has no multi-digit token, so
    # the ids agree either way, and the tests check it.)
    "smollm": "digits+gpt2",
    "llama-bpe": LLAMA3_SPLIT,
    "llama3": LLAMA3_SPLIT,
    "llama-v3": LLAMA3_SPLIT,
    "smaug-bpe": LLAMA3_SPLIT,
    "dbrx": LLAMA3_SPLIT,
    "qwen2": QWEN2_SPLIT,
    "deepseek-r1-qwen": QWEN2_SPLIT,
}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte → printable character table: printable Latin-1 bytes stand for
    themselves, the other 68 bytes (space, control bytes...) map to U+0100 onwards, so that a
    space is "Ġ" (U+0120) and a newline "Ċ" (U+010A)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def byte_level_pre_tokenizer(pre: str | None):
    """The pre-tokenizer `tokenizer.ggml.pre` names; ValueError listing the known ones."""
    key = pre or "default"
    if key not in PRE_TOKENIZERS:
        raise ValueError(f"tokenizer.ggml.pre = {pre!r} is not a pre-tokenizer this engine "
                         f"knows; known: {', '.join(PRE_TOKENIZERS)}")
    split = PRE_TOKENIZERS[key]
    if split is GPT2_SPLIT:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if split == "digits+gpt2":
        return pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def build_byte_level_tokenizer(
    tokens: Sequence[str],
    token_types: Sequence[int] | None,
    merges: Sequence[str],
    *,
    pre: str | None = None,
    bos_id: int | None = None,
    eos_id: int | None = None,
    add_bos: bool = False,
    add_eos: bool = False,
) -> Tokenizer:
    """A byte-level BPE tokenizer (`tokenizer.ggml.model = gpt2`) from GGUF metadata.

    Tokens are spelled in GPT-2's byte alphabet (`bytes_to_unicode`: "Ġ" a space, "Ċ" a
    newline); a token that uses any other character (a mislabelled control token) is respelled
    byte by byte, as transformers does. Control tokens (type 3) are special added tokens,
    user-defined ones (type 4) plain added tokens. `encode(text).ids` starts with `bos_id`
    when `add_bos`, ends with `eos_id` when `add_eos`.
    """
    spelling = bytes_to_unicode()
    alphabet = set(spelling.values())
    spelled = [t if set(t) <= alphabet else "".join(spelling[b] for b in t.encode("utf-8"))
               for t in tokens]
    vocab = {t: i for i, t in enumerate(spelled)}
    if len(vocab) != len(spelled):
        raise ValueError("the byte-level vocabulary has duplicate tokens")
    pairs = []
    for m in merges:
        left, sep, right = m.partition(" ")
        if not sep:
            raise ValueError(f"tokenizer.ggml.merges holds {m!r}, not two tokens and a space")
        pairs.append((left, right))
    tok = Tokenizer(BPE(vocab=vocab, merges=pairs, dropout=None, continuing_subword_prefix="",
                        end_of_word_suffix="", fuse_unk=False))
    tok.pre_tokenizer = byte_level_pre_tokenizer(pre)
    tok.decoder = decoders.ByteLevel()
    types = token_types if token_types is not None else [TOKEN_TYPE_NORMAL] * len(tokens)
    control_ok = [set(t) <= alphabet for t in tokens]
    _add_control_and_user_tokens(tok, spelled, types, vocab, control_ok)
    tok.post_processor = _bos_eos(spelled, bos_id, eos_id, add_bos, add_eos)
    return tok


# --- from a file's metadata --------------------------------------------------------------------

TOKENIZER_KINDS = ("llama", "gpt2")
# Keys every tokenizer needs, and those of each kind.
NEEDED = {"llama": ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"),
          "gpt2": ("tokenizer.ggml.tokens", "tokenizer.ggml.merges")}
GEMMA_ARCHITECTURES = ("gemma", "gemma2", "gemma3")


def check_tokenizer_metadata(md: dict, source: str = "the GGUF file") -> None:
    """ValueError naming `source` and what is missing when a GGUF's tokenizer metadata is
    absent or incomplete (cheap: run it before dequantizing anything)."""
    kind = md.get("tokenizer.ggml.model")
    if kind is None:
        raise ValueError(f"{source} has no tokenizer: the metadata key 'tokenizer.ggml.model' "
                         f"is missing (a GGUF needs it and {', '.join(NEEDED['gpt2'])})")
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"{source}: tokenizer.ggml.model = {kind!r} is not supported; "
                         f"supported: {', '.join(TOKENIZER_KINDS)}")
    missing = [k for k in NEEDED[kind] if k not in md]
    if missing:
        raise ValueError(f"{source}: its {kind!r} tokenizer lacks the metadata "
                         f"{', '.join(missing)}")
    if kind == "gpt2":
        byte_level_pre_tokenizer(md.get("tokenizer.ggml.pre"))


def tokenizer_from_metadata(md: dict, source: str = "the GGUF file") -> Tokenizer:
    """The tokenizer a GGUF's `tokenizer.ggml.*` metadata describes.

    `md` must hold the decoded string arrays (`read_gguf(path, string_arrays=STRING_ARRAYS)`).
    ValueError naming `source` and what is missing when the metadata is incomplete, or the
    tokenizer kind is not one of `TOKENIZER_KINDS`.
    """
    check_tokenizer_metadata(md, source)
    kind = md["tokenizer.ggml.model"]
    for key in (*NEEDED[kind], "tokenizer.ggml.scores"):
        if isinstance(md.get(key), SkippedArray):
            raise ValueError(f"{key} of {source} was not decoded: read the file with "
                             f"string_arrays=STRING_ARRAYS")

    def ident(name: str) -> int | None:
        value = md.get(f"tokenizer.ggml.{name}")
        return None if value is None else int(value)

    tokens = list(md["tokenizer.ggml.tokens"])
    types = md.get("tokenizer.ggml.token_type")
    for name in ("bos_token_id", "eos_token_id", "unknown_token_id"):
        if ident(name) is not None and not 0 <= ident(name) < len(tokens):
            raise ValueError(f"{source}: tokenizer.ggml.{name} = {ident(name)} is outside the "
                             f"vocabulary of {len(tokens)} tokens")
    add_eos = bool(md.get("tokenizer.ggml.add_eos_token", False))
    if kind == "gpt2":
        return build_byte_level_tokenizer(
            tokens, None if types is None else [int(t) for t in types],
            list(md["tokenizer.ggml.merges"]), pre=md.get("tokenizer.ggml.pre"),
            bos_id=ident("bos_token_id"), eos_id=ident("eos_token_id"),
            add_bos=bool(md.get("tokenizer.ggml.add_bos_token", False)), add_eos=add_eos)
    # SentencePiece: llama.cpp adds BOS unless the file says otherwise.
    add_bos = bool(md.get("tokenizer.ggml.add_bos_token", True))
    if md.get("general.architecture") in GEMMA_ARCHITECTURES:
        if add_eos:
            raise ValueError(f"{source}: add_eos_token is set for a Gemma vocabulary, which "
                             f"this engine does not build")
        return build_gemma_tokenizer(tokens, types, bos_id=ident("bos_token_id") or 2,
                                     unk_id=ident("unknown_token_id") or 3, add_bos=add_bos)
    merges = md.get("tokenizer.ggml.merges")
    return build_sentencepiece_tokenizer(
        tokens, types, md.get("tokenizer.ggml.scores"),
        None if merges is None else list(merges), bos_id=ident("bos_token_id"),
        eos_id=ident("eos_token_id"), unk_id=ident("unknown_token_id"), add_bos=add_bos,
        add_eos=add_eos, add_prefix_space=bool(md.get("tokenizer.ggml.add_space_prefix", True)))


STRING_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges")
# Bump when the builders change what they produce, so cached JSON is rebuilt.
TOKENIZER_FORMAT_VERSION = 1


def gguf_tokenizer(path: str | Path, folder: str | Path | None = None,
                   key: str | None = None) -> Tokenizer:
    """The tokenizer of the GGUF at `path`, built once and cached as JSON in `folder`
    (under `key`, e.g. the file's sha256, so a changed file is never served a stale one).
    Without `folder` nothing is cached."""
    path = Path(path)
    cached = None
    if folder is not None:
        stem = f"{path.stem}-{(key or 'nokey')[:16]}-v{TOKENIZER_FORMAT_VERSION}"
        cached = Path(folder) / f"{stem}.tokenizer.json"
        if cached.exists():
            try:
                return Tokenizer.from_file(str(cached))
            except Exception:  # a damaged cache is rebuilt, never trusted
                cached.unlink(missing_ok=True)
    g = read_gguf(path, string_arrays=STRING_ARRAYS)
    tok = tokenizer_from_metadata(g.metadata, str(path))
    if cached is not None:
        with _cache.atomic_path(cached) as tmp:
            tmp.write_text(tok.to_str())
    return tok


def tokenizer_json_parts(tok: Tokenizer) -> dict:
    """The parts of a tokenizer's JSON that decide its ids (for comparing two tokenizers)."""
    j = json.loads(tok.to_str())
    return {k: j[k] for k in ("model", "added_tokens", "normalizer", "pre_tokenizer",
                              "post_processor")}


# --- shared ------------------------------------------------------------------------------------


def _add_control_and_user_tokens(tok: Tokenizer, spelled, types, vocab, control_ok=None):
    """Control tokens (type 3) as special added tokens, user-defined ones (type 4) that the
    vocabulary holds as plain added tokens, matched whole before BPE runs."""
    types = [int(t) for t in types] if types is not None else []
    tok.add_special_tokens([
        AddedToken(spelled[i], normalized=False, special=True)
        for i, t in enumerate(types)
        if t == TOKEN_TYPE_CONTROL and (control_ok is None or control_ok[i])
    ])
    tok.add_tokens([
        AddedToken(spelled[i], normalized=False, special=False)
        for i, t in enumerate(types)
        if t == TOKEN_TYPE_USER_DEFINED and spelled[i] in vocab
    ])


def _bos_eos(spelled, bos_id, eos_id, add_bos: bool, add_eos: bool):
    """A post-processor adding BOS / EOS as the file's flags say (transformers' template)."""
    add_bos, add_eos = add_bos and bos_id is not None, add_eos and eos_id is not None
    if not add_bos and not add_eos:
        return None
    bos = spelled[bos_id] if add_bos else None
    eos = spelled[eos_id] if add_eos else None
    first, last = (f"{bos}:0 " if add_bos else ""), (f" {eos}:0" if add_eos else "")
    single = f"{first}$A:0{last}"
    pair = f"{single}{f' {bos}:1' if add_bos else ''} $B:1{f' {eos}:1' if add_eos else ''}"
    special = ([(bos, bos_id)] if add_bos else []) + (
        [(eos, eos_id)] if add_eos and eos != bos else [])
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)
