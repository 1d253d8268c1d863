"""Byte-level tokens read as the text they stand for on the Attention page: axis ticks and
the next-token table show spaces and newlines, not Ġ/Ċ (issue 14)."""

from __future__ import annotations

import pytest

import engine
from tests import app_helpers

PAGE = "app_pages/attention/page.py"


@pytest.mark.skipif(not engine.MODELS["smollm2-135m"].is_installed(),
                    reason="smollm2-135m is not installed")
def test_smollm2_ticks_and_next_tokens_are_readable():
    at = app_helpers.open_page(PAGE, 300, attn_model="smollm2-135m",
                               attn_text="The cat sat on the mat.")
    rec = engine.load("smollm2-135m", device="cpu").attend("The cat sat on the mat.")
    assert any("Ġ" in t for t in rec.tokens)  # the raw tokens do spell spaces as Ġ
    spec = app_helpers.chart(at, "decoder.self.0 · head 0")
    ticks = spec["layout"]["xaxis"]["ticktext"]
    assert not any("Ġ" in t for t in ticks) and any(t.startswith(" ") for t in ticks)
    table = at.dataframe[0].value
    assert not table.iloc[:, 0].str.contains("Ġ").any()
