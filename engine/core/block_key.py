"""Names of the attention blocks a record holds: "encoder.self.3", "decoder.self.0",
"decoder.cross.5" (layer L from 0). One type builds and parses them, so no caller splits
strings by hand."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("encoder.self", "decoder.self", "decoder.cross")


@dataclass(frozen=True)
class BlockKey:
    kind: str  # one of KINDS
    layer: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.layer < 0:
            raise ValueError(f"not a block: {self.kind}.{self.layer} (kinds: {', '.join(KINDS)})")

    @classmethod
    def parse(cls, key: str) -> BlockKey:
        """'decoder.cross.3' → BlockKey('decoder.cross', 3); anything else → ValueError."""
        kind, _, layer = str(key).rpartition(".")
        if not layer.isdigit():
            raise ValueError(f"not a block key: {key!r} (expected e.g. 'encoder.self.0')")
        return cls(kind, int(layer))

    def __str__(self) -> str:
        return f"{self.kind}.{self.layer}"

    @property
    def stack(self) -> str:
        """'encoder' or 'decoder'."""
        return self.kind.split(".")[0]

    @property
    def cross(self) -> bool:
        return self.kind == "decoder.cross"


def block_keys(arch: str, n_encoder_layers: int, n_decoder_layers: int) -> list[str]:
    """Every block of a model, in the order a forward pass meets them."""
    keys = [str(BlockKey("encoder.self", i)) for i in range(n_encoder_layers)]
    for i in range(n_decoder_layers):
        keys.append(str(BlockKey("decoder.self", i)))
        if arch == "encoder-decoder":
            keys.append(str(BlockKey("decoder.cross", i)))
    return keys


def kind_of(key: str) -> str:
    """'decoder.cross.3' → 'decoder.cross'."""
    return BlockKey.parse(key).kind


def layer_of(key: str) -> int:
    """'decoder.cross.3' → 3."""
    return BlockKey.parse(key).layer
