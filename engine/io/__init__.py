"""File formats, bytes only: safetensors, GGUF (reading, dequantizing), the packaged Gemma
GGUF, the cache directory."""
