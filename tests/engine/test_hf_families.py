"""Every Hugging Face family the engine opens, against transformers (a test-only oracle).

Each test builds a tiny random model in transformers with the options that family's real
checkpoints use switched on, perturbs every parameter (so norm weights are not 1, biases not
0 and maps not uniform), saves it with `save_pretrained` beside a small `tokenizers`
tokenizer.json, opens the folder with `engine.load(path)` and compares every map of every
block (eager attention, output_attentions=True) and the logits or last hidden state within
1e-5. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import engine
from engine.core.transformer import Request

transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402

TOL = dict(atol=1e-5, rtol=1e-5)
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0 1 2 3 in every test vocabulary
WORDS = [f"w{i}" for i in range(40)]
VOCAB = 64
TEXT = " ".join(WORDS[(7 * i + 3) % 40] for i in range(22))  # 22 words, past every window
TARGET = " ".join(WORDS[(5 * i + 1) % 40] for i in range(9))


def write_tokenizer(folder: Path, prefix=("<s>",), suffix=(), specials=SPECIALS) -> Tokenizer:
    """A WordLevel tokenizer over `specials` + WORDS whose post-processor adds `prefix` and
    `suffix` special tokens, saved as folder/tokenizer.json."""
    vocab = {t: i for i, t in enumerate(list(specials) + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(SPECIALS)
    single = " ".join([*prefix, "$A", *suffix])
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(t, vocab[t]) for t in SPECIALS])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return tok


def perturbed(model, seed: int = 0, scale: float = 0.1, skip: str | None = None):
    """`model` with N(0, scale²) noise added to every parameter and to BART/Marian's
    final_logits_bias (not to RoPE's or a sinusoid's buffers), in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    learned = [p for n, p in model.named_parameters() if skip is None or skip not in n]
    learned += [b for n, b in model.named_buffers() if n.endswith("final_logits_bias")]
    with torch.no_grad():
        for t in learned:
            t.add_(torch.randn(t.shape, generator=gen) * scale)
    return model.eval()


def save(model, folder: Path, **kw) -> Path:
    model.save_pretrained(str(folder), **kw)
    return folder


def ids_of(folder: Path, text: str) -> list[int]:
    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text).ids


def close(ours, theirs, what: str) -> None:
    ours = torch.as_tensor(ours).float()
    theirs = theirs.detach().float()
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    torch.testing.assert_close(ours, theirs, **TOL, msg=lambda m: f"{what}: {m}")


# -- decoders ---------------------------------------------------------------------------
def check_decoder(ref, folder: Path, text: str = TEXT) -> None:
    lm = engine.load(str(folder), device="cpu")
    ids = ids_of(folder, text)
    rec = lm.attend(text)
    assert lm.codec.encode(text).ids == ids  # the checkpoint's own tokenizer, specials too
    with torch.no_grad():
        out = ref(torch.tensor([ids]), output_attentions=True)
    assert len(rec.keys()) == len(out.attentions) == lm.config.n_decoder_layers
    for i, a in enumerate(out.attentions):
        close(rec[f"decoder.self.{i}"], a[0], f"decoder.self.{i}")
    with torch.inference_mode():
        ours = lm.transformer(torch.tensor([ids]), req=Request(record=()))
    close(ours.logits[0], out.logits[0], "logits")


def causal_lm(config):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return perturbed(model)


SMALL = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, bos_token_id=1,
             eos_token_id=2)


@pytest.mark.parametrize("rope", [
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 16, "rope_theta": 500_000.0},
    {"rope_type": "linear", "factor": 4.0, "rope_theta": 10_000.0},
    {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10_000.0},  # 23 tokens > 16 positions
    None,
], ids=["llama3", "linear", "dynamic", "default"])
def test_llama(tmp_path, rope):
    kw = dict(SMALL, max_position_embeddings=16 if rope else 64, tie_word_embeddings=rope is None)
    if rope:
        kw["rope_parameters"] = rope
    ref = causal_lm(transformers.LlamaConfig(**kw))
    write_tokenizer(tmp_path)
    check_decoder(ref, save(ref, tmp_path))


def test_llama_config_in_the_older_rope_scaling_form():
    """Checkpoints saved before transformers 5 write rope_theta + rope_scaling {"type": ...}."""
    from engine.models import llama

    hf = dict(SMALL, model_type="llama", max_position_embeddings=4096, rope_theta=10_000.0,
              rope_scaling={"type": "linear", "factor": 2.0})
    cfg = llama.config_from_hf(hf)
    assert cfg.rope_scaling.kind == "linear" and cfg.rope_scaling.factor == 2.0
    with pytest.raises(ValueError, match="yarn"):
        llama.config_from_hf({**hf, "rope_scaling": {"rope_type": "yarn", "factor": 2.0}})


def test_mistral_sliding_window(tmp_path):
    ref = causal_lm(transformers.MistralConfig(**SMALL, sliding_window=5,
                                                max_position_embeddings=64))
    write_tokenizer(tmp_path)
    check_decoder(ref, save(ref, tmp_path))
    assert engine.load(str(tmp_path), device="cpu").config.layer_window(0) == 5


def test_qwen2_biases_and_sliding_layers(tmp_path):
    ref = causal_lm(transformers.Qwen2Config(**SMALL, use_sliding_window=True, sliding_window=6,
                                              max_window_layers=1, max_position_embeddings=64))
    write_tokenizer(tmp_path, prefix=())
    check_decoder(ref, save(ref, tmp_path))
    cfg = engine.load(str(tmp_path), device="cpu").config
    assert cfg.has_bias("qkv") and not cfg.has_bias("o") and not cfg.has_bias("ffn")
    assert [cfg.layer_window(i) for i in range(2)] == [None, 6]


def test_qwen3_qk_norm_and_explicit_head_dim(tmp_path):
    ref = causal_lm(transformers.Qwen3Config(**SMALL, head_dim=16, max_position_embeddings=64,
                                              tie_word_embeddings=True))
    write_tokenizer(tmp_path, prefix=())
    check_decoder(ref, save(ref, tmp_path))


def test_gemma(tmp_path):
    kw = dict(SMALL, num_key_value_heads=1, head_dim=16, max_position_embeddings=64)
    ref = causal_lm(transformers.GemmaConfig(**kw))
    write_tokenizer(tmp_path)
    check_decoder(ref, save(ref, tmp_path))


def test_gemma2_soft_capping_and_alternating_windows(tmp_path):
    kw = dict(SMALL, head_dim=16, max_position_embeddings=64, sliding_window=4,
              query_pre_attn_scalar=12, attn_logit_softcapping=2.0, final_logit_softcapping=1.5)
    ref = causal_lm(transformers.Gemma2Config(**kw))
    write_tokenizer(tmp_path)
    check_decoder(ref, save(ref, tmp_path))
    cfg = engine.load(str(tmp_path), device="cpu").config
    assert [cfg.layer_window(i) for i in range(2)] == [4, None]
    assert cfg.attn_softcap == 2.0 and cfg.logits_softcap == 1.5


def test_gemma3_text_local_and_global_rope(tmp_path):
    kw = dict(SMALL, head_dim=16, max_position_embeddings=64, sliding_window=4,
              query_pre_attn_scalar=16, layer_types=["sliding_attention", "full_attention"],
              rope_parameters={
                  "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                  "full_attention": {"rope_type": "linear", "factor": 8.0,
                                     "rope_theta": 1_000_000.0}})
    ref = causal_lm(transformers.Gemma3TextConfig(**kw))
    write_tokenizer(tmp_path)
    check_decoder(ref, save(ref, tmp_path))


def test_gpt2(tmp_path):
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4,
                                  n_positions=64, bos_token_id=1, eos_token_id=2)
    ref = causal_lm(cfg)
    write_tokenizer(tmp_path, prefix=())
    check_decoder(ref, save(ref, tmp_path))


# -- encoders ---------------------------------------------------------------------------
def check_encoder(ref, folder: Path, text: str = TEXT) -> None:
    lm = engine.load(str(folder), device="cpu")
    ids = ids_of(folder, text)
    rec = lm.attend(text)
    assert lm.codec.encode(text).ids == ids
    base = getattr(ref, ref.base_model_prefix, ref)
    with torch.no_grad():
        out = base(torch.tensor([ids]), output_attentions=True)
    assert len(rec.keys()) == len(out.attentions) == lm.config.n_encoder_layers
    for i, a in enumerate(out.attentions):
        close(rec[f"encoder.self.{i}"], a[0], f"encoder.self.{i}")
    with torch.inference_mode():
        ours = lm.transformer(torch.tensor([ids]), req=Request(record=()))
    close(ours.hidden[0], out.last_hidden_state[0], "last hidden state")


ENC = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
           num_attention_heads=4, max_position_embeddings=64, pad_token_id=0)


@pytest.mark.parametrize("head", ["BertForMaskedLM", "BertModel"])
def test_bert_with_and_without_the_name_prefix(tmp_path, head):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(**ENC, attn_implementation="eager")
    ref = perturbed(getattr(transformers, head)(cfg))
    write_tokenizer(tmp_path, prefix=("<s>",), suffix=("</s>",))
    check_encoder(ref, save(ref, tmp_path))


@pytest.mark.parametrize("kind", ["RobertaConfig", "XLMRobertaConfig"])
def test_roberta_positions_start_after_the_padding_index(tmp_path, kind):
    torch.manual_seed(0)
    cfg = getattr(transformers, kind)(**dict(ENC, pad_token_id=1, max_position_embeddings=40),
                                      attn_implementation="eager")
    ref = perturbed(transformers.AutoModelForMaskedLM.from_config(cfg))
    # RoBERTa's own order: <s> 0, <pad> 1 (the padding index its positions start after)
    write_tokenizer(tmp_path, prefix=("<s>",), suffix=("</s>",),
                    specials=["<s>", "<pad>", "</s>", "<unk>"])
    check_encoder(ref, save(ref, tmp_path))
    assert engine.load(str(tmp_path), device="cpu").config.position_offset == 2


def test_distilbert(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.DistilBertConfig(vocab_size=VOCAB, dim=32, hidden_dim=48, n_layers=2,
                                        n_heads=4, max_position_embeddings=64, pad_token_id=0,
                                        attn_implementation="eager")
    ref = perturbed(transformers.DistilBertForMaskedLM(cfg))
    write_tokenizer(tmp_path, prefix=("<s>",), suffix=("</s>",))
    check_encoder(ref, save(ref, tmp_path))


# -- encoder-decoders ---------------------------------------------------------------------
def check_seq2seq(ref, folder: Path, start: int | None = None) -> None:
    """Maps of every block and the logits with the target teacher-forced: the decoder reads
    decoder_start_token_id + the target's ids without the last, as transformers shifts labels."""
    lm = engine.load(str(folder), device="cpu")
    src, labels = ids_of(folder, TEXT), ids_of(folder, TARGET)
    start = ref.config.decoder_start_token_id if start is None else start
    dec_in = [start] + labels[:-1]
    rec = lm.attend(TEXT, target=TARGET)
    with torch.no_grad():
        out = ref(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([dec_in]),
                  output_attentions=True)
    n = lm.config.n_decoder_layers
    assert len(rec.keys()) == lm.config.n_encoder_layers + 2 * n
    for i, a in enumerate(out.encoder_attentions):
        close(rec[f"encoder.self.{i}"], a[0], f"encoder.self.{i}")
    for i in range(n):
        close(rec[f"decoder.self.{i}"], out.decoder_attentions[i][0], f"decoder.self.{i}")
        close(rec[f"decoder.cross.{i}"], out.cross_attentions[i][0], f"decoder.cross.{i}")
    with torch.inference_mode():
        ours = lm.transformer(torch.tensor([src]), target_ids=torch.tensor([dec_in]),
                              req=Request(record=()))
    close(ours.logits[0], out.logits[0], "logits")


@pytest.mark.parametrize("proj, tied", [("gated-gelu", False), ("relu", True)],
                         ids=["flan-t5", "t5-v1.0"])
def test_t5_relative_buckets(tmp_path, proj, tied):
    torch.manual_seed(0)
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                                num_heads=4, relative_attention_num_buckets=8,
                                relative_attention_max_distance=12, feed_forward_proj=proj,
                                tie_word_embeddings=tied, decoder_start_token_id=0,
                                pad_token_id=0, eos_token_id=2, attn_implementation="eager")
    ref = perturbed(transformers.T5ForConditionalGeneration(cfg))
    write_tokenizer(tmp_path, prefix=(), suffix=("</s>",))
    check_seq2seq(ref, save(ref, tmp_path))


SEQ = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
           encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
           decoder_ffn_dim=48, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
           eos_token_id=2, decoder_start_token_id=2, attn_implementation="eager")


def test_bart(tmp_path):
    torch.manual_seed(0)
    ref = perturbed(transformers.BartForConditionalGeneration(transformers.BartConfig(**SEQ)))
    write_tokenizer(tmp_path, prefix=("<s>",), suffix=("</s>",))
    check_seq2seq(ref, save(ref, tmp_path))


def test_mbart_pre_norm_and_final_norms(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.MBartConfig(**SEQ, scale_embedding=True)
    ref = perturbed(transformers.MBartForConditionalGeneration(cfg))
    write_tokenizer(tmp_path, prefix=(), suffix=("</s>",))
    # transformers' mBART starts the decoder at the labels' last token (the language id)
    check_seq2seq(ref, save(ref, tmp_path), start=ids_of(tmp_path, TARGET)[-1])


def test_marian_sinusoid_halves(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.MarianConfig(**dict(SEQ, decoder_start_token_id=0), scale_embedding=True)
    # the stored sinusoid tables stay sinusoids (the engine computes them, ignoring the file's)
    ref = perturbed(transformers.MarianMTModel(cfg), skip="embed_positions")
    write_tokenizer(tmp_path, prefix=(), suffix=("</s>",))
    check_seq2seq(ref, save(ref, tmp_path))


def test_every_family_is_served():
    from engine.models import hf

    assert set(hf.supported_types()) >= {
        "bert", "roberta", "xlm-roberta", "distilbert", "gpt2", "llama", "mistral", "qwen2",
        "qwen3", "gemma", "gemma2", "gemma3_text", "t5", "bart", "mbart", "marian"}
    assert json  # noqa: B018 (imported for the loading tests that share this module)


LONG = " ".join(WORDS[(11 * i + 5) % 40] for i in range(799))  # 800 tokens with <s>


@pytest.mark.parametrize("family", ["llama3", "gemma3_text"])
def test_long_text_past_every_window_and_through_the_query_blocks(tmp_path, family):
    """800 positions: RoPE angles in float32 as transformers computes them (float64 angles
    drift by ~1e-4 here), windows of 64 keys, and the CPU's blocked path (128-query blocks)."""
    if family == "llama3":
        cfg = transformers.LlamaConfig(**SMALL, max_position_embeddings=1024, rope_parameters={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 256,
            "rope_theta": 500_000.0})
    else:
        cfg = transformers.Gemma3TextConfig(**SMALL, head_dim=16, max_position_embeddings=1024,
                                            sliding_window=64, query_pre_attn_scalar=16,
                                            layer_types=["sliding_attention", "full_attention"])
    ref = causal_lm(cfg)
    write_tokenizer(tmp_path)
    check_decoder(ref, save(ref, tmp_path), text=LONG)
