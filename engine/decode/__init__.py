"""Greedy decoding: the one loop (batched, cached, EOS) and the fixed-shape CUDA-graph step."""
