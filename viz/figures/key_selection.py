"""Which keys a per-query view of a long input shows: a window of positions around the query
and the query's strongest keys, in position order, with the runs of keys left out between
them as gap rows ("… 1,203 tokens …") so the reader sees where each shown key sits.

A 2,048-token row drawn whole is 2,048 labels (a grey smear) or 2,048 bars; a window alone
hides the far keys a head often reads most (the first token, a repeated word), and the
strongest keys alone lose the neighbourhood. Both together stay readable (≤ ~80 labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SHOWN = 80  # token labels per side of a per-query view of a long input


@dataclass(frozen=True)
class KeySelection:
    """The keys shown for one query of a long input.

    keys: every shown key position, ascending (the window and the strongest keys together);
    window: the half-open key range around the query; strongest: the positions picked by
    weight (the k strongest, or those outside the window), ascending; n_keys: Tk.
    """

    query: int
    window: tuple[int, int]
    strongest: np.ndarray  # int32 [S]
    keys: np.ndarray  # int32 [N]
    n_keys: int

    def rows(self) -> list[tuple[str, int, int]]:
        """Top-to-bottom rows: ("key", p, p + 1) for a shown key, ("gap", a, b) for the keys
        a..b-1 left out between shown ones (also before the first and after the last)."""
        out: list[tuple[str, int, int]] = []
        prev = 0
        for p in self.keys.tolist():
            if p > prev:
                out.append(("gap", prev, p))
            out.append(("key", p, p + 1))
            prev = p + 1
        if prev < self.n_keys:
            out.append(("gap", prev, self.n_keys))
        return out

    def row_of(self) -> dict[int, int]:
        """{shown key position: its row index in `rows()`}."""
        return {a: i for i, (kind, a, _) in enumerate(self.rows()) if kind == "key"}


def window_range(center: int, half_width: int, n: int, *, causal: bool = False
                 ) -> tuple[int, int]:
    """The half-open range of 2·half_width + 1 positions around `center` within 0..n: centred,
    shifted inward at either end (so a text's last token still gets a full window), and
    ending at `center` when `causal` (the keys after it weigh nothing)."""
    size = min(n, 2 * half_width + 1)
    if causal:
        hi = center + 1
        return max(0, hi - size), hi
    lo = min(max(0, center - half_width), n - size)
    return lo, lo + size


def select_keys(
    strength: np.ndarray,
    query: int,
    *,
    half_width: int,
    k: int,
    center: int | None = None,
    outside_window: bool = True,
    max_shown: int = MAX_SHOWN,
) -> KeySelection:
    """The keys a per-query view shows: a window of 2·half_width + 1 positions around
    `center` (default: the query, as in self-attention; see `window_range`; it ends at the
    centre when every key after it weighs 0, as for a causal query) and the k strongest
    keys, outside the window when `outside_window` (so k rows are added) or among all keys
    (the union is shown).

    Shapes: strength [Tk] (one query's weights), or [R, Tk] (several heads' rows: a key's
    strength is its largest weight among them). Keys of weight 0 (masked, or beyond a
    causal query) are never picked as strongest; ties go to the earlier position.
    Raises ValueError when more than `max_shown` keys could be shown.
    """
    strength = np.asarray(strength, dtype=np.float32)
    if strength.ndim == 2:
        strength = strength.max(axis=0)
    if strength.ndim != 1:
        raise ValueError(f"strength must be [Tk] or [R, Tk], got shape {strength.shape}")
    n = strength.shape[0]
    if half_width < 0 or k < 0:
        raise ValueError(f"window ±{half_width} and k = {k}: both must be ≥ 0")
    if 2 * half_width + 1 + k > max_shown:
        raise ValueError(f"window ±{half_width} and {k} strongest keys: up to "
                         f"{2 * half_width + 1 + k} labels, at most {max_shown}")
    center = query if center is None else center
    if not 0 <= center < n:
        raise ValueError(f"window centre {center} outside 0..{n - 1}")
    # a causal query (every key after it weighs 0): the window looks back from it
    lo, hi = window_range(center, half_width, n, causal=not strength[center + 1:].any())
    candidate = np.isfinite(strength) & (strength > 0)
    if outside_window:
        candidate[lo:hi] = False
    pool = np.nonzero(candidate)[0]
    order = np.argsort(-strength[pool], kind="stable")[:k]  # stable: earlier position on ties
    strongest = np.sort(pool[order]).astype(np.int32)
    keys = np.union1d(np.arange(lo, hi), strongest).astype(np.int32)
    return KeySelection(query=int(query), window=(lo, hi), strongest=strongest, keys=keys,
                        n_keys=n)


__all__ = ["MAX_SHOWN", "KeySelection", "select_keys", "window_range"]
