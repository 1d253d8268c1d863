"""Gemma 3's tokenizer rebuilt from a GGUF file's metadata, as a `tokenizers.Tokenizer`.

Gemma's tokenizer is a SentencePiece BPE model with byte fallback (Kudo & Richardson, 2018):
spaces become "▁" (U+2581), no space is prepended, unknown characters fall back to
`<0xNN>` byte tokens, and `<bos>` starts every sequence. A GGUF stores the vocabulary, the
token types and scores, but no merges, so they are rebuilt here:

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

Building takes a few seconds (500k merges); `engine.io.gemma_package` caches the JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

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
    if add_bos:
        bos = spelled[bos_id]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A {bos}:1 $B:1",
            special_tokens=[(bos, bos_id)],
        )
    return tok
