"""One configuration for every Transformer the engine runs.

One frozen dataclass describes an encoder (BERT), a decoder (Llama, Gemma) and an
encoder-decoder (Vaswani et al., 2017; T5, BART). Per-layer settings (RoPE, sliding window)
are tuples, so that Gemma's alternating local and global layers are one config.

`n_kv_heads` covers MHA, GQA and MQA in one field (Ainslie et al., 2023):

    n_kv_heads == n_heads   MHA: every query head has its own K/V head
    1 < n_kv_heads < n_heads GQA: n_heads // n_kv_heads query heads share one K/V head
    n_kv_heads == 1         MQA: all query heads share one K/V head
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

Arch = Literal["encoder", "decoder", "encoder-decoder"]
Activation = Literal["relu", "gelu", "gelu_tanh", "silu", "geglu", "swiglu"]
Norm = Literal["layernorm", "rmsnorm"]
Positions = Literal["sinusoidal", "learned", "rope", "alibi", "relative", "none"]

ARCHS = ("encoder", "decoder", "encoder-decoder")
# geglu = gelu_tanh(gate(x)) · up(x) (Gemma, T5 v1.1); swiglu = silu(gate(x)) · up(x) (Llama)
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu", "geglu", "swiglu")
NORMS = ("layernorm", "rmsnorm")
# relative: T5's bucketed relative position bias, one [H] vector per bucket, added to scores
POSITIONS = ("sinusoidal", "learned", "rope", "alibi", "relative", "none")
ROPE_KINDS = ("linear", "dynamic", "llama3")


@dataclass(frozen=True)
class RopeScaling:
    """How a long-context checkpoint rescales RoPE (transformers' `rope_type`): linear divides
    the frequencies by `factor` (Chen et al., 2023); dynamic raises the base past
    `original_max_len` (NTK-aware); llama3 divides the low ones, blending in between."""

    kind: str
    factor: float
    original_max_len: int = 8192
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0


def variant_name(n_heads: int, kv_heads: int) -> str:
    """The variant's name: MHA (a K/V head per query head), MQA (one K/V head shared by all)
    or GQA-G (G K/V heads, each shared by a group of query heads)."""
    if kv_heads == n_heads:
        return "MHA"
    return "MQA" if kv_heads == 1 else f"GQA-{kv_heads}"


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and choices of one Transformer. Validated on construction."""

    arch: Arch
    vocab_size: int
    d_model: int
    n_heads: int
    d_ff: int
    n_encoder_layers: int = 0
    n_decoder_layers: int = 0
    n_kv_heads: int | None = None  # None: same as n_heads (MHA)
    d_head: int | None = None  # None: d_model // n_heads
    activation: Activation = "relu"
    norm: Norm = "layernorm"
    norm_position: Literal["pre", "post"] = "post"
    norm_eps: float = 1e-5
    # Gemma-style extra norms applied to the sublayer output before the residual add.
    post_attn_norm: bool = False
    post_ffn_norm: bool = False
    final_norm: bool = False  # a norm after the last layer of each stack
    embed_norm: bool = False  # BERT: LayerNorm right after the embeddings
    positions: Positions = "sinusoidal"
    max_len: int = 512
    # RoPE base per layer (a float applies to all layers of every stack).
    rope_base: float | tuple[float, ...] = 10_000.0
    # Sliding window per layer: None = full attention. A window w lets query i see keys
    # i-w+1 .. i (w keys at most), the Gemma/Mistral convention.
    window: int | None | tuple[int | None, ...] = None
    qk_norm: bool = False
    attn_scale: float | None = None  # None: 1 / sqrt(d_head)
    embed_scale: float | None = None  # multiply token embeddings (sqrt(d_model) in Vaswani)
    tie_embeddings: bool = False
    bias: bool = True  # biases on the linear projections (the three below override it)
    qkv_bias: bool | None = None  # Qwen2: q, k, v have biases, o has none
    o_bias: bool | None = None
    ffn_bias: bool | None = None
    logits_bias: bool = False  # BART/Marian's final_logits_bias
    attn_softcap: float | None = None  # Gemma 2: scores → cap · tanh(scores / cap)
    logits_softcap: float | None = None  # Gemma 2: logits → cap · tanh(logits / cap)
    rope_scaling: RopeScaling | None | tuple[RopeScaling | None, ...] = None  # per layer
    position_offset: int = 0  # learned positions start at this row (RoBERTa: pad + 1, BART: 2)
    sinusoid_halves: bool = False  # Marian: sin in the first half of the dims, cos in the second
    relative_buckets: int = 32  # T5's relative position buckets and the distance they span
    relative_max_distance: int = 128
    type_vocab_size: int = 0  # BERT token-type embeddings (0 = none)
    pad_id: int = 0
    bos_id: int | None = None
    eos_id: int | None = None
    name: str = "transformer"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(f"ModelConfig({self.name}): {msg}")

        for name, allowed in (("arch", ARCHS), ("activation", ACTIVATIONS), ("norm", NORMS),
                              ("norm_position", ("pre", "post")), ("positions", POSITIONS)):
            if getattr(self, name) not in allowed:
                bad(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("vocab_size", "d_model", "n_heads", "d_ff", "max_len"):
            if getattr(self, name) <= 0:
                bad(f"{name} must be positive, got {getattr(self, name)}")
        if self.arch == "encoder" and (self.n_encoder_layers < 1 or self.n_decoder_layers):
            bad("an encoder needs n_encoder_layers >= 1 and n_decoder_layers = 0")
        if self.arch == "decoder" and (self.n_decoder_layers < 1 or self.n_encoder_layers):
            bad("a decoder needs n_decoder_layers >= 1 and n_encoder_layers = 0")
        if self.arch == "encoder-decoder" and min(self.n_encoder_layers, self.n_decoder_layers) < 1:
            bad("an encoder-decoder needs at least one encoder and one decoder layer")
        if self.d_head is None and self.d_model % self.n_heads:
            bad(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "set d_head explicitly or choose another head count")
        kv = self.kv_heads
        if kv < 1 or self.n_heads % kv:
            bad(f"n_kv_heads={kv} must divide n_heads={self.n_heads} "
                f"(valid: {[g for g in range(1, self.n_heads + 1) if self.n_heads % g == 0]})")
        if self.positions == "rope" and self.head_dim % 2:
            bad(f"RoPE rotates pairs of dimensions: d_head={self.head_dim} must be even")
        n = self.n_layers_total
        for name in ("rope_base", "window", "rope_scaling"):
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) != n:
                bad(f"{name} has {len(value)} entries but the model has {n} layers")
        for w in self._per_layer(self.window):
            if w is not None and w < 1:
                bad(f"a sliding window must be >= 1 token, got {w}")
        for r in self._per_layer(self.rope_scaling):
            if r is not None and (r.kind not in ROPE_KINDS or r.factor <= 0):
                bad(f"RoPE scaling must be one of {ROPE_KINDS} with a factor > 0, got {r}")
        for name in ("attn_softcap", "logits_softcap"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                bad(f"{name} must be positive or None, got {getattr(self, name)}")
        if self.type_vocab_size < 0:
            bad("type_vocab_size must be >= 0")

    # Derived sizes -------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads if self.d_head is None else self.d_head

    @property
    def group_size(self) -> int:
        """Query heads per K/V head."""
        return self.n_heads // self.kv_heads

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.head_dim) if self.attn_scale is None else self.attn_scale

    @property
    def n_layers_total(self) -> int:
        return self.n_encoder_layers + self.n_decoder_layers

    @property
    def variant(self) -> str:
        return variant_name(self.n_heads, self.kv_heads)

    def _per_layer(self, value) -> tuple:
        return value if isinstance(value, tuple) else (value,) * self.n_layers_total

    def layer_rope_base(self, index: int) -> float:
        """RoPE base of layer `index` counted over encoder layers, then decoder layers."""
        return float(self._per_layer(self.rope_base)[index])

    def layer_window(self, index: int) -> int | None:
        return self._per_layer(self.window)[index]

    def layer_rope_scaling(self, index: int) -> RopeScaling | None:
        return self._per_layer(self.rope_scaling)[index]

    def has_bias(self, where: str) -> bool:
        """Whether the "qkv", "o" or "ffn" projections have biases."""
        own = getattr(self, f"{where}_bias")
        return self.bias if own is None else own

    def kv_cache_bytes_per_token(self, bytes_per_value: int = 4) -> int:
        """K and V of every decoder self-attention layer, for one token of one sequence."""
        return 2 * self.n_decoder_layers * self.kv_heads * self.head_dim * bytes_per_value

    def with_(self, **changes) -> ModelConfig:
        """A validated copy with some fields changed."""
        return replace(self, **changes)
