"""Attention Studio's engine: a Transformer that returns every attention map.

    import engine
    model = engine.load("minilm")
    record = model.attend("The animal didn't cross the street because it was too tired.")
    record["encoder.self.0"]   # float32 [heads, Tq, Tk]
"""

from engine.api import VERSION as __version__
from engine.api import AttendOptions, LoadedModel, resolve_device
from engine.core.block_key import BlockKey
from engine.core.config import ModelConfig
from engine.errors import InputError, ModelNotInstalled
from engine.models.registry import MODELS, load
from engine.record import AttentionRecord

__all__ = [
    "AttendOptions",
    "BlockKey",
    "MODELS",
    "AttentionRecord",
    "InputError",
    "LoadedModel",
    "ModelConfig",
    "ModelNotInstalled",
    "__version__",
    "load",
    "resolve_device",
]
