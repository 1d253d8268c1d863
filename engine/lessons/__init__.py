"""Used only by the lessons: the seed's worked example, the encoder-decoder step-through."""
