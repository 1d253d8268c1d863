"""The Transformer: encoder, decoder, or encoder-decoder (Vaswani et al., 2017), configured by
one `ModelConfig` and returning every attention map that is asked for. Read top to bottom:
embeddings → feed-forward → block (self-attention, optional cross-attention, feed-forward,
pre- or post-norm) → stack → the model → decoding steps. Record keys: "encoder.self.L",
"decoder.self.L", "decoder.cross.L" (L from 0)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from engine.core.attention import NO_CAPTURE, Attention, AttentionOutput, Capture
from engine.core.block_key import BlockKey
from engine.core.config import ModelConfig
from engine.core.kv_cache import KVCache
from engine.core.masks import MaskSpec, keep_keys_mask
from engine.core.norms import make_norm
from engine.core.positions import relative_buckets, sinusoidal_table
from engine.fast.packed import PackedLinears


class Embeddings(nn.Module):
    """Token embedding · embed_scale + position (sinusoidal or learned, whose rows may start at
    `position_offset`) + token type, then an optional norm (BERT)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.positions = (nn.Embedding(cfg.max_len + cfg.position_offset, cfg.d_model)
                          if cfg.positions == "learned" else None)
        self.types = nn.Embedding(cfg.type_vocab_size, cfg.d_model) if cfg.type_vocab_size else None
        if cfg.positions == "sinusoidal":
            table = sinusoidal_table(cfg.max_len, cfg.d_model, halves=cfg.sinusoid_halves)
            self.register_buffer("sinusoid", table, persistent=False)
        self.norm = make_norm(cfg) if cfg.embed_norm else None

    def forward(self, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """ids [B, T] → [B, T, d_model]."""
        t = ids.shape[1]
        if offset + t > self.cfg.max_len and self.cfg.positions in ("sinusoidal", "learned"):
            raise ValueError(f"{offset + t} positions exceed the model's max_len={self.cfg.max_len}"
                             )
        x = self.tokens(ids)
        if self.cfg.embed_scale is not None:
            # Gemma casts the scale to the activation dtype before multiplying.
            x = x * torch.tensor(self.cfg.embed_scale, dtype=x.dtype)
        if self.positions is not None:
            start = offset + self.cfg.position_offset
            x = x + self.positions(torch.arange(start, start + t, device=ids.device))[None]
        if self.cfg.positions == "sinusoidal":
            x = x + self.sinusoid[offset : offset + t].to(x.dtype)[None]
        if self.types is not None:
            x = x + self.types(torch.zeros_like(ids))
        return x if self.norm is None else self.norm(x)


ACT = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu,
       "gelu_tanh": lambda h: F.gelu(h, approximate="tanh")}
GATED = {"geglu": "gelu_tanh", "swiglu": "silu"}  # gated FFN → its gate's activation


class FeedForward(nn.Module):
    """Position-wise FFN: down(act(up(x))), or down(act(gate(x)) · up(x)) when gated
    (GeGLU, SwiGLU: Shazeer, 2020, "GLU Variants Improve Transformer")."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        bias, gated = cfg.has_bias("ffn"), cfg.activation in GATED
        self.act = ACT[GATED.get(cfg.activation, cfg.activation)]
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=bias)
        self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=bias) if gated else None
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=bias)
        self.packed = PackedLinears()  # a gated FFN's gate|up in one product

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            gate, up = self.packed(x, [self.gate, self.up])
            return self.down(self.act(gate) * up)
        return self.down(self.act(self.up(x)))


class LMHead(nn.Linear):
    """Hidden states → logits x·Wᵀ (+ b: BART/Marian's final_logits_bias), soft-capped as
    cap · tanh(logits / cap) where the model does so (Gemma 2)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg.d_model, cfg.vocab_size, bias=cfg.logits_bias)
        self.softcap = cfg.logits_softcap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        if self.softcap is None:
            return logits
        return torch.tanh(logits / self.softcap) * self.softcap


class Block(nn.Module):
    """Self-attention, optional cross-attention, feed-forward; each with residual and norm.

    post-norm (Vaswani, BERT):  x = Norm(x + Sublayer(x))
    pre-norm (GPT-2, Gemma):    x = x + PostNorm?(Sublayer(Norm(x)))
    """

    def __init__(self, cfg: ModelConfig, layer_index: int, cross: bool):
        super().__init__()
        self.cfg = cfg
        self.pre = cfg.norm_position == "pre"
        self.self_attn = Attention(cfg, layer_index)
        self.self_norm = make_norm(cfg)
        self.self_post = make_norm(cfg) if cfg.post_attn_norm else None
        self.cross_attn = Attention(cfg, layer_index, cross=True) if cross else None
        self.cross_norm = make_norm(cfg) if cross else None
        self.cross_post = make_norm(cfg) if cross and cfg.post_attn_norm else None
        self.ffn = FeedForward(cfg)
        self.ffn_norm = make_norm(cfg)
        self.ffn_post = make_norm(cfg) if cfg.post_ffn_norm else None

    def sublayer(self, x, norm, post, fn):
        if self.pre:
            y = fn(norm(x))
            y, extra = y if isinstance(y, tuple) else (y, None)
            return x + (y if post is None else post(y)), extra
        y = fn(x)
        y, extra = y if isinstance(y, tuple) else (y, None)
        if post is not None:
            y = post(y)
        return norm(x + y), extra

    def forward(self, x, self_mask, memory=None, cross_mask=None, cache=None, cross_cache=None,
                capture_self=NO_CAPTURE, capture_cross=NO_CAPTURE, heads_off_self=None,
                heads_off_cross=None, bias_self=None):
        x, self_rec = self.sublayer(
            x, self.self_norm, self.self_post,
            lambda h: self.self_attn(h, self_mask, cache=cache, capture=capture_self,
                                     heads_off=heads_off_self, bias=bias_self),
        )
        cross_rec = None
        if self.cross_attn is not None:
            x, cross_rec = self.sublayer(
                x, self.cross_norm, self.cross_post,
                lambda h: self.cross_attn(h, cross_mask, memory=memory, cache=cross_cache,
                                          capture=capture_cross, heads_off=heads_off_cross),
            )
        x, _ = self.sublayer(x, self.ffn_norm, self.ffn_post, self.ffn)
        return x, self_rec, cross_rec


class Stack(nn.Module):
    """Embeddings, N blocks and an optional final norm; under T5's relative positions, one
    table of [H] biases per distance bucket that every block's self-attention adds."""

    def __init__(self, cfg: ModelConfig, n_layers: int, first_index: int, cross: bool,
                 causal: bool = False):
        super().__init__()
        self.cfg, self.causal = cfg, causal
        self.embed = Embeddings(cfg)
        self.layers = nn.ModuleList(Block(cfg, first_index + i, cross) for i in range(n_layers))
        self.norm = make_norm(cfg) if cfg.final_norm else None
        self.relative = (nn.Embedding(cfg.relative_buckets, cfg.n_heads)
                         if cfg.positions == "relative" else None)

    def position_bias(self, t_q: int, t_k: int, offset: int, device) -> torch.Tensor | None:
        """T5's bias [1, H, Tq, Tk] for queries at offset .. offset+Tq-1, or None."""
        if self.relative is None:
            return None
        buckets = relative_buckets(t_q, t_k, offset, not self.causal, self.cfg.relative_buckets,
                                   self.cfg.relative_max_distance, device)  # [Tq, Tk]
        return self.relative(buckets).permute(2, 0, 1)[None]  # [1, H, Tq, Tk]


@dataclass
class Request:
    """What to record, and how to restrict attention, for one forward pass. `record`: block
    keys to capture, None for all (the others run fused, never forming [Tq, Tk] weights);
    `mask` "auto" | "causal" | "none"; `window` overrides every self-attention layer's;
    `knockout` keys no query may see; `heads_off` {block key: heads zeroed}; `maps_only`:
    stop after the deepest recorded block (layer L depends on the layers below it alone);
    `resume` (L, stream entering L): start an encoder-only or decoder-only model at layer L."""

    record: Iterable[str] | None = ()
    weights: bool = True
    scores: bool = False
    qk: bool = False
    mask: str = "auto"
    window: int | None = None
    knockout: list[int] | None = None
    heads_off: dict[str, list[int]] = field(default_factory=dict)
    maps_only: bool = False
    resume: tuple[int, torch.Tensor] | None = None

    def layers_needed(self, stack: str, n_layers: int) -> int:
        """How many of `stack`'s layers ("encoder" or "decoder") this request must run."""
        if not self.maps_only or self.record is None:
            return n_layers
        return max((BlockKey.parse(k).layer + 1 for k in self.record
                    if BlockKey.parse(k).stack == stack), default=0)

    def capture(self, key: str) -> Capture:
        if self.record is not None and key not in set(self.record):
            return NO_CAPTURE
        return Capture(weights=self.weights, scores=self.scores, qk=self.qk)


@dataclass
class ModelOutput:
    logits: torch.Tensor | None  # [B, T, vocab] (decoder side), None for an encoder
    hidden: torch.Tensor  # [B, T, d_model] last hidden state (decoder's if there is one)
    encoder_hidden: torch.Tensor | None
    record: dict[str, AttentionOutput]


class Transformer(nn.Module):
    """Encoder, decoder or encoder-decoder, per `cfg.arch`.

    forward(input_ids, ...) feeds the encoder (encoder, encoder-decoder) or the decoder
    (decoder-only); `target_ids` feed the decoder of an encoder-decoder.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        has_enc = cfg.arch in ("encoder", "encoder-decoder")
        has_dec = cfg.arch in ("decoder", "encoder-decoder")
        self.encoder = Stack(cfg, cfg.n_encoder_layers, 0, cross=False) if has_enc else None
        self.decoder = Stack(cfg, cfg.n_decoder_layers, cfg.n_encoder_layers,
                             cross=cfg.arch != "decoder", causal=True) if has_dec else None
        self.lm_head = None
        if has_dec:
            self.lm_head = LMHead(cfg)
            if cfg.tie_embeddings:
                self.lm_head.weight = self.decoder.embed.tokens.weight

    # -- masks --------------------------------------------------------------------------
    def _self_spec(self, stack: str, req: Request, key_is_real, t_k: int, text_side: bool):
        default_causal = stack == "decoder"
        causal = {"auto": default_causal, "causal": True, "none": False}.get(req.mask)
        if causal is None:
            raise ValueError(f"mask must be 'auto', 'causal' or 'none', got {req.mask!r}")
        keep = keep_keys_mask(t_k, req.knockout) if (text_side and req.knockout) else None
        return MaskSpec(causal=causal, window=req.window, key_is_real=key_is_real,
                        keep_keys=keep)

    # -- stacks -------------------------------------------------------------------------
    def encode(self, ids, key_is_real=None, req: Request | None = None, record=None):
        """ids [B, Ts] → memory [B, Ts, d_model]; fills `record` with encoder.self.L."""
        req, record = req or Request(), {} if record is None else record
        first, x = req.resume or (0, self.encoder.embed(ids))
        spec = self._self_spec("encoder", req, key_is_real, ids.shape[1], text_side=True)
        n_run = req.layers_needed("encoder", len(self.encoder.layers))
        if self.decoder is not None and req.layers_needed("decoder", self.cfg.n_decoder_layers):
            n_run = len(self.encoder.layers)  # the decoder reads the whole encoder's memory
        bias = self.encoder.position_bias(ids.shape[1], ids.shape[1], 0, ids.device)
        for i, layer in enumerate(self.encoder.layers[first:n_run], start=first):
            key = str(BlockKey("encoder.self", i))
            x, rec, _ = layer(x, spec, capture_self=req.capture(key),
                              heads_off_self=req.heads_off.get(key), bias_self=bias)
            if rec is not None:
                record[key] = rec
        return x if self.encoder.norm is None else self.encoder.norm(x)

    def decode(self, ids, key_is_real=None, memory=None, memory_is_real=None,
               req: Request | None = None, record=None, cache: KVCache | None = None):
        """ids [B, Tt] → hidden [B, Tt, d_model]; fills decoder.self.L / decoder.cross.L."""
        req, record = req or Request(), {} if record is None else record
        offset = 0 if cache is None else cache.length
        first, x = req.resume or (0, self.decoder.embed(ids, offset))
        decoder_only = self.cfg.arch == "decoder"
        t_k = offset + ids.shape[1]
        spec = self._self_spec("decoder", req, key_is_real, t_k, text_side=decoder_only)
        cross_spec = None if memory is None else MaskSpec(key_is_real=memory_is_real, keep_keys=(
            keep_keys_mask(memory.shape[1], req.knockout) if req.knockout else None))
        n_run = req.layers_needed("decoder", len(self.decoder.layers))
        bias = self.decoder.position_bias(ids.shape[1], t_k, offset, ids.device)
        for i, layer in enumerate(self.decoder.layers[first:n_run], start=first):
            self_key, cross_key = (str(BlockKey(k, i)) for k in ("decoder.self", "decoder.cross"))
            x, self_rec, cross_rec = layer(
                x, spec, memory=memory, cross_mask=cross_spec,
                cache=None if cache is None else cache.self_attn[i],
                cross_cache=None if cache is None or cache.cross_attn is None
                else cache.cross_attn[i],
                capture_self=req.capture(self_key), capture_cross=req.capture(cross_key),
                heads_off_self=req.heads_off.get(self_key),
                heads_off_cross=req.heads_off.get(cross_key), bias_self=bias)
            for key, rec in ((self_key, self_rec), (cross_key, cross_rec)):
                if rec is not None:
                    record[key] = rec
        return x if self.decoder.norm is None else self.decoder.norm(x)

    def forward(self, input_ids, input_is_real=None, target_ids=None, target_is_real=None,
                req: Request | None = None, cache: KVCache | None = None,
                logits: bool = True) -> ModelOutput:
        """Shapes: input_ids [B, T] (the encoder's, or a decoder-only model's); *_is_real [B, T]
        bool, False at padding; target_ids [B, Tt] (encoder-decoder). `logits=False` skips
        the output projection (8.6 GB for Gemma at 8,192 tokens); under `req.maps_only` only
        the record is meaningful."""
        req = req or Request()
        if req.maps_only:
            logits = False
        record: dict[str, AttentionOutput] = {}
        if self.cfg.arch == "encoder":
            h = self.encode(input_ids, input_is_real, req, record)
            return ModelOutput(None, h, h, record)
        if self.cfg.arch == "decoder":
            h = self.decode(input_ids, input_is_real, req=req, record=record, cache=cache)
            return ModelOutput(self.lm_head(h) if logits else None, h, None, record)
        if target_ids is None:
            raise ValueError("an encoder-decoder needs target_ids for the decoder")
        memory = self.encode(input_ids, input_is_real, req, record)
        if not req.layers_needed("decoder", self.cfg.n_decoder_layers):
            return ModelOutput(None, memory, memory, record)
        h = self.decode(target_ids, target_is_real, memory, input_is_real, req, record, cache)
        return ModelOutput(self.lm_head(h) if logits else None, h, memory, record)

    # -- decoding -----------------------------------------------------------------------
    def new_cache(self, capacity: int = 256, batch: int | None = None) -> KVCache:
        """A KV cache for `capacity` tokens per sequence (grown by doubling past it), its
        buffers allocated now in the model's dtype and device when `batch` is given."""
        cache = KVCache(self.cfg.n_decoder_layers, capacity, cross=self.cfg.arch != "decoder")
        if batch is not None:
            p = self.lm_head.weight
            cache.allocate(batch, self.cfg.kv_heads, self.cfg.head_dim, p.dtype, p.device)
        return cache

    @torch.no_grad()
    def extend(self, ids: torch.Tensor, cache: KVCache, memory: torch.Tensor | None = None,
               memory_is_real: torch.Tensor | None = None, req: Request | None = None,
               chunk: int | None = None) -> torch.Tensor:
        """Feed ids [B, T] to the decoder after the tokens in `cache` (which takes their K/V);
        return the last position's logits [B, vocab]. One decode step is `extend(next [B, 1],
        cache)`. `chunk` feeds at most that many positions per pass, so a long prefill holds
        [B, chunk, d_ff] activations; every chunk is the same bottom-right causal function."""
        req = req or Request(record=())
        t = ids.shape[1]
        step = t if chunk is None else chunk
        if step < 1:
            raise ValueError(f"chunk must be at least 1 position, got {chunk}")
        h = None
        for start in range(0, t, step):
            h = self.decode(ids[:, start : start + step], memory=memory,
                            memory_is_real=memory_is_real, req=req, cache=cache)
        return self.lm_head(h[:, -1])  # [B, vocab]


def init_weights(model: Transformer, seed: int = 0) -> Transformer:
    """Deterministic Xavier-uniform init (Vaswani et al. use it in their reference code)."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
            with torch.no_grad():
                p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    return model
