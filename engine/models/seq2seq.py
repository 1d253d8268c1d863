"""The date-normalisation encoder-decoders trained here (`python -m engine.train.dates`): their
checkpoints, and what a typed date becomes and what comes back (notices, batched decoding).

A checkpoint is two files in `assets/seq2seq/`: `seq2seq-<variant>.safetensors` (weights, our
own tensor names, so no name map is needed) and `seq2seq-<variant>.json` (the `ModelConfig` and
the training metadata). The character tokenizer is `assets/seq2seq/tokenizer.json`, shared by
all three variants. Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from engine.core.config import ModelConfig
from engine.core.transformer import Transformer
from engine.datasets.dates import (
    EOS,
    MAX_SOURCE_CHARS,
    TARGET_CHARS,
    UNK,
    YEAR_MAX,
    YEAR_MIN,
    is_valid_target,
    looks_like_date,
)
from engine.decode.greedy import generate
from engine.io.safetensors import read_safetensors

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "seq2seq"
VARIANTS = ("mha", "gqa", "mqa")
TIED_KEY = "lm_head.weight"  # tied to decoder.embed.tokens.weight, so never stored


def variant_name(variant: str) -> str:
    """'mha' or 'seq2seq-mha' → 'mha'; anything else is a ValueError naming the choices."""
    v = variant.lower().removeprefix("seq2seq-")
    if v not in VARIANTS:
        choices = ", ".join(f"seq2seq-{x}" for x in VARIANTS)
        raise ValueError(f"unknown seq2seq variant {variant!r}; choose one of {choices}")
    return v


def checkpoint_paths(variant: str, directory: str | Path = ASSETS) -> tuple[Path, Path]:
    """(weights .safetensors, config .json) of one variant."""
    stem = Path(directory) / f"seq2seq-{variant_name(variant)}"
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def config_to_dict(cfg: ModelConfig) -> dict:
    """A JSON-ready dict of every config field (tuples become lists)."""
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict) -> ModelConfig:
    """Inverse of `config_to_dict`; unknown keys are a ValueError (a newer file, say)."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"config has fields this engine does not know: {unknown}")
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return ModelConfig(**data)


def save_checkpoint(model: Transformer, weights_path: str | Path) -> None:
    """Write the weights as safetensors (float32, CPU, tied lm_head left out)."""
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in model.state_dict().items()
        if not (model.cfg.tie_embeddings and k == TIED_KEY)
    }
    # One metadata key only: safetensors writes metadata from a hash map whose order varies
    # between processes, so a second key would make identical weights hash differently.
    save_file(state, str(weights_path), metadata={"format": "pt"})


def load_weights(model: Transformer, weights_path: str | Path) -> Transformer:
    """Copy a safetensors file into `model`, checking every name and shape.

    Raises ValueError naming the file and the first tensor that disagrees.
    """
    path = Path(weights_path)
    state = read_safetensors(path)
    expected = model.state_dict()
    if model.cfg.tie_embeddings:
        expected.pop(TIED_KEY, None)
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{path.name}: tensors do not match the config (missing {missing[:5]}, "
            f"unexpected {extra[:5]})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(
                f"{path.name}: tensor {name} has shape {tuple(tensor.shape)}, "
                f"the config expects {tuple(expected[name].shape)}"
            )
    result = model.load_state_dict(state, strict=False)
    allowed = {TIED_KEY} if model.cfg.tie_embeddings else set()
    if set(result.missing_keys) - allowed or result.unexpected_keys:
        raise ValueError(f"{path.name}: could not load {result}")
    return model


def load_tokenizer(directory: str | Path = ASSETS) -> Tokenizer:
    """The shared character tokenizer (`tokenizer.json`)."""
    path = Path(directory) / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing; run `python -m engine.train.dates` to write it")
    return Tokenizer.from_file(str(path))


def read_card(variant: str, directory: str | Path = ASSETS) -> dict:
    """The JSON sidecar of one variant: {"config": ..., "training": ..., "eval": ..., ...}."""
    _, json_path = checkpoint_paths(variant, directory)
    if not json_path.exists():
        raise FileNotFoundError(
            f"{json_path} is missing; train it with "
            f"`python -m engine.train.dates --variant {variant_name(variant)}`"
        )
    return json.loads(json_path.read_text(encoding="utf-8"))


def load_seq2seq(
    variant: str, device: str | torch.device = "cpu", directory: str | Path = ASSETS
) -> tuple[Transformer, Tokenizer, ModelConfig]:
    """Load a shipped date-normalisation model.

    `variant`: "mha", "gqa", "mqa" (or "seq2seq-mha", ...). `device`: "cpu", "cuda", "auto"
    or a torch.device. Returns (model in eval mode on `device`, tokenizer, config).
    """
    weights_path, _ = checkpoint_paths(variant, directory)
    card = read_card(variant, directory)
    if not weights_path.exists():
        raise FileNotFoundError(f"{weights_path} is missing")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = config_from_dict(card["config"])
    model = load_weights(Transformer(cfg), weights_path)
    tokenizer = load_tokenizer(directory)
    if tokenizer.get_vocab_size() != cfg.vocab_size:
        raise ValueError(
            f"tokenizer.json has {tokenizer.get_vocab_size()} tokens but "
            f"{weights_path.name} was trained with {cfg.vocab_size}"
        )
    return model.to(device).eval(), tokenizer, cfg


def load_seq2seq_model(variant: str, device: str | torch.device = "cpu"):
    """`load_seq2seq` wrapped as the engine's `LoadedModel` (what `engine.load` returns).

    The codec reads at most MAX_SOURCE_CHARS characters + [EOS] (the tokenizer's post-processor
    appends [EOS]); targets are encoded without specials, as `LoadedModel` expects.
    """
    from engine.api import LoadedModel
    from engine.datasets.dates import MAX_SOURCE_CHARS, PAD, UNK
    from engine.text.codec import TokenizerCodec

    model, tokenizer, cfg = load_seq2seq(variant, device)
    card = read_card(variant)
    codec = TokenizerCodec(tokenizer, MAX_SOURCE_CHARS + 1, pad_token=PAD, unk_token=UNK)
    accuracy = 100 * card["eval"]["heldout_exact_match"]
    return LoadedModel(
        name=cfg.name,
        transformer=model,
        codec=codec,
        device=next(model.parameters()).device,
        description=(
            f"date normaliser trained here ({cfg.variant}: {cfg.n_heads} query heads, "
            f"{cfg.kv_heads} K/V head{'s' if cfg.kv_heads != 1 else ''}), "
            f"{accuracy:.1f}% held-out exact match"
        ),
        target_codec=codec,
        max_target_tokens=MAX_NEW_TOKENS,
        input_notes=lambda text: input_notices(tokenizer, text),
        output_notes=output_notices,
        weights_hash="sha256:" + card["weights_sha256"],
    )


# --------------------------------------------------------------------------- inputs, outputs
# What a typed date becomes (strip, truncate, [EOS]); what the model cannot handle becomes a
# notice, never an exception, except for an empty input (ValueError).

MAX_NEW_TOKENS = TARGET_CHARS + 1  # ten characters and [EOS]

EMPTY_INPUT = "empty input: type a date, e.g. 'March 3rd, 2021' or '2021年3月3日'"
NOTICE_TRUNCATED = (
    "input was {n} characters; only the first {max} were used "
    "(the model was trained on dates of at most {max} characters)"
)
NOTICE_UNKNOWN = "{n} character(s) outside the model's vocabulary were read as [UNK]: {chars}"
NOTICE_NOT_A_DATE = "the input does not look like a date; the output is the model's best guess"
NOTICE_BAD_OUTPUT = (
    f"the output {{out!r}} is not a valid date between {YEAR_MIN}-01-01 and {YEAR_MAX}-12-31"
)


@dataclass
class Source:
    """A prepared encoder input: ids end with [EOS]; tokens label the cross-attention keys."""

    text: str  # what was encoded (stripped, maybe truncated)
    ids: list[int]
    tokens: list[str]
    notices: list[str] = field(default_factory=list)
    truncated: bool = False


def prepare_source(tokenizer: Tokenizer, text: str) -> Source:
    """Strip `text`, keep its first MAX_SOURCE_CHARS characters, encode; ids end with [EOS].

    Raises ValueError(EMPTY_INPUT) for an empty or blank input; everything else (too long,
    unknown characters, not a date) is accepted with a notice.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected text, got {type(text).__name__}")
    # Lone surrogates (pasted from odd sources) cannot be encoded and would crash the tokenizer.
    original = text.encode("utf-8", "replace").decode("utf-8").strip()
    if not original:
        raise ValueError(EMPTY_INPUT)
    notices = []
    kept = original[:MAX_SOURCE_CHARS]
    truncated = len(kept) < len(original)
    if truncated:
        notices.append(NOTICE_TRUNCATED.format(n=len(original), max=MAX_SOURCE_CHARS))
    enc = tokenizer.encode(kept)  # the tokenizer's post-processor appends [EOS]
    ids, tokens = list(enc.ids), list(enc.tokens)
    eos_id = tokenizer.token_to_id(EOS)
    if not ids or ids[-1] != eos_id:  # a tokenizer.json without the post-processor
        ids, tokens = [*ids, eos_id], [*tokens, EOS]
    unk_id = tokenizer.token_to_id(UNK)
    unknown = {kept[a:b] for (a, b), i in zip(enc.offsets, enc.ids, strict=True) if i == unk_id}
    if unknown:
        chars = ", ".join(map(repr, sorted(unknown)[:10]))
        notices.append(NOTICE_UNKNOWN.format(n=ids.count(unk_id), chars=chars))
    if not looks_like_date(kept):
        notices.append(NOTICE_NOT_A_DATE)
    return Source(text=kept, ids=ids, tokens=tokens, notices=notices, truncated=truncated)


def input_notices(tokenizer: Tokenizer, text: str) -> list[str]:
    """The notices `prepare_source` attaches to `text` (empty text: ValueError)."""
    return prepare_source(tokenizer, text).notices


def output_notices(output: str) -> list[str]:
    """[NOTICE_BAD_OUTPUT] when `output` is not a valid ISO date in range, else []."""
    return [] if is_valid_target(output) else [NOTICE_BAD_OUTPUT.format(out=output)]


def batch_sources(
    sources: list[Source], pad_id: int, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad prepared sources: (ids [B, S] long, is_real [B, S] bool)."""
    width = max(len(s.ids) for s in sources)
    ids = torch.full((len(sources), width), pad_id, dtype=torch.long)
    for row, s in enumerate(sources):
        ids[row, : len(s.ids)] = torch.tensor(s.ids)
    ids = ids.to(device)
    return ids, ids != pad_id


def ids_to_text(tokenizer: Tokenizer, ids: list[int]) -> str:
    """Generated ids → text, stopping at the first [EOS] and dropping specials."""
    eos = tokenizer.token_to_id(EOS)
    if eos in ids:
        ids = ids[: ids.index(eos)]
    return tokenizer.decode(ids, skip_special_tokens=True)


@dataclass
class Normalised:
    """One input's result: the decoded text and any notices about input or output."""

    source: Source
    output: str
    notices: list[str]


def normalise(
    model: Transformer,
    tokenizer: Tokenizer,
    texts: list[str],
    batch_size: int = 256,
    use_cache: bool = True,
) -> list[Normalised]:
    """Normalise many dates at once (batched greedy decoding). Empty texts raise ValueError."""
    device = next(model.parameters()).device
    results = []
    for start in range(0, len(texts), batch_size):
        sources = [prepare_source(tokenizer, t) for t in texts[start : start + batch_size]]
        ids, is_real = batch_sources(sources, model.cfg.pad_id, device)
        out = generate(model, ids, MAX_NEW_TOKENS, eos_id=model.cfg.eos_id,
                       input_is_real=is_real, use_cache=use_cache).cpu().tolist()
        for source, row in zip(sources, out, strict=True):
            text = ids_to_text(tokenizer, row)
            results.append(Normalised(source, text, source.notices + output_notices(text)))
    return results


def exact_match(
    model: Transformer, tokenizer: Tokenizer, pairs: list[tuple[str, str]], batch_size: int = 256
) -> float:
    """Share of (source, target) pairs whose greedy output equals the target exactly."""
    outs = normalise(model, tokenizer, [s for s, _ in pairs], batch_size=batch_size)
    return sum(o.output == t for o, (_, t) in zip(outs, pairs, strict=True)) / len(pairs)
