"""MiniLM through our engine against transformers' BertModel (a test-only oracle)."""

import numpy as np
import pytest
import torch

from tests.conftest import needs_minilm, needs_transformers

pytestmark = [needs_minilm, needs_transformers]

LONG = " ".join(["Attention lets every token look at every other token in the sentence."] * 25)
TEXTS = {
    "short": "The animal didn't cross the street because it was too tired.",
    "long": LONG,  # ≥ 300 tokens
    "chinese": "自注意力机制让每个词都能关注句子中的其他词。",
}


@pytest.fixture(scope="module")
def ours():
    import engine

    return engine.load("minilm", device="cpu")


@pytest.fixture(scope="module")
def ref():
    from transformers import BertModel

    from engine.models.minilm import model_dir

    return BertModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()


def reference(ref, ids_list):
    t = max(len(i) for i in ids_list)
    ids = torch.tensor([i + [0] * (t - len(i)) for i in ids_list])
    mask = torch.tensor([[1] * len(i) + [0] * (t - len(i)) for i in ids_list])
    with torch.no_grad():
        return ref(input_ids=ids, attention_mask=mask, output_attentions=True), mask


@pytest.mark.parametrize("name", list(TEXTS))
def test_maps_and_hidden_state_match_bert(ours, ref, name):
    text = TEXTS[name]
    ids = ours.codec.encode(text).ids
    if name == "long":
        assert len(ids) >= 300
    rec = ours.attend(text)
    out, _ = reference(ref, [ids])
    for layer in range(6):
        np.testing.assert_allclose(rec[f"encoder.self.{layer}"], out.attentions[layer][0].numpy(),
                                   atol=1e-5)
    with torch.no_grad():
        hidden = ours.transformer(torch.tensor([ids])).hidden[0].numpy()
    np.testing.assert_allclose(hidden, out.last_hidden_state[0].numpy(), atol=1e-5)


def test_padded_batch_matches_bert(ours, ref):
    texts = [TEXTS["short"], "A short one.", TEXTS["chinese"]]
    recs = ours.attend_batch(texts)
    ids = [ours.codec.encode(t).ids for t in texts]
    out, mask = reference(ref, ids)
    for b, rec in enumerate(recs):
        n = len(ids[b])
        assert rec.meta["n_real"] == n
        for layer in range(6):
            np.testing.assert_allclose(rec[f"encoder.self.{layer}"][:, :n, :n],
                                       out.attentions[layer][b, :, :n, :n].numpy(), atol=1e-5)
        # sentence embedding: mean over real tokens of the last hidden state, L2-normalised
        h = out.last_hidden_state[b, :n].mean(0)
        np.testing.assert_allclose(rec.outputs["embedding"], (h / h.norm()).numpy(), atol=1e-5)


def test_over_long_text_is_truncated_with_a_notice(ours):
    rec = ours.attend(" ".join(["word"] * 700))
    assert rec.meta["truncated"] is True
    assert len(rec.tokens) == 512 and rec.tokens[-1] == "[SEP]"
    assert any("cut to 512" in n for n in rec.meta["notices"])


def test_chinese_gets_an_unknown_vocabulary_notice(ours):
    rec = ours.attend("龘靐齉爩麤")
    assert any("[UNK]" in n for n in rec.meta["notices"])


def test_kv_heads_12_reproduces_and_fewer_groups_drift(ours):
    text = TEXTS["short"]
    base = ours.attend(text)
    same = ours.attend(text, kv_heads=12)
    g1 = ours.attend(text, kv_heads=1)
    for key in base.keys():
        np.testing.assert_array_equal(base[key], same[key])
    cos = float(np.dot(base.outputs["embedding"], g1.outputs["embedding"]))
    assert cos < 0.9999  # pooling all K/V heads into one changes the model
    assert np.allclose(g1["encoder.self.0"].sum(-1), 1.0, atol=1e-5)


def test_maps_only_gives_the_same_layer_without_outputs(ours, ref):
    """attend(..., outputs=False) stops after the recorded layer: the same map as the
    reference's, and no sentence embedding (the pass never reached the last layer)."""
    text = TEXTS["short"]
    rec = ours.attend(text, layers=[1], outputs=False)
    out, _ = reference(ref, [ours.codec.encode(text).ids])
    assert rec.keys() == ["encoder.self.1"]
    np.testing.assert_allclose(rec["encoder.self.1"], out.attentions[1][0].numpy(), atol=1e-5)
    assert "embedding" not in rec.outputs and rec.meta["settings"]["outputs"] is False
    assert "embedding" in ours.attend(text, layers=[1]).outputs
