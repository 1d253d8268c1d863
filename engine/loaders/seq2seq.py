"""Load the date-normalisation encoder-decoders trained here (`python -m engine.train`).

A checkpoint is two files in `assets/seq2seq/`: `seq2seq-<variant>.safetensors` (weights, our
own tensor names, so no name map is needed) and `seq2seq-<variant>.json` (the `ModelConfig` and
the training metadata). The character tokenizer is `assets/seq2seq/tokenizer.json`, shared by
all three variants. Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from engine.config import ModelConfig
from engine.loaders.common import read_safetensors
from engine.transformer import Transformer

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
        raise FileNotFoundError(f"{path} is missing; run `python -m engine.train` to write it")
    return Tokenizer.from_file(str(path))


def read_card(variant: str, directory: str | Path = ASSETS) -> dict:
    """The JSON sidecar of one variant: {"config": ..., "training": ..., "eval": ..., ...}."""
    _, json_path = checkpoint_paths(variant, directory)
    if not json_path.exists():
        raise FileNotFoundError(
            f"{json_path} is missing; train it with "
            f"`python -m engine.train --variant {variant_name(variant)}`"
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
    from engine.codecs import TokenizerCodec
    from engine.datasets.dates import MAX_SOURCE_CHARS, PAD, UNK
    from engine.seq2seq_steps import MAX_NEW_TOKENS, input_notices, output_notices

    model, tokenizer, cfg = load_seq2seq(variant, device)
    card = read_card(variant)
    codec = TokenizerCodec(tokenizer, MAX_SOURCE_CHARS + 1, pad_token=PAD, unk_token=UNK)
    accuracy = 100 * card["eval"]["heldout_exact_match"]
    return LoadedModel(
        name=cfg.name,
        model=model,
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
