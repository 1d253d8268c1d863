"""Boolean attention masks: True = the query may attend to the key.

Masks combine with `&`, as in The Annotated Transformer. All builders return tensors that
broadcast against scores of shape [B, H, Tq, Tk].

Sliding window (Gemma/Mistral convention), window w = 3, causal:

    key →   0 1 2 3 4
    q 0     x . . . .
    q 1     x x . . .
    q 2     x x x . .
    q 3     . x x x .      query i sees keys i-w+1 .. i
    q 4     . . x x x
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def causal_mask(t_q: int, t_k: int, offset: int = 0, device=None) -> torch.Tensor:
    """Query i (at absolute position offset+i) sees keys 0..offset+i. Shape [Tq, Tk]."""
    q_pos = torch.arange(t_q, device=device)[:, None] + offset
    k_pos = torch.arange(t_k, device=device)[None, :]
    return k_pos <= q_pos


def window_mask(
    t_q: int, t_k: int, window: int, offset: int = 0, causal: bool = True, device=None
) -> torch.Tensor:
    """Keep at most `window` keys per query: the last `window` positions up to the query.

    Without `causal` the window is symmetric: |i - j| < window, which keeps at most
    2*window - 1 keys (bidirectional local attention). Shape [Tq, Tk].
    """
    q_pos = torch.arange(t_q, device=device)[:, None] + offset
    k_pos = torch.arange(t_k, device=device)[None, :]
    near = (q_pos - k_pos) < window
    if causal:
        return near & (k_pos <= q_pos)
    return near & ((k_pos - q_pos) < window)


def padding_mask(key_is_real: torch.Tensor) -> torch.Tensor:
    """[B, Tk] bool (True = real token) → [B, 1, 1, Tk]."""
    return key_is_real[:, None, None, :].bool()


def keep_keys_mask(t_k: int, knocked_out: list[int] | None, device=None) -> torch.Tensor:
    """Knock out key positions (no query may attend to them). Shape [Tk]."""
    keep = torch.ones(t_k, dtype=torch.bool, device=device)
    if knocked_out:
        bad = [i for i in knocked_out if not -t_k <= i < t_k]
        if bad:
            raise ValueError(f"knock-out positions {bad} are outside 0..{t_k - 1}")
        keep[list(knocked_out)] = False
    return keep


@dataclass(frozen=True)
class MaskSpec:
    """What restricts attention in one block; turned into a tensor only when needed.

    Keeping the spec instead of a dense [Tq, Tk] tensor lets the fused path use
    `is_causal=True` and skip a quadratic mask when nothing else applies.
    """

    causal: bool = False
    window: int | None = None
    key_is_real: torch.Tensor | None = None  # [B, Tk] bool
    keep_keys: torch.Tensor | None = None  # [Tk] bool (knock-outs)
    offset: int = 0  # absolute position of the first query (KV-cache decoding)

    def dense(self, t_q: int, t_k: int, device=None) -> torch.Tensor | None:
        """The combined mask, broadcastable to [B, H, Tq, Tk]; None when nothing is masked."""
        mask = None

        def both(a, b):
            return b if a is None else a & b

        if self.window is not None:
            mask = window_mask(t_q, t_k, self.window, self.offset, self.causal, device)
        elif self.causal:
            mask = causal_mask(t_q, t_k, self.offset, device)
        if self.keep_keys is not None:
            mask = both(mask, self.keep_keys.to(device)[None, :])
        if mask is not None:
            mask = mask[None, None]  # [1, 1, Tq, Tk]
        if self.key_is_real is not None:
            mask = both(mask, padding_mask(self.key_is_real.to(device)))
        return mask
