"""Training the encoder-decoders shipped in assets/ (`python -m engine.train.dates`)."""
