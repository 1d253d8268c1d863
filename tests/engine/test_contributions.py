"""Norm maps, flow contributions and the logit lens, recomputed independently.

The reference below takes only the model's weights, the recorded attention weights α and the
stream entering the block (read by a hook on the block itself), and recomputes both maps in
float64 with plain loops over heads, keys and queries, as the formulas in
engine/contributions.py state them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from engine.api import LoadedModel
from engine.contributions import flow_across_layers
from engine.text.codec import TokenizerCodec
from tests.conftest import needs_minilm, tiny

TEXTS = ["the cat sat on the mat", "a b"]
WORDS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "the", "cat", "sat", "on", "mat", "a", "b", "le",
         "chat"]


def loaded(model) -> LoadedModel:
    """`model` behind a word-level tokenizer (ids < the tiny models' 61-word vocabulary)."""
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    codec = TokenizerCodec(tok, 64, pad_token="[PAD]", unk_token="[UNK]")
    return LoadedModel("tiny", model, codec, torch.device("cpu"))


def f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def rms_norm(z: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return z / np.sqrt((z**2).mean() + eps) * w


def reference(attn, alpha, kv_in, residual, post=None, post_z=None):
    """float64 loops: norm [H, Tq, Tk] and flow [Tq, Tk + 1] for one sequence."""
    h_n, h_kv, d = attn.n_heads, attn.n_kv_heads, attn.d_head
    w_v, w_o = f64(attn.v_proj.weight), f64(attn.o_proj.weight)
    b_v = f64(attn.v_proj.bias) if attn.v_proj.bias is not None else np.zeros(w_v.shape[0])
    b_o = f64(attn.o_proj.bias) if attn.o_proj.bias is not None else np.zeros(w_o.shape[0])
    t_q, t_k = alpha.shape[1:]
    moved = np.zeros((h_n, t_k, w_o.shape[0]))
    for h in range(h_n):
        g = h // (h_n // h_kv)  # the K/V head query head h reads
        for j in range(t_k):
            v = w_v[g * d:(g + 1) * d] @ kv_in[j] + b_v[g * d:(g + 1) * d]
            moved[h, j] = w_o[:, h * d:(h + 1) * d] @ v
    norm = np.zeros((h_n, t_q, t_k))
    for h in range(h_n):
        for i in range(t_q):
            for j in range(t_k):
                norm[h, i, j] = alpha[h, i, j] * np.linalg.norm(moved[h, j])
    flow = np.zeros((t_q, t_k + 1))
    for i in range(t_q):
        parts = [sum(alpha[h, i, j] * moved[h, j] for h in range(h_n)) for j in range(t_k)]
        z = sum(parts) + b_o
        if post is not None:
            w, eps = f64(post.weight), post.eps
            scale = np.sqrt((post_z[i] ** 2).mean() + eps)
            parts = [p / scale * w for p in parts]
            z = rms_norm(post_z[i], w, eps)
        whole = residual[i] + z
        size = np.abs(whole).sum()
        c = [max(size - np.abs(whole - p).sum(), 0.0) for p in [*parts, residual[i]]]
        flow[i] = np.array(c) / sum(c)
    return norm, flow


def block_inputs(model, stack: str, layer: int):
    """The stream entering `stack.layers[layer]`, read by a hook on the block."""
    seen = {}
    block = getattr(model, stack).layers[layer]
    handle = block.register_forward_pre_hook(lambda _m, args: seen.update(x=args[0]))
    return seen, handle


CASES = {
    "encoder, post-norm": dict(arch="encoder"),
    "GQA decoder, pre-RMSNorm, RoPE": dict(arch="decoder", n_kv_heads=2, norm="rmsnorm",
                                           norm_position="pre", positions="rope",
                                           final_norm=True),
    "MQA decoder, post-sublayer norms": dict(arch="decoder", n_kv_heads=1, norm="rmsnorm",
                                             norm_position="pre", positions="rope",
                                             post_attn_norm=True, post_ffn_norm=True,
                                             qk_norm=True, activation="geglu", bias=False,
                                             final_norm=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_self_attention_contributions_match_a_float64_loop(case):
    kw = dict(CASES[case])
    model = tiny(kw.pop("arch"), **kw)
    m = loaded(model)
    stack = "encoder" if model.cfg.arch == "encoder" else "decoder"
    layer = 1
    seen, handle = block_inputs(model, stack, layer)
    post_z = {}
    block = getattr(model, stack).layers[layer]
    h2 = None
    if block.self_post is not None:
        h2 = block.self_post.register_forward_pre_hook(
            lambda _m, args: post_z.update(z=args[0]))
    try:
        rec = m.attend(TEXTS[0], contributions=True)
    finally:
        handle.remove()
        if h2:
            h2.remove()
    key = f"{stack}.self.{layer}"
    x = f64(seen["x"][0])
    kv_in = x
    if block.pre:  # the attention reads the normed stream
        kv_in = f64(block.self_norm(seen["x"])[0])
    norm, flow = reference(block.self_attn, rec[key].astype(np.float64), kv_in, x,
                           block.self_post, f64(post_z["z"][0]) if post_z else None)
    np.testing.assert_allclose(rec[f"norm.{key}"], norm, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(rec[f"flow.{key}"], flow, atol=1e-5)
    np.testing.assert_allclose(rec[f"flow.{key}"].sum(-1), 1.0, atol=1e-6)


def test_cross_attention_contributions_match_a_float64_loop():
    model = tiny("encoder-decoder")
    m = loaded(model)
    block = model.decoder.layers[0]
    seen = {}
    handle = block.cross_attn.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.update(x=args[0], memory=kwargs["memory"]),
        with_kwargs=True)
    try:
        rec = m.attend("the cat sat", target="le chat", contributions=True)
    finally:
        handle.remove()
    key = "decoder.cross.0"
    x = f64(seen["x"][0])  # post-norm: the residual is the sublayer's own input
    norm, flow = reference(block.cross_attn, rec[key].astype(np.float64),
                           f64(seen["memory"][0]), x)
    np.testing.assert_allclose(rec[f"norm.{key}"], norm, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(rec[f"flow.{key}"], flow, atol=1e-5)
    assert rec[f"flow.{key}"].shape == (len(rec.target_tokens), len(rec.tokens) + 1)


def test_norm_map_is_the_weights_times_a_constant_per_key():
    m = loaded(tiny("decoder", n_kv_heads=2))
    rec = m.attend(TEXTS[0], contributions=True)
    for key in rec.keys():
        w, n = rec[key], rec[f"norm.{key}"]
        factor = n.max(axis=1) / np.maximum(w.max(axis=1), 1e-30)  # [H, Tk] per head and key
        np.testing.assert_allclose(n, w * factor[:, None, :], rtol=1e-5, atol=1e-7)


def test_a_head_whose_output_projection_is_zero_moves_nothing():
    model = tiny("decoder", n_kv_heads=2)
    attn = model.decoder.layers[0].self_attn
    d = attn.d_head
    with torch.no_grad():
        attn.o_proj.weight[:, 1 * d:2 * d] = 0
    rec = loaded(model).attend(TEXTS[0], contributions=True)
    assert np.all(rec["norm.decoder.self.0"][1] == 0)
    assert rec["norm.decoder.self.0"][0].max() > 0


def test_padding_and_ablated_heads():
    """Batched texts give each its own rows; an ablated head has a zero norm map."""
    m = loaded(tiny("encoder"))
    alone = m.attend(TEXTS[1], contributions=True)
    both = m.attend_batch(TEXTS, contributions=True)
    n = len(alone.tokens)
    # The short text, padded: its real queries put nothing on padding keys.
    got = both[1]["norm.encoder.self.0"][:, :n, :n]
    np.testing.assert_allclose(got, alone["norm.encoder.self.0"], atol=1e-5)
    off = m.attend(TEXTS[0], contributions=True, heads_off={"encoder.self.0": [2]})
    assert np.all(off["norm.encoder.self.0"][2] == 0)


def test_recorded_layers_only_and_npz_round_trip(tmp_path):
    m = loaded(tiny("decoder"))
    rec = m.attend(TEXTS[0], contributions=True, layers=[1])
    assert list(rec.norm) == ["decoder.self.1"] and list(rec.flow) == ["decoder.self.1"]
    rec.to_npz(tmp_path / "r.npz")
    back = type(rec).from_npz(tmp_path / "r.npz")
    np.testing.assert_array_equal(back["flow.decoder.self.1"], rec["flow.decoder.self.1"])
    np.testing.assert_array_equal(back["norm.decoder.self.1"], rec["norm.decoder.self.1"])


def test_flow_across_layers_rows_sum_to_one_and_compose():
    m = loaded(tiny("decoder", n_decoder_layers=3))
    rec = m.attend(TEXTS[0], contributions=True)
    flows = [rec[f"flow.decoder.self.{i}"] for i in range(3)]
    total = flow_across_layers(flows)
    np.testing.assert_allclose(total.sum(-1), 1.0, atol=1e-6)
    assert np.allclose(np.triu(total, 1), 0)  # causal: nothing flows from the future
    one = flow_across_layers(flows[:1])
    t = one.shape[0]
    np.testing.assert_allclose(one, flows[0][:, :t] + np.diag(flows[0][:, t]), atol=1e-7)


def test_logit_lens_last_layer_is_the_models_next_token_distribution():
    m = loaded(tiny("decoder", norm="rmsnorm", norm_position="pre", final_norm=True))
    rec = m.attend(TEXTS[0], logit_lens=True, top_k=5)
    lens = rec.outputs["logit_lens"]
    assert len(lens) == m.config.n_decoder_layers
    last = lens[-1]
    assert [t for t, _ in last] == [t for t, _ in rec.outputs["top_k"][:5]]
    np.testing.assert_allclose([p for _, p in last], [p for _, p in rec.outputs["top_k"][:5]],
                               rtol=1e-5)


def test_logit_lens_is_refused_for_an_encoder():
    from engine.errors import InputError

    with pytest.raises(InputError, match="decoder"):
        loaded(tiny("encoder")).attend(TEXTS[0], logit_lens=True)


@needs_minilm
def test_minilm_contributions_match_a_float64_loop():
    import engine

    m = engine.load("minilm", device="cpu")
    model = m.transformer
    seen, handle = block_inputs(model, "encoder", 2)
    try:
        rec = m.attend("The animal didn't cross the street because it was too tired.",
                       contributions=True, layers=[2])
    finally:
        handle.remove()
    x = f64(seen["x"][0])
    block = model.encoder.layers[2]
    norm, flow = reference(block.self_attn, rec["encoder.self.2"].astype(np.float64), x, x)
    np.testing.assert_allclose(rec["norm.encoder.self.2"], norm, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(rec["flow.encoder.self.2"], flow, atol=1e-5)


def test_cli_writes_contributions_into_the_npz(tmp_path):
    from engine.__main__ import main
    from engine.record import AttentionRecord

    out = tmp_path / "maps.npz"
    assert main(["attention", "--model", "transformer-base", "--text", "the cat sat",
                 "--target", "le chat", "--layers", "decoder.cross.1", "--contributions",
                 "--out", str(out)]) == 0
    rec = AttentionRecord.from_npz(out)
    assert rec["flow.decoder.cross.1"].shape == (len(rec.target_tokens), len(rec.tokens) + 1)
    np.testing.assert_allclose(rec["flow.decoder.cross.1"].sum(-1), 1.0, atol=1e-5)
    assert rec["norm.decoder.cross.1"].shape == rec["decoder.cross.1"].shape


def flow_loop(alpha: np.ndarray, moved: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """The flow map's definition in float64 loops, for a sublayer with no bias or post-norm:
    alpha [H, Tq, Tk], moved [H, Tk, d], residual [Tq, d] → [Tq, Tk + 1]."""
    h_n, t_q, t_k = alpha.shape
    flow = np.zeros((t_q, t_k + 1))
    for i in range(t_q):
        parts = [sum(alpha[h, i, j] * moved[h, j] for h in range(h_n)) for j in range(t_k)]
        whole = residual[i] + sum(parts)
        size = np.abs(whole).sum()
        c = [max(size - np.abs(whole - p).sum(), 0.0) for p in [*parts, residual[i]]]
        flow[i] = np.array(c) / sum(c)
    return flow


@pytest.mark.parametrize("window", [0, 5])
def test_flow_map_in_row_blocks_over_a_window_matches_the_definition(window):
    """Small row blocks, keys skipped outside each block's span, and a residual 1,000× the
    parts: the shares match the float64 definition to 2e-7 (as a difference of two float32
    L1 norms they were 5e-7 off), and a key no head reads gets exactly 0."""
    from engine.contributions import flow_map

    gen = torch.Generator().manual_seed(3)
    h_n, t, d = 3, 23, 64
    mask = torch.ones(t, t).tril().bool()
    if window:
        mask &= ~torch.ones(t, t).tril(-window).bool()
    scores = torch.randn(1, h_n, t, t, generator=gen).masked_fill(~mask, float("-inf"))
    alpha = scores.softmax(-1)
    moved = torch.randn(1, h_n, t, d, generator=gen)
    residual = 1000 * torch.randn(1, t, d, generator=gen)
    whole = residual + torch.einsum("bhij,bhjd->bid", alpha, moved)
    flow = flow_map(alpha, moved, residual, whole, rows=4)[0].numpy()
    expected = flow_loop(f64(alpha[0]), f64(moved[0]), f64(residual[0]))
    np.testing.assert_allclose(flow, expected, atol=2e-7)
    assert (flow[:, :t][~mask.numpy()] == 0).all()
    np.testing.assert_allclose(flow.sum(-1), 1.0, atol=1e-6)
