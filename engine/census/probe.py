"""The induction probe (Olsson et al., 2022, "In-context Learning and Induction Heads"), as
TransformerLens's tutorials run it.

Sequences of `length` tokens drawn uniformly (seeded) from the vocabulary without special
tokens, each repeated twice, with the model's BOS first where it has one:

    [BOS] t_1 … t_n t_1 … t_n          position of the second t_i: i + n (+1 with BOS)

An induction head, at the second t_i, looks back at the token that followed t_i the first
time (t_{i+1}, position i + 1) to predict it again. A head's score is its mean weight from
every token of the second copy to the token just after that token's first occurrence, i.e.
query p → key p − n + 1, averaged over the n queries of the second copy and the sequences.
(TransformerLens takes the whole diagonal at offset 1 − n, which also counts two queries of
the first copy; the score here keeps to the second copy, as the definition reads.) A random
draw can repeat a token inside one copy; positions, not token identity, define the target.

"The model's BOS": `config.bos_id` where the config has one (Gemma, SmolLM2); otherwise the
special token its codec puts first on every text (MiniLM's [CLS]), else none.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.core.block_key import BlockKey
from engine.core.transformer import Request

N_SEQUENCES = 4
LENGTH = 50
SEED = 0


def special_ids(model) -> set[int]:
    """Ids never drawn: the tokenizer's special tokens and the config's BOS/EOS/pad."""
    cfg = model.config
    found = {i for i in (cfg.bos_id, cfg.eos_id, cfg.pad_id) if i is not None}
    tok = getattr(model.codec, "tok", None)
    if tok is not None:
        found |= {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    elif hasattr(model.codec, "SPECIALS"):  # the hash-word codec: ids 0..len-1
        found |= set(range(len(model.codec.SPECIALS)))
    return found


def start_id(model) -> int | None:
    """The token every input starts with: BOS, or the codec's leading special token."""
    if model.config.bos_id is not None:
        return int(model.config.bos_id)
    first = model.codec.encode("a").ids[0]
    return int(first) if first in special_ids(model) else None


def vocab_size(model) -> int:
    tok = getattr(model.codec, "tok", None)
    size = model.config.vocab_size
    return size if tok is None else min(size, tok.get_vocab_size(with_added_tokens=True))


def probe_ids(model, n_sequences: int = N_SEQUENCES, length: int = LENGTH,
              seed: int = SEED) -> tuple[np.ndarray, int]:
    """The probe's inputs and the position of the first token of the first copy.

    Shapes: → ids [n_sequences, offset + 2·length] int64, offset (1 with a BOS, else 0).
    """
    banned = special_ids(model)
    pool = np.array([i for i in range(vocab_size(model)) if i not in banned], dtype=np.int64)
    rng = np.random.default_rng(seed)
    draws = pool[rng.integers(0, len(pool), size=(n_sequences, length))]  # [N, n]
    seqs = np.concatenate([draws, draws], axis=1)  # [N, 2n]
    bos = start_id(model)
    if bos is None:
        return seqs, 0
    return np.concatenate([np.full((n_sequences, 1), bos, dtype=np.int64), seqs], axis=1), 1


def induction_scores(weights: np.ndarray, length: int, offset: int) -> np.ndarray:
    """Mean weight from each second-copy token to the token after its first occurrence.

    Shapes: weights [N, H, T, T] with T = offset + 2·length → [H] float64.
    """
    queries = np.arange(offset + length, offset + 2 * length)  # the second copy
    keys = queries - length + 1  # just after the first occurrence
    a = np.asarray(weights, dtype=np.float64)
    return a[:, :, queries, keys].mean(axis=(0, 2))


def induction_probe(model, n_sequences: int = N_SEQUENCES, length: int = LENGTH,
                    seed: int = SEED) -> dict[str, np.ndarray]:
    """{block key: [H] induction scores} for every self-attention block of `model`.

    The inputs are token ids, not text (random tokens do not survive a round trip through
    text), so this one pass runs the model's Transformer directly, every block recorded.
    """
    ids, offset = probe_ids(model, n_sequences, length, seed)
    if ids.shape[1] > model.config.max_len:
        raise ValueError(f"the induction probe needs {ids.shape[1]} positions; "
                         f"{model.name} reads at most {model.config.max_len}")
    req = Request(record=None, weights=True, maps_only=True)
    with torch.inference_mode():
        out = model.transformer(torch.as_tensor(ids, device=model.device), None, req=req,
                                logits=False)
    scores = {}
    for key, rec in out.record.items():
        if not BlockKey.parse(key).cross and rec.weights is not None:
            scores[key] = induction_scores(rec.weights.float().cpu().numpy(), length, offset)
    return scores
