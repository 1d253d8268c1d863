"""How far MiniLM drifts when its 12 K/V heads are mean-pooled into G groups (Ainslie et al.,
2023), without any uptraining: mean KL divergence of attention rows against the original
(MHA) model and cosine similarity of the sentence embeddings, over a fixed sentence set.

    .venv/bin/python bench/minilm_gqa_drift.py
"""

from __future__ import annotations

import numpy as np

import engine

SENTENCES = [
    "The animal didn't cross the street because it was too tired.",
    "The animal didn't cross the street because it was too wide.",
    "Attention lets every token look at every other token.",
    "A teacher needs a clear figure for tomorrow's slides.",
    "Researchers inspect heads to find the interesting ones.",
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "She said that the results, which surprised everyone, were correct.",
]


def kl_rows(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> float:
    """Mean over heads and query rows of KL(p || q)."""
    return float((p * (np.log(p + eps) - np.log(q + eps))).sum(-1).mean())


def drift(model, groups: int) -> tuple[float, float]:
    kls, cosines = [], []
    for text in SENTENCES:
        base, conv = model.attend(text), model.attend(text, kv_heads=groups)
        kls.append(np.mean([kl_rows(base[k], conv[k]) for k in base.keys()]))
        cosines.append(float(np.dot(base.outputs["embedding"], conv.outputs["embedding"])))
    return float(np.mean(kls)), float(np.mean(cosines))


def main() -> None:
    model = engine.load("minilm", device="cpu")
    print(f"{len(SENTENCES)} sentences, all 6 layers × 12 heads")
    print("| K/V groups G | variant | mean KL(attention rows) | embedding cosine |")
    print("|---:|---|---:|---:|")
    for g in (12, 6, 4, 3, 2, 1):
        kl, cos = drift(model, g)
        name = "MHA" if g == 12 else ("MQA" if g == 1 else f"GQA-{g}")
        print(f"| {g} | {name} | {kl:.4f} | {cos:.4f} |")


if __name__ == "__main__":
    main()
