"""Text to token ids and back: the Codec protocol, tokenizer.json, tokenizers rebuilt from
GGUF metadata."""
