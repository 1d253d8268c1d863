"""The model picker offers the checkpoints `python -m engine models` finds (an operator's
ATTENTION_STUDIO_MODELS folder here), and the Attention page draws one of them."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests import app_helpers

transformers = pytest.importorskip("transformers")
PAGE = "app_pages/attention/page.py"


@pytest.fixture
def operator_folder(tmp_path, monkeypatch):
    from tests.engine.test_hf_families import SMALL, causal_lm, write_tokenizer

    folder = tmp_path / "models" / "tiny-llama"
    folder.mkdir(parents=True)
    causal_lm(transformers.LlamaConfig(**SMALL, max_position_embeddings=64)).save_pretrained(
        str(folder))
    write_tokenizer(folder)
    (tmp_path / "models" / "broken").mkdir()
    (tmp_path / "models" / "broken" / "config.json").write_text('{"model_type": "nope"}')
    monkeypatch.setenv("ATTENTION_STUDIO_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    from app_pages.shared.models import found_checkpoints

    found_checkpoints.clear()
    yield folder
    found_checkpoints.clear()


def test_a_found_checkpoint_is_offered_and_drawn(operator_folder):
    at = app_helpers.open_page(PAGE, 300)
    picker = at.selectbox(key="attn_model")
    assert f"{operator_folder} — 2 × 4 heads, 2 K/V, rope, 0.00 GiB on disk" in picker.options
    assert any("cannot be opened" in e.label for e in at.expander)  # the broken folder
    picker.set_value(str(operator_folder))
    at = app_helpers.rerun(at)
    text = at.text_area(key="attn_text").value
    rec = engine.load(str(operator_folder), device="cpu").attend(text)
    heat = app_helpers.chart(at, "decoder.self.0 · head 0")["data"][0]
    np.testing.assert_allclose(app_helpers.arr(heat["z"]), rec["decoder.self.0"][0],
                               atol=1e-6)
