"""Attention Studio's engine: a Transformer that returns every attention map.

    import engine
    model = engine.load("minilm")
    record = model.attend("The animal didn't cross the street because it was too tired.")
    record["encoder.self.0"]   # float32 [heads, Tq, Tk]
"""

from engine.api import VERSION as __version__
from engine.api import LoadedModel, resolve_device
from engine.codecs import InputError
from engine.config import ModelConfig
from engine.loaders.common import ModelNotInstalled
from engine.record import AttentionRecord
from engine.registry import MODELS, load

__all__ = [
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
