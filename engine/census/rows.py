"""One batch of texts → per-text metric rows: the unit of work both engines share (run.py
in this process, ray_run.py in Ray actors)."""

from __future__ import annotations

from collections import defaultdict

from engine.api import AttendOptions, LoadedModel
from engine.census.metrics import METRICS, text_head_metrics
from engine.core.block_key import BlockKey
from engine.errors import InputError

TEXT_COLUMNS = ("text_id", "block", "layer", "head", "kv_head", "n_tokens", "truncated",
                *METRICS)


def check_model(model: LoadedModel) -> None:
    if model.kind == "encoder-decoder":
        raise InputError(f"{model.name} is an encoder-decoder: its decoder's maps depend on a "
                         "target, which a corpus of texts does not give; census an encoder "
                         "or a decoder (minilm, smollm2-135m, gemma3-270m)")


def batch_rows(model: LoadedModel, texts: list[str], text_ids: list[int]) -> dict[str, list]:
    """Per-text metrics of one right-padded batch: columns of TEXT_COLUMNS, one row per
    (text, block, layer, head). Each map is cropped to its text's real tokens."""
    records = model.attend_batch(texts, options=AttendOptions(outputs=False))
    group = model.config.n_heads // model.config.kv_heads  # query heads per K/V head
    cols: dict[str, list] = defaultdict(list)
    for text_id, rec in zip(text_ids, records, strict=True):
        n_real = int(rec.meta["n_real"])
        for key in rec.keys():
            block = BlockKey.parse(key)
            values = text_head_metrics(rec[key], n_real=n_real,
                                       self_attention=not block.cross)
            n_heads = len(values["entropy"])
            cols["text_id"] += [int(text_id)] * n_heads
            cols["block"] += [block.kind] * n_heads
            cols["layer"] += [block.layer] * n_heads
            cols["head"] += range(n_heads)
            cols["kv_head"] += [h // group for h in range(n_heads)]
            cols["n_tokens"] += [n_real] * n_heads
            cols["truncated"] += [bool(rec.meta.get("truncated"))] * n_heads
            for m in METRICS:
                cols[m] += values[m].tolist()
    return cols


def census_rows(model: LoadedModel, texts: list[str], text_ids: list[int]
                ) -> tuple[dict[str, list], list[int]]:
    """`batch_rows`, and the ids of texts skipped because even alone their maps exceed the
    engine's record budget (ATTENTION_STUDIO_MAX_RECORD_GIB): a batch refused as a whole is
    retried one text at a time, so one long text does not sink its neighbours."""
    try:
        return batch_rows(model, texts, text_ids), []
    except InputError as exc:
        if "needs about" not in str(exc) or len(texts) == 1:
            raise
    cols: dict[str, list] = defaultdict(list)
    skipped = []
    for text, text_id in zip(texts, text_ids, strict=True):
        try:
            one = batch_rows(model, [text], [text_id])
        except InputError as exc:
            if "needs about" not in str(exc):
                raise
            skipped.append(int(text_id))
            continue
        for name, values in one.items():
            cols[name] += values
    return cols, skipped
