"""Running a census: batches of texts through `attend_batch`, per-text metrics saved as
they finish, merged into the census files at the end.

    DIR/parts/part-*.parquet   per-text rows of finished batches (each written atomically)
    DIR/texts.parquet          every part merged: one row per (text, block, layer, head)
    DIR/heads.parquet          one row per (block, layer, head): means, stds, probe, type
    DIR/manifest.json          written last: its presence marks a finished census

A part is written to a temporary name and renamed, so an interruption (Ctrl-C, a crash)
loses at most the batch in flight; `resume=True` reads the parts, skips their texts and
carries on. The parts are removed once the three files are in place.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from engine.api import VERSION, LoadedModel
from engine.census import labels, probe
from engine.census.corpus import Corpus, read_corpus
from engine.census.metrics import METRICS
from engine.census.rows import TEXT_COLUMNS, census_rows, check_model
from engine.census.settings import CensusSettings
from engine.core.block_key import BlockKey
from engine.errors import InputError

PLAN = "plan.json"
OUTPUTS = ("texts.parquet", "heads.parquet", "manifest.json")


def local_frames(model: LoadedModel, corpus: Corpus, pending: list[int], batch_size: int
                 ) -> Iterator[tuple[object, list[int]]]:
    """(DataFrame of one batch's rows, skipped ids), batch after batch, in this process."""
    import pandas as pd

    for start in range(0, len(pending), batch_size):
        ids = pending[start:start + batch_size]
        cols, skipped = census_rows(model, [corpus.texts[i] for i in ids], ids)
        yield pd.DataFrame(cols, columns=list(TEXT_COLUMNS)), skipped


# -- the run ----------------------------------------------------------------------------------
def run_census(settings: CensusSettings, out: str | Path, resume: bool = False,
               progress: bool = False, on_progress: Callable[[int, int, int], None] | None = None,
               model: LoadedModel | None = None) -> dict:
    """Run (or resume) a census into `out`; returns the manifest.

    on_progress(texts done, texts in all, tokens done) is called before the first batch and
    after each one (the app's progress bar; `progress` is the terminal's). `model`: an
    already loaded `settings.model` (the app's cached one) instead of loading another copy.
    """
    from engine.models.registry import load

    started = time.perf_counter()
    out = Path(out)
    corpus = read_corpus(settings.corpus, settings.field, settings.max_texts)
    parts = prepare_dir(out, resume)
    if parts is None:  # resumed a finished census: nothing to do
        return json.loads((out / "manifest.json").read_text())
    if model is None:
        model = load(settings.model, device=settings.device)
    check_model(model)
    identity = {"model": model.name, "weights_hash": model.weights_hash,
                "corpus_sha256": corpus.sha256, "field": corpus.field,
                "max_texts": settings.max_texts, "n_texts": len(corpus.texts)}
    check_plan(parts, identity)
    done, skipped = read_done(parts)
    # Longest-first keeps padding low inside a batch and puts a slow batch up front, where
    # the ETA learns of it; the order is fixed by the corpus, so a resume sees the same one.
    lengths = [len(model.codec.encode(t).ids) for t in corpus.texts]
    finished = done | skipped
    pending = sorted((i for i in range(len(corpus.texts)) if i not in finished),
                     key=lambda i: (-lengths[i], i))
    bar = _progress(progress, len(corpus.texts), len(done) + len(skipped), model.name,
                    sum(lengths[i] for i in done))
    if settings.engine == "ray":
        from engine.census.ray_run import ray_frames

        frames: Iterable = ray_frames(settings, corpus, pending)
    else:
        frames = local_frames(model, corpus, pending, settings.batch_size)
    n_done, n_tokens = len(done) + len(skipped), sum(lengths[i] for i in done)
    if on_progress is not None:
        on_progress(n_done, len(corpus.texts), n_tokens)
    try:
        for frame, skipped_now in frames:
            write_part(parts, frame, skipped_now)
            if bar is not None:
                bar.advance(frame, len(skipped_now))
            if on_progress is not None:
                per_text = frame.drop_duplicates("text_id")
                n_done += len(per_text) + len(skipped_now)
                n_tokens += int(per_text["n_tokens"].sum())
                on_progress(n_done, len(corpus.texts), n_tokens)
    finally:
        if bar is not None:
            bar.close()
        if hasattr(frames, "close"):  # a Ray run shuts its Ray down now, not at collection
            frames.close()
    scores = probe.induction_probe(model) if settings.probe == "induction" else None
    return finish(out, parts, settings, model, corpus, scores, len(done),
                  time.perf_counter() - started)


def prepare_dir(out: Path, resume: bool) -> Path | None:
    """DIR/parts, ready; None when resuming a census that already finished."""
    parts = out / "parts"
    if (out / "manifest.json").exists():
        if resume and not parts.exists():
            return None
        raise InputError(f"{out} already holds a finished census (manifest.json); choose "
                         "another --out or remove it")
    if parts.exists() and any(parts.glob("part-*.parquet")) and not resume:
        raise InputError(f"{out} holds an unfinished census ({parts}); add --resume to "
                         "continue it, or choose another --out")
    for name in OUTPUTS:  # leftovers of a merge that did not finish: never complete
        (out / name).unlink(missing_ok=True)
    try:
        parts.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {parts}: {exc.strerror or exc}") from exc
    return parts


def check_plan(parts: Path, identity: dict) -> None:
    """The parts of a resumed census must come from the same model, weights and corpus."""
    path = parts / PLAN
    if path.exists() and any(parts.glob("part-*.parquet")):
        old = json.loads(path.read_text())
        changed = [k for k in identity if old.get(k) != identity[k]]
        if changed:
            raise InputError(f"{parts} was started with another " + ", ".join(
                f"{k} ({old.get(k)!r}, now {identity[k]!r})" for k in changed)
                + ": use another --out, or the same settings")
    else:
        atomic_write(path, json.dumps(identity, indent=2).encode())


def read_done(parts: Path) -> tuple[set[int], set[int]]:
    """Text ids already in parts (done) and recorded as skipped."""
    import pyarrow.parquet as pq

    done: set[int] = set()
    skipped: set[int] = set()
    for path in sorted(parts.glob("part-*.parquet")):
        table = pq.read_table(path, columns=["text_id"])
        done.update(table.column("text_id").to_pylist())
        meta = table.schema.metadata or {}
        skipped.update(json.loads(meta.get(b"skipped", b"[]")))
    return done, skipped


def write_part(parts: Path, frame, skipped: list[int]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"skipped": json.dumps(skipped).encode()})
    first = int(frame["text_id"].min()) if len(frame) else (skipped or [0])[0]
    path = parts / f"part-{first:07d}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- merging ------------------------------------------------------------------------------------
def merge_parts(parts: Path, corpus: Corpus):
    """texts.parquet's frame: every part's rows, one per (text, block, layer, head)."""
    import pandas as pd

    frames = [pd.read_parquet(p) for p in sorted(parts.glob("part-*.parquet"))]
    texts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=list(TEXT_COLUMNS))
    texts = (texts.drop_duplicates(["text_id", "block", "layer", "head"])
             .sort_values(["text_id", "block", "layer", "head"]).reset_index(drop=True))
    texts["text"] = [corpus.texts[i] for i in texts["text_id"]]
    return texts


def summarise(texts, scores: dict[str, np.ndarray] | None):
    """heads.parquet's frame: per (block, layer, head) the mean and std (population) of
    every metric over texts, the uniform-attention entropy, the probe's score, the type."""
    import pandas as pd

    keys = ["block", "layer", "head"]
    groups = texts.groupby(keys, sort=True)
    heads = groups.agg(kv_head=("kv_head", "first"), n_texts=("text_id", "nunique"))
    for m in METRICS:
        heads[f"{m}_mean"] = groups[m].mean()
        heads[f"{m}_std"] = groups[m].std(ddof=0)
    causal = texts["block"] == "decoder.self"  # the census uses each model's own mask
    uniform = [labels.uniform_entropy(int(n), bool(c))
               for n, c in zip(texts["n_tokens"], causal, strict=True)]
    heads["entropy_uniform"] = pd.Series(uniform, index=texts.index).groupby(
        [texts[k] for k in keys]).mean()
    heads = heads.reset_index()
    if scores is not None:
        heads["induction"] = [
            float(scores[str(BlockKey(b, int(layer)))][h]) if str(BlockKey(b, int(layer)))
            in scores else math.nan
            for b, layer, h in zip(heads["block"], heads["layer"], heads["head"], strict=True)]
    heads["type"] = [labels.label(row) for row in heads.to_dict("records")]
    return heads


def finish(out: Path, parts: Path, settings: CensusSettings, model: LoadedModel,
           corpus: Corpus, scores, reused: int, elapsed: float) -> dict:
    texts = merge_parts(parts, corpus)
    _, skipped = read_done(parts)
    if texts.empty:
        raise InputError(f"no text of {corpus.path} could be recorded (all {len(skipped)} "
                         "exceed the record budget); shorten them")
    heads = summarise(texts, scores)
    per_text = texts.drop_duplicates("text_id")
    truncated = sorted(int(i) for i in per_text.loc[per_text["truncated"], "text_id"])
    for name, frame in (("texts.parquet", texts), ("heads.parquet", heads)):
        tmp = out / f".{name}.tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, out / name)
    manifest = build_manifest(settings, model, corpus, per_text, truncated, sorted(skipped),
                              list(heads.columns), list(texts.columns), reused, elapsed)
    atomic_write(out / "manifest.json",
                 json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    shutil.rmtree(parts, ignore_errors=True)
    return manifest


def build_manifest(settings, model, corpus, per_text, truncated, skipped, head_columns,
                   text_columns, reused, elapsed) -> dict:
    cfg = model.config
    versions = {"engine": VERSION, "python": platform.python_version()}
    for name in ("torch", "numpy", "pandas", "pyarrow", "tokenizers", "ray"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return {
        "kind": "attention-studio head census",
        "model": model.name, "model_kind": model.kind, "weights_hash": model.weights_hash,
        "layers": {"encoder": cfg.n_encoder_layers, "decoder": cfg.n_decoder_layers},
        "n_heads": cfg.n_heads, "kv_heads": cfg.kv_heads,
        "corpus": corpus.describe(),
        "n_texts": int(len(per_text)), "n_tokens": int(per_text["n_tokens"].sum()),
        "max_tokens": getattr(model.codec, "max_tokens", None),
        "truncated": {"count": len(truncated), "text_ids": truncated[:1000]},
        "skipped_over_record_budget": {"count": len(skipped), "text_ids": skipped[:1000]},
        "settings": {**asdict(settings), "mask": "auto", "resolved_device": str(model.device)},
        "probe": None if settings.probe is None else {
            "name": "induction", "sequences": probe.N_SEQUENCES, "length": probe.LENGTH,
            "seed": probe.SEED, "bos_id": probe.start_id(model)},
        "label_thresholds": labels.THRESHOLDS,
        "columns": {"heads.parquet": head_columns, "texts.parquet": text_columns},
        "engine": settings.engine, "versions": versions,
        "resumed_texts": reused, "elapsed_s": round(elapsed, 3),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# -- progress -----------------------------------------------------------------------------------
class _Bar:
    """tqdm over texts (rate and ETA), with the token count and tokens/s beside it."""

    def __init__(self, total: int, initial: int, name: str, tokens: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="text", desc=f"census {name}",
                        file=sys.stderr, dynamic_ncols=True)
        self.tokens, self.new_tokens, self.t0 = tokens, 0, time.perf_counter()
        self._show()

    def advance(self, frame, n_skipped: int) -> None:
        per_text = frame.drop_duplicates("text_id")
        self.new_tokens += int(per_text["n_tokens"].sum())
        self._show(refresh=False)
        self.bar.update(len(per_text) + n_skipped)  # redraws, with the new token count

    def _show(self, refresh: bool = True) -> None:
        rate = self.new_tokens / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{self.tokens + self.new_tokens:,} tokens, "
                                 f"{rate:,.0f} tok/s", refresh=refresh)

    def close(self) -> None:
        self.bar.close()


def _progress(on: bool, total: int, initial: int, name: str, tokens: int) -> _Bar | None:
    return _Bar(total, initial, name, tokens) if on else None
