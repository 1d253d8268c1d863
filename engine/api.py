"""The engine's public face: `load(name)` and `LoadedModel.attend(text, ...)`.

A LoadedModel couples a Transformer with its codec and knows what its kind of model
outputs: a sentence embedding (encoder), next-token probabilities and greedy text
(decoder), the decoded target (encoder-decoder).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from engine import contributions as contrib
from engine.core.block_key import block_keys, kind_of, layer_of
from engine.core.config import ModelConfig
from engine.core.transformer import Request, Transformer
from engine.decode.greedy import generate
from engine.errors import InputError
from engine.record import AttentionRecord
from engine.text.codec import Encoded
from engine.variants import allowed_kv_heads, convert_kv_heads

Progress = Callable[[float, str], None]
VERSION = "0.1.0"
MAX_GENERATE = 256
# Memory the recorded maps of one call may take (ATTENTION_STUDIO_MAX_RECORD_GIB overrides).
MAX_RECORD_BYTES = int(float(os.environ.get("ATTENTION_STUDIO_MAX_RECORD_GIB", "4")) * 2**30)


SMALL_INPUT = 256  # tokens up to which one CPU thread beats several
ALL_THREADS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else (os.cpu_count() or 1))


def pick_threads(n_tokens: int, device: torch.device) -> None:
    """One intra-op thread for short CPU inputs, every core for long ones: on a small CPU,
    OpenMP threads on a 16-token MiniLM pass wait for each other more than they compute
    (measured on the 2-core dev VM under load: 240 ms with 2 threads, 23 ms with 1).
    Process-wide, so concurrent callers only trade speed, never results."""
    if device.type != "cpu":
        return
    want = 1 if n_tokens <= SMALL_INPUT else ALL_THREADS
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


# -- per-layer progress ------------------------------------------------------------------
# A pass reports `callback(done, total)` after each Transformer block it runs: `done` counts
# 1..total in order, `total` is the number of blocks that pass runs (fewer than the model has
# when a maps-only pass stops early). The callback is handed to `attend` as `progress=`, or
# set for a stretch of code with `reporting_progress(callback)`, which a cached wrapper can
# surround without the callback becoming one of its arguments (a cache key): the pass reads
# it from a context variable. The hooks only count, so no number changes, and engine/core
# knows nothing of them (forward hooks put on the blocks for one pass and removed after).
LayerProgress = Callable[[int, int], None]  # (blocks done, blocks in the pass)
_progress: contextvars.ContextVar[LayerProgress | None] = contextvars.ContextVar(
    "engine_layer_progress", default=None)


@contextlib.contextmanager
def reporting_progress(callback: LayerProgress | None):
    """Within the block, passes in this thread (and context) report to `callback` unless a
    call names its own `progress=`."""
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


def current_progress(explicit: LayerProgress | None = None) -> LayerProgress | None:
    """The callback a pass reports to: the one passed in, else the one reporting_progress set."""
    return explicit if explicit is not None else _progress.get()


@contextlib.contextmanager
def per_block(blocks, total: int, callback: LayerProgress | None):
    """Within the block, `callback(done, total)` after each forward of one of `blocks` run by
    this thread. The thread check matters: a model is shared by every session of the app, so
    another session's pass at the same time goes through the same modules and must not move
    this one's bar."""
    if callback is None or total <= 0:
        yield
        return
    owner, done = threading.get_ident(), 0

    def after_block(_module, _args, _out) -> None:
        nonlocal done
        if threading.get_ident() == owner:
            done += 1
            callback(done, total)

    handles = [b.register_forward_hook(after_block) for b in blocks]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class Notice(str):
    """A notice about an input or a model: its English text (the string itself, so every
    reader of plain notices keeps working), a stable `code` and the `args` it was made
    from, so an interface can say it in the reader's language."""

    def __new__(cls, code: str, text: str, args: dict | None = None):
        notice = super().__new__(cls, text)
        notice.code, notice.args = code, dict(args or {})
        return notice

    def __reduce__(self):  # st.cache_data pickles records: keep code and args
        return (Notice, (self.code, str(self), self.args))


def resolve_device(device: str | torch.device = "auto") -> tuple[torch.device, str | None]:
    """'auto' → CUDA when present, else CPU. CUDA asked for but absent → CPU and a notice."""
    name = str(device)
    if name not in ("auto", "cpu") and not name.startswith("cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu"), None
    if name.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu"), Notice(
            "cuda_unavailable", "CUDA was asked for but no GPU is available: running on CPU")
    return torch.device(name), None


@dataclass(frozen=True)
class AttendOptions:
    """What `attend` records and how it restricts attention (validated on construction).

    `mask`: "auto" (the model's own), "causal" or "none"; `window`: a sliding window of N
    keys; `knockout`: key positions no query may attend to. `kv_heads`: convert MHA to GQA/MQA
    by mean-pooling K/V (Ainslie et al., 2023). `layers`: layer indices or block keys to
    record (None = all); the others run fused and never form a [Tq, Tk] map. `scores`:
    also the pre-softmax scores (masked cells -inf); `qk`: per-head q and k. `heads_off`:
    {block key: [heads]} to ablate. `generate`: decoder-only, greedy tokens to append before
    recording; `top_k`: next-token probabilities kept. `outputs=False`: maps only; the pass
    stops after the deepest recorded layer and the record has no embedding or next-token
    outputs (layers=[0] of 18 costs ~1/18 of a pass). `contributions`: also the norm and flow
    maps of every recorded block (`rec["norm.<key>"]`, `rec["flow.<key>"]`,
    engine/contributions.py). `logit_lens` (decoders): per layer, the top-k next tokens the
    final norm and unembedding give at `lens_position` (default: the last real token), in
    `rec.outputs["logit_lens"]`. `resume` (layer L, stream float32 [T, d_model]), for an
    encoder-only or decoder-only model and one text: start at layer L with the residual
    stream an earlier pass of the same text and options recorded entering it (what
    engine.replay.stream_layers keeps), instead of running layers 0..L-1 again; the record
    then holds no block below L. The numbers are the full pass's: those layers' output is
    that stream.
    """

    mask: str = "auto"
    kv_heads: int | None = None
    window: int | None = None
    layers: list | None = None
    knockout: list[int] | None = None
    scores: bool = False
    qk: bool = False
    heads_off: dict[str, list[int]] | None = None
    generate: int = 0
    top_k: int = 10
    outputs: bool = True
    contributions: bool = False
    logit_lens: bool = False
    lens_position: int | None = None
    resume: tuple[int, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.mask not in ("auto", "causal", "none"):
            raise InputError(f"mask must be auto, causal or none, got {self.mask!r}")
        if self.window is not None and self.window < 1:
            raise InputError(f"the sliding window must be at least 1 token, got {self.window}")
        if not 0 <= self.generate <= MAX_GENERATE:
            raise InputError(f"generate must be between 0 and {MAX_GENERATE} tokens")
        if self.logit_lens and not self.outputs:
            raise InputError("the logit lens needs the whole pass: leave outputs on")
        if self.resume is not None and (self.logit_lens or self.generate or self.kv_heads):
            raise InputError("resume starts a pass half-way: not with the logit lens (it "
                             "reads every layer), generation or a K/V-head variant")

    def with_(self, **changes) -> AttendOptions:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"attend() got unknown options {sorted(unknown)}")
        return replace(self, **changes) if changes else self

    def settings(self, model_kv_heads: int) -> dict:
        """The options as the record's `meta["settings"]` states them."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("scores", "qk", "top_k", "lens_position", "resume")}
        out["kv_heads"] = self.kv_heads or model_kv_heads
        if self.resume is not None:  # the layer, not the stream: meta stays small
            out["resumed_at_layer"] = int(self.resume[0])
        return out


@dataclass
class LoadedModel:
    """A model ready to attend. `codec` turns text into ids; `target_codec` the decoder side
    of an encoder-decoder (defaults to `codec`)."""

    name: str
    transformer: Transformer
    codec: object
    device: torch.device
    description: str = ""
    target_codec: object | None = None
    load_seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    weights_hash: str = ""
    # Model-specific remarks on an input / a generated text (e.g. "this does not look like a
    # date" for the date normaliser); each returns a list of notices.
    max_target_tokens: int = 64  # greedy decoding limit of an encoder-decoder without target
    input_notes: Callable[[str], list[str]] | None = None
    output_notes: Callable[[str], list[str]] | None = None
    _variants: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def config(self) -> ModelConfig:
        return self.transformer.cfg

    @property
    def kind(self) -> str:
        return self.config.arch

    @property
    def info(self) -> dict:
        c = self.config
        return {
            "name": self.name, "kind": c.arch, "encoder_layers": c.n_encoder_layers,
            "decoder_layers": c.n_decoder_layers, "heads": c.n_heads, "kv_heads": c.kv_heads,
            "d_model": c.d_model, "d_head": c.head_dim, "positions": c.positions,
            "device": str(self.device), "description": self.description,
        }

    # -- variants -----------------------------------------------------------------------
    def variant(self, kv_heads: int | None) -> Transformer:
        """The model with `kv_heads` K/V heads (converted once, then cached)."""
        if kv_heads is None or kv_heads == self.config.kv_heads:
            return self.transformer
        allowed = allowed_kv_heads(self.config.n_heads, self.config.kv_heads)
        if kv_heads not in allowed:
            raise InputError(
                f"{self.name} has {self.config.n_heads} query heads and {self.config.kv_heads} "
                f"K/V heads: --kv-heads must be one of {allowed}"
            )
        with self._lock:
            if kv_heads not in self._variants:
                self._variants[kv_heads] = convert_kv_heads(self.transformer, kv_heads)
            return self._variants[kv_heads]

    def block_keys(self) -> list[str]:
        c = self.config
        return block_keys(c.arch, c.n_encoder_layers, c.n_decoder_layers)

    def _record_keys(self, layers) -> list[str] | None:
        if layers is None:
            return None
        keys = []
        for item in layers:
            if isinstance(item, str):
                if item not in self.block_keys():
                    raise InputError(f"{self.name} has no block {item!r}")
                keys.append(item)
            else:
                found = [k for k in self.block_keys() if layer_of(k) == int(item)]
                if not found:
                    raise InputError(f"{self.name} has no layer {item}")
                keys += found
        return keys

    # -- attention ----------------------------------------------------------------------
    def attend(self, text: str, target: str | None = None,
               options: AttendOptions | None = None,
               progress: LayerProgress | None = None,
               **changes) -> AttentionRecord:
        """Run `text` (and `target` for an encoder-decoder) and record attention.

        Returns an AttentionRecord whose maps are float32 [heads, Tq, Tk] per block key.
        `options` (or the same fields as keyword arguments: `attend(text, layers=[3])`) say
        what to record and how to restrict attention; see `AttendOptions`. `progress(done,
        total)` is called after each block of the recording pass (by default the callback
        `reporting_progress` set, if any); it is not an option and changes no number.
        """
        return self.attend_batch([text], target=None if target is None else [target],
                                 options=options, progress=progress, **changes)[0]

    def attend_batch(self, texts: list[str], target: list[str] | None = None,
                     options: AttendOptions | None = None,
                     progress: LayerProgress | None = None,
                     **changes) -> list[AttentionRecord]:
        """Several texts in one right-padded batch; each record spans the padded length
        (its tokens end with the pad token) and `meta["n_real"]` is its real length."""
        opts = (options or AttendOptions()).with_(**changes)
        report = current_progress(progress)
        mask, kv_heads, window, layers = opts.mask, opts.kv_heads, opts.window, opts.layers
        knockout, generate, outputs = opts.knockout, opts.generate, opts.outputs
        model = self.variant(kv_heads)
        encoded = [self.codec.encode(t) for t in texts]
        pick_threads(max(len(e.ids) for e in encoded) + generate, self.device)
        req = Request(record=self._record_keys(layers), weights=True, scores=opts.scores,
                      qk=opts.qk, mask=mask, window=window, knockout=knockout,
                      heads_off=opts.heads_off or {}, maps_only=not outputs,
                      resume=self._resume(opts.resume, encoded))
        results: list[dict] = [{} for _ in texts]  # per text: embedding, top-k, ...
        target_enc: list[Encoded] | None = None
        try:
            with torch.inference_mode():
                if self.kind == "decoder" and generate:
                    encoded = [self._generate(model, e, generate, o)
                               for e, o in zip(encoded, results, strict=True)]
                ids, real = self._pad([e.ids for e in encoded])
                if self.kind == "encoder-decoder":
                    target_enc = self._targets(model, encoded, target, results)
                    tgt, tgt_real = self._pad([e.ids for e in target_enc])
                    self._check_budget(req, len(texts), ids.shape[1], tgt.shape[1],
                                       opts.contributions)
                    with (self._watch(model, req, opts) as (seen, streams),
                          _counting_blocks(model, req, report)):
                        out = model(ids, real, tgt, tgt_real, req=req, logits=False)
                else:
                    self._check_budget(req, len(texts), ids.shape[1], ids.shape[1],
                                       opts.contributions)
                    with (self._watch(model, req, opts) as (seen, streams),
                          _counting_blocks(model, req, report)):
                        out = model(ids, real, req=req, logits=False)
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise self._oom(ids.shape[1]) from exc
        except RuntimeError as exc:  # the CPU allocator reports a failure as RuntimeError
            if "can't allocate memory" not in str(exc):
                raise
            raise self._oom(ids.shape[1]) from exc
        except IndexError as exc:
            raise InputError(f"knock-out position out of range: {exc}") from exc
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        if not req.maps_only:  # else the pass stopped early: its hidden states are not final
            self._outputs(model, out, real, results, opts.top_k)
        contributions = {}
        if opts.contributions:
            with torch.inference_mode():
                contributions = contrib.compute(model, seen, out.record, opts.heads_off)
        if opts.logit_lens:
            self._logit_lens(model, streams, real, results, opts)
        return [
            self._record(i, out, encoded, target_enc, results[i], dict(
                opts.settings(self.config.kv_heads),
                target=None if target is None else target[i], text=texts[i]),
                {k: (v[0][i], v[1][i]) for k, v in contributions.items()})
            for i in range(len(texts))
        ]

    def _resume(self, resume, encoded: list[Encoded]) -> tuple[int, torch.Tensor] | None:
        """AttendOptions.resume checked against this model and text, as a Request's."""
        if resume is None:
            return None
        layer, stream = int(resume[0]), np.asarray(resume[1], dtype=np.float32)
        c = self.config
        n_layers = c.n_encoder_layers if self.kind == "encoder" else c.n_decoder_layers
        if self.kind not in ("encoder", "decoder") or len(encoded) != 1:
            raise InputError("resume covers one text of an encoder-only or decoder-only model")
        if not 0 <= layer < n_layers:
            raise InputError(f"resume layer {layer} is outside the model's {n_layers} layers")
        want = (len(encoded[0].ids), c.d_model)
        if stream.shape != want:
            raise InputError(f"the resumed stream is {list(stream.shape)}; this text needs "
                             f"{list(want)} (tokens × d_model)")
        dtype = next(self.transformer.parameters()).dtype  # the stream was stored as float32
        return layer, torch.from_numpy(stream)[None].to(device=self.device, dtype=dtype)

    @contextlib.contextmanager
    def _watch(self, model: Transformer, req: Request, opts: AttendOptions):
        """Hooks for what contributions and the logit lens read off the pass."""
        with contextlib.ExitStack() as stack:
            seen = streams = None
            if opts.contributions:
                keys = list(req.record) if req.record is not None else self.block_keys()
                seen = stack.enter_context(contrib.watching(model, keys))
            if opts.logit_lens:
                if self.kind != "decoder":
                    raise InputError("the logit lens reads a decoder's next-token predictions; "
                                     f"{self.name} is an {self.kind}")
                streams = stack.enter_context(contrib.layer_outputs(model))
            yield seen, streams

    def _logit_lens(self, model, streams, real, results, opts: AttendOptions) -> None:
        lengths = ([streams[0].shape[1]] * len(results) if real is None
                   else real.sum(1).tolist())
        for b, o in enumerate(results):
            n = int(lengths[b])
            pos = n - 1 if opts.lens_position is None else opts.lens_position
            if not -n <= pos < n:
                raise InputError(f"lens_position {pos} is outside the text's {n} tokens")
            o["logit_lens"] = self.lens(model, [h[b] for h in streams], pos % n, opts.top_k)
            o["logit_lens_position"] = pos % n

    def lens(self, model: Transformer, streams: list[torch.Tensor], position: int,
             top_k: int = 10) -> list[list[tuple[str, float]]]:
        """The logit lens at `position` from each layer's output stream [T, d], as rows of
        (token, probability) per layer."""
        with torch.inference_mode():
            layers = contrib.logit_lens(model, streams, position, top_k)
        return [[(self.codec.tok.id_to_token(i), p) for i, p in zip(ids, ps, strict=True)]
                for ids, ps in layers]

    def _oom(self, n_tokens: int) -> InputError:
        return InputError(
            f"out of memory on {self.device} for {n_tokens} tokens: shorten the text, "
            "record fewer layers (layers=[k]), or use a device with more memory"
        )

    def _check_budget(self, req: Request, batch: int, t_src: int, t_tgt: int,
                      contributions: bool = False) -> None:
        """Refuse, before any work, a record whose maps alone would exceed the budget: the
        maps grow with the square of the length, and an 8,192-token Gemma text recorded at
        every layer would need ~19 GiB and take the whole process down."""
        keys = req.record if req.record is not None else self.block_keys()
        cells = 0
        for key in keys:
            kind = kind_of(key)
            t_q = t_tgt if kind != "encoder.self" and self.kind == "encoder-decoder" else t_src
            t_k = t_tgt if kind == "decoder.self" and self.kind == "encoder-decoder" else t_src
            cells += t_q * t_k
        # kept maps (+ scores, + norm maps) + transient scores/weights
        copies = 1 + req.scores + contributions + 2
        need = cells * batch * self.config.n_heads * 4 * copies
        if need > MAX_RECORD_BYTES:
            raise InputError(
                f"recording {len(list(keys))} blocks at {t_src} tokens needs about "
                f"{need / 2**30:.1f} GiB (the limit is {MAX_RECORD_BYTES / 2**30:.0f} GiB): "
                "record fewer layers (layers=[k]) or shorten the text"
            )

    def _pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = max(len(s) for s in seqs)
        pad = self.config.pad_id
        ids = torch.tensor([s + [pad] * (t - len(s)) for s in seqs], device=self.device)
        if all(len(s) == t for s in seqs):
            return ids, None
        real = torch.tensor([[True] * len(s) + [False] * (t - len(s)) for s in seqs],
                            device=self.device)
        return ids, real

    def _generate(self, model, enc: Encoded, n: int, outputs: dict) -> Encoded:
        ids = torch.tensor([enc.ids], device=self.device)
        new = generate(model, ids, n, eos_id=self.config.eos_id)[0].tolist()
        outputs["generated"] = self.codec.decode(new)
        outputs["generated_ids"] = new
        tokens = [self.codec.tok.id_to_token(i) for i in new]
        return Encoded(enc.ids + new, enc.tokens + tokens, enc.truncated, enc.n_original)

    def _targets(self, model, encoded, target, outputs) -> list[Encoded]:
        """Decoder inputs: [BOS] + the target's tokens, or [BOS] + the greedy decode."""
        codec = self.target_codec or self.codec
        bos, eos = self.config.bos_id, self.config.eos_id
        bos_token = codec.tok.id_to_token(bos) if hasattr(codec, "tok") else "[BOS]"
        result = []
        for i, enc in enumerate(encoded):
            cut, n = False, 0
            start, start_token = bos, bos_token
            forcing = self.config.extra.get("teacher_forcing")  # Hugging Face checkpoints
            if target is not None and forcing:
                # As transformers shifts `labels` right: the start token, then the target's
                # tokens (with the tokenizer's specials) without the last one. mBART starts
                # from the last one (its language id) instead of decoder_start_token_id.
                t = codec.encode(target[i], add_special=True)
                ids, toks, cut, n = t.ids[:-1], t.tokens[:-1], t.truncated, t.n_original
                if forcing == "last-token":
                    start, start_token = t.ids[-1], t.tokens[-1]
            elif target is not None:
                t = codec.encode(target[i], add_special=False)
                ids, toks, cut, n = t.ids, t.tokens, t.truncated, t.n_original
            else:
                src = torch.tensor([enc.ids], device=self.device)
                limit = min(self.max_target_tokens, self.config.max_len - 1)
                ids = generate(model, src, limit, eos_id=eos)[0].tolist()
                if ids and ids[-1] == eos:
                    ids = ids[:-1]
                toks = [codec.tok.id_to_token(j) if hasattr(codec, "tok") else str(j)
                        for j in ids]
                outputs[i]["generated"] = codec.decode(ids)
            result.append(Encoded([start] + ids, [start_token] + toks, cut, n))
        return result

    def _outputs(self, model, out, real, outputs, top_k: int) -> None:
        c = self.config
        if c.arch == "encoder" and c.extra.get("pooling") == "mean":
            h = out.hidden.float()
            w = torch.ones(h.shape[:2], device=h.device) if real is None else real.float()
            pooled = (h * w[..., None]).sum(1) / w.sum(1, keepdim=True)
            if c.extra.get("normalize"):
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            for o, e in zip(outputs, pooled, strict=True):
                o["embedding"] = e.cpu().numpy()
        if c.arch == "decoder":
            lengths = [h.shape[0] for h in out.hidden] if real is None else real.sum(1).tolist()
            for b, o in enumerate(outputs):
                with torch.inference_mode():  # only the last real position's logits
                    logits = model.lm_head(out.hidden[b, int(lengths[b]) - 1]).float()
                probs = torch.softmax(logits, -1)
                p, idx = probs.topk(top_k)
                o["top_k"] = [(self.codec.tok.id_to_token(int(i)), float(v))
                              for v, i in zip(p, idx, strict=True)]
                o["top_k_ids"] = idx.tolist()

    def _record(self, b: int, out, encoded, target_enc, outputs, settings,
                contributions) -> AttentionRecord:
        def np32(t):
            return t[b].float().cpu().numpy()

        t_max = max(len(e.ids) for e in encoded)
        enc = encoded[b]
        pad = getattr(self.codec, "pad_token", "[PAD]")
        tokens = enc.tokens + [pad] * (t_max - len(enc.ids))
        target_tokens = None
        if target_enc is not None:
            tt_max = max(len(e.ids) for e in target_enc)
            target_tokens = target_enc[b].tokens + [pad] * (tt_max - len(target_enc[b].ids))
        notices = list(self.notices)
        if enc.truncated and self.input_notes is None:  # else input_notes says it better
            args = dict(n=len(enc.ids), had=enc.n_original, model=self.name,
                        max=self.codec.max_tokens)
            notices.append(Notice("truncated", "the text was cut to {n} tokens (it had {had}); "
                                  "{model} reads at most {max}".format(**args), args))
        if target_enc is not None and target_enc[b].truncated:
            args = dict(n=len(target_enc[b].ids) - 1, had=target_enc[b].n_original,
                        model=self.name, max=(self.target_codec or self.codec).max_tokens)
            notices.append(Notice("target_truncated", "the target was cut to {n} tokens (it had "
                                  "{had}); {model} reads at most {max}".format(**args), args))
        if self.input_notes is not None:
            notices += [n for n in self.input_notes(settings["text"]) if n not in notices]
        if self.output_notes is not None and "generated" in outputs:
            notices += self.output_notes(outputs["generated"])
        if self.config.positions == "rope" and len(enc.ids) > self.config.max_len:
            # RoPE runs past its training length (dynamic scaling is made for it), but the
            # maps there show a model outside what it learned.
            args = dict(n=len(enc.ids), max=self.config.max_len, model=self.name)
            notices.append(Notice("beyond_training_length", "the text has {n} tokens, more than "
                                  "the {max} positions {model} was trained on".format(**args),
                                  args))
        share = self.codec.unknown_share(enc.ids)
        if share > 0.2:
            # Gemma is the suggestion for Chinese text only (emoji are unknown to it as well)
            chinese = any("\u4e00" <= ch <= "\u9fff" for ch in settings["text"])
            args = dict(share=share, model=self.name, chinese=chinese)
            text = "{share:.0%} of the tokens are unknown to {model}'s vocabulary ([UNK])"
            text += "; for Chinese text try gemma3-270m" if chinese else ""
            notices.append(Notice("unknown_tokens" if chinese else "unknown_tokens_other",
                                  text.format(**args), args))
        meta = {
            "model": self.name, "settings": settings, "device": str(self.device),
            "engine_version": VERSION, "torch_version": torch.__version__,
            "weights_hash": self.weights_hash,
            "truncated": enc.truncated or bool(target_enc and target_enc[b].truncated),
            "n_real": len(enc.ids), "notices": notices,
        }
        rec = out.record
        def labels(codec, toks):
            return codec.labels(toks) if toks is not None and hasattr(codec, "labels") else None

        return AttentionRecord(
            tokens=tokens,
            target_tokens=target_tokens,
            labels=labels(self.codec, tokens),
            target_labels=labels(self.target_codec or self.codec, target_tokens),
            maps={k: np32(v.weights) for k, v in rec.items() if v.weights is not None},
            scores={k: np32(v.scores) for k, v in rec.items() if v.scores is not None},
            q={k: np32(v.q) for k, v in rec.items() if v.q is not None},
            k={k: np32(v.k) for k, v in rec.items() if v.k is not None},
            meta=meta,
            outputs=outputs,
            norm={k: n.float().cpu().numpy() for k, (n, _) in contributions.items()},
            flow={k: f.float().cpu().numpy() for k, (_, f) in contributions.items()},
        )


def _counting_blocks(model: Transformer, req: Request, report):
    """Progress over the blocks this recording pass runs: as Transformer.encode/decode
    choose them, a maps-only pass stops after its deepest recorded block, and an
    encoder-decoder whose decoder runs reads the whole encoder. (Greedy tokens generated
    before the pass are not counted: the bar is the recording pass's; a resumed pass counts
    from its first layer.)"""
    first = req.resume[0] if req.resume is not None else 0
    dec = (req.layers_needed("decoder", len(model.decoder.layers))
           if model.decoder is not None else 0)
    enc = 0
    if model.encoder is not None:
        enc = (len(model.encoder.layers) if dec
               else req.layers_needed("encoder", len(model.encoder.layers)))
    blocks = ((list(model.encoder.layers[first:enc]) if enc else [])
              + (list(model.decoder.layers[first:dec]) if dec else []))
    return per_block(blocks, len(blocks), report)


def timed(build: Callable[[], LoadedModel]) -> LoadedModel:
    start = time.perf_counter()
    model = build()
    model.load_seconds = time.perf_counter() - start
    return model

