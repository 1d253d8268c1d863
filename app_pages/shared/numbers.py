"""Small numbers and tables the pages show beside their figures."""

from __future__ import annotations

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (e.g. sentence embeddings), in float64."""
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def frame(*args, **kwargs):
    """A pandas DataFrame; pandas is imported on first use (it is not needed to draw the
    first heatmap, and importing it costs cold-start time)."""
    import pandas as pd

    return pd.DataFrame(*args, **kwargs)


def matrix_table(z: np.ndarray, q_tokens: list, k_tokens: list, value: str):
    """Tidy rows (query_index, query_token, key_index, key_token, value) of a [Tq, Tk] map,
    built only when a download asks for it (returns the builder)."""
    def build():
        tq, tk = z.shape
        qi, ki = np.repeat(np.arange(tq), tk), np.tile(np.arange(tk), tq)
        return frame({"query_index": qi, "query_token": np.asarray(q_tokens, object)[qi],
                      "key_index": ki, "key_token": np.asarray(k_tokens, object)[ki],
                      value: np.asarray(z, np.float32).reshape(-1)})

    return build


def heads_table(maps: np.ndarray, value: str) -> object:
    """Tidy rows (head, query_index, key_index, value) of [H, Tq, Tk] maps."""
    h, tq, tk = maps.shape
    return frame({"head": np.repeat(np.arange(h), tq * tk),
                  "query_index": np.tile(np.repeat(np.arange(tq), tk), h),
                  "key_index": np.tile(np.arange(tk), h * tq),
                  value: np.asarray(maps).reshape(-1)})
