"""The attention record: every map the caller asked for, as float32 numpy on the CPU.

A plain data contract in the spirit of bertviz: one array per block, [heads, Tq, Tk], heads
counted as query heads even under GQA/MQA, plus the tokens that label the axes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from engine.core.block_key import kind_of, layer_of


@dataclass
class AttentionRecord:
    tokens: list[str]
    maps: dict[str, np.ndarray]  # block key → [H, Tq, Tk] float32
    target_tokens: list[str] | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # pre-softmax, -inf masked
    q: dict[str, np.ndarray] = field(default_factory=dict)  # [H, Tq, D]
    k: dict[str, np.ndarray] = field(default_factory=dict)  # [H, Tk, D]
    meta: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    # Contributions (attend(..., contributions=True)), read as rec["norm.<key>"] and
    # rec["flow.<key>"]: norm maps [H, Tq, Tk] and flow maps [Tq, Tk + 1] (last column the
    # residual's share). See engine/contributions.py.
    norm: dict[str, np.ndarray] = field(default_factory=dict)
    flow: dict[str, np.ndarray] = field(default_factory=dict)
    # Readable labels, one per token: byte-level "Ġ"/"Ċ" and SentencePiece "▁" shown as the
    # space or newline they stand for, a byte token of a character as "我 1/2"
    # (engine/text/readable.py). Figures show labels; hover and exports keep the raw tokens.
    labels: list[str] | None = None
    target_labels: list[str] | None = None

    def __post_init__(self) -> None:
        if self.labels is None:
            self.labels = list(self.tokens)
        if self.target_labels is None and self.target_tokens is not None:
            self.target_labels = list(self.target_tokens)
        for name, toks in (("labels", self.tokens), ("target_labels", self.target_tokens)):
            got = getattr(self, name)
            if toks is not None and len(got) != len(toks):
                raise ValueError(f"{len(got)} {name} for {len(toks)} tokens")
        for key, arr in self.norm.items():
            if key not in self.maps or arr.shape != self.maps[key].shape:
                raise ValueError(f"norm.{key}: shape {arr.shape} does not match its weights")
        for key, arr in self.flow.items():
            h, t_q, t_k = self.maps[key].shape if key in self.maps else (0, -1, -1)
            if arr.shape != (t_q, t_k + 1):
                raise ValueError(f"flow.{key}: expected [Tq, Tk + 1], got shape {arr.shape}")
        for key, arr in self.maps.items():
            if arr.ndim != 3:
                raise ValueError(f"{key}: expected [heads, Tq, Tk], got shape {arr.shape}")
            t_q, t_k = self.axis_tokens(key)
            if arr.shape[1:] != (len(t_q), len(t_k)):
                raise ValueError(
                    f"{key}: map is {arr.shape[1]}×{arr.shape[2]} but there are "
                    f"{len(t_q)} query and {len(t_k)} key tokens"
                )

    def keys(self) -> list[str]:
        return list(self.maps)

    def __getitem__(self, key: str) -> np.ndarray:
        table, name = self._table(key)
        try:
            return table[name]
        except KeyError:
            raise KeyError(f"no map {key!r}; this record has {self.keys()}"
                           + (f" and contributions for {list(self.norm)}" if self.norm else "")
                           ) from None

    def __contains__(self, key: str) -> bool:
        table, name = self._table(key)
        return name in table

    def _table(self, key: str) -> tuple[dict, str]:
        for prefix, table in (("norm.", self.norm), ("flow.", self.flow)):
            if key.startswith(prefix):
                return table, key[len(prefix):]
        return self.maps, key

    def axis_labels(self, key: str) -> tuple[list[str], list[str]]:
        """(query labels, key labels) of the map `key`: readable forms of `axis_tokens`."""
        return self._axes(key, self.labels, self.target_labels)

    def axis_tokens(self, key: str) -> tuple[list[str], list[str]]:
        """(query tokens, key tokens) labelling the map `key`."""
        return self._axes(key, self.tokens, self.target_tokens)

    def _axes(self, key: str, text: list[str], target: list[str] | None):
        """Which side labels which axis: encoder.self is text × text, decoder.cross is target
        × text, decoder.self is target × target for an encoder-decoder, text × text for a
        decoder."""
        kind = kind_of(key)
        if kind == "encoder.self":
            return text, text
        if kind == "decoder.cross":
            return target or [], text
        side = target if self.target_tokens is not None else text
        return side, side

    def mask(self, key: str) -> np.ndarray:
        """The boolean mask the engine applied in `key` ([H, Tq, Tk], True = may attend),
        read off the scores: masked cells, and only they, hold -inf. Needs scores=True."""
        if key not in self.scores:
            raise KeyError(f"no scores for {key!r}: attend(..., scores=True) records them")
        return np.isfinite(self.scores[key])

    def blocks(self, kind: str) -> list[str]:
        """Keys of one kind ("encoder.self", ...) in layer order."""
        return sorted((k for k in self.maps if kind_of(k) == kind), key=layer_of)

    @property
    def kinds(self) -> list[str]:
        seen: list[str] = []
        for k in self.maps:
            kind = kind_of(k)
            if kind not in seen:
                seen.append(kind)
        return seen

    def stack(self, kind: str) -> np.ndarray:
        """All layers of one kind: [layers, H, Tq, Tk]."""
        return np.stack([self.maps[k] for k in self.blocks(kind)])

    def to_npz(self, path) -> None:
        arrays = {key: arr.astype(np.float32) for key, arr in self.maps.items()}
        # numpy's str arrays drop trailing NULs, so the exact tokens also travel as JSON.
        arrays["tokens"] = np.array(self.tokens, dtype=str)
        arrays["tokens_json"] = np.array(json.dumps(self.tokens))
        arrays["labels_json"] = np.array(json.dumps(self.labels))
        if self.target_tokens is not None:
            arrays["target_tokens"] = np.array(self.target_tokens, dtype=str)
            arrays["target_tokens_json"] = np.array(json.dumps(self.target_tokens))
            arrays["target_labels_json"] = np.array(json.dumps(self.target_labels))
        for prefix, table in (("scores", self.scores), ("norm", self.norm), ("flow", self.flow)):
            for key, arr in table.items():
                arrays[f"{prefix}.{key}"] = arr.astype(np.float32)
        arrays["meta"] = np.array(json.dumps(self.meta, ensure_ascii=False, default=str))
        np.savez_compressed(path, **arrays)

    @classmethod
    def from_npz(cls, path) -> AttentionRecord:
        with np.load(path, allow_pickle=False) as data:
            maps = {
                k: data[k] for k in data.files
                if k.startswith(("encoder.", "decoder."))
            }
            def table(prefix: str) -> dict[str, np.ndarray]:
                return {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}

            def tokens(name: str) -> list[str] | None:
                if f"{name}_json" in data.files:
                    return json.loads(str(data[f"{name}_json"]))
                return [str(t) for t in data[name]] if name in data.files else None

            return cls(
                tokens=tokens("tokens"),
                maps=maps,
                target_tokens=tokens("target_tokens"),
                labels=tokens("labels"),
                target_labels=tokens("target_labels"),
                scores=table("scores."),
                norm=table("norm."),
                flow=table("flow."),
                meta=json.loads(str(data["meta"])),
            )
