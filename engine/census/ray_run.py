"""The census on Ray Data: the same per-text rows as `run.local_frames`, computed by a pool
of actors that each hold one model.

    ray.data.from_items([{text_id, text}, ...])          the pending texts, longest first
      .map_batches(CensusWorker, batch_size=B,            one model per actor; an actor
                   compute=ActorPoolStrategy(size=W),     takes a GPU where the cluster
                   num_gpus=1 | num_cpus=1)               has them, else one CPU
      .iter_batches()                                     back on the driver: each block is
                                                          saved as a part, as in local runs

Ray starts in this process (`ray.init(num_cpus=W, include_dashboard=False)`) unless
RAY_ADDRESS names a cluster to join. Every node must hold this checkout and its .venv at the
same path: the actors import `engine` through PYTHONPATH set to the driver's checkout.
Ray is imported here only, so the app and the other commands never pay for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from engine.census.corpus import Corpus
from engine.census.metrics import METRICS
from engine.census.rows import TEXT_COLUMNS, census_rows, check_model
from engine.census.settings import CensusSettings
from engine.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SKIPPED = "(skipped)"  # the block of a row that only says "this text was skipped"


class CensusWorker:
    """A Ray Data callable class: loads the model once, then turns batches of texts into
    per-text rows (`rows.census_rows`)."""

    def __init__(self, model: str, device: str):
        from engine.models.registry import load

        self.model = load(model, device=device)
        check_model(self.model)

    def __call__(self, batch: dict) -> dict:
        ids = [int(i) for i in batch["text_id"]]
        cols, skipped = census_rows(self.model, [str(t) for t in batch["text"]], ids)
        cols = {name: list(cols.get(name, [])) for name in TEXT_COLUMNS}
        for text_id in skipped:  # Ray's output is columns: a marker row carries the fact
            marker = {"text_id": text_id, "block": SKIPPED, "layer": -1, "head": -1,
                      "kv_head": -1, "n_tokens": 0, "truncated": False}
            for name in TEXT_COLUMNS:
                cols[name].append(marker.get(name, float("nan")))
        return cols


def start_ray(workers: int | None):
    """ray, initialised: joined to RAY_ADDRESS's cluster, or started here with W CPUs."""
    # Ray's C++ core logs its retries to stderr; the census reports a failure in one line.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    try:
        import ray
    except ImportError as exc:
        raise InputError("Ray is not installed (.venv/bin/pip install -c constraints.txt "
                         "'ray[data]==2.60.0'); or run with --engine local") from exc
    if ray.is_initialized():
        return ray, False
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}}
    quiet = {"include_dashboard": False, "log_to_driver": False,
             "logging_level": logging.ERROR, "runtime_env": env}
    try:
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], **quiet)
        else:
            ray.init(num_cpus=workers or 2, **quiet)
    except Exception as exc:  # noqa: BLE001 - any failure to start says the same thing
        where = os.environ.get("RAY_ADDRESS") or "a local Ray"
        detail = " ".join(str(exc).split())[:300]
        raise InputError(f"Ray failed to start ({where}: {type(exc).__name__}: {detail}); "
                         "run without Ray: --engine local") from exc
    return ray, True


def ray_frames(settings: CensusSettings, corpus: Corpus, pending: list[int]
               ) -> Iterator[tuple[object, list[int]]]:
    """(DataFrame of per-text rows, skipped ids) per block of results, as they arrive."""
    if not pending:
        return
    ray, started = start_ray(settings.workers)
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the census draws its own bar
        ctx.print_on_execution_start = False
        ctx.enable_auto_log_stats = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        gpus = int(ray.cluster_resources().get("GPU", 0)) if settings.device != "cpu" else 0
        workers = settings.workers or (gpus or 2)
        per_actor = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        items = [{"text_id": i, "text": corpus.texts[i]} for i in pending]
        ds = ray.data.from_items(items).map_batches(
            CensusWorker, batch_size=settings.batch_size, batch_format="numpy",
            fn_constructor_kwargs={"model": settings.model, "device": settings.device},
            compute=ray.data.ActorPoolStrategy(size=workers), **per_actor)
        for frame in ds.iter_batches(batch_size=None, batch_format="pandas"):
            marks = frame["block"] == SKIPPED
            skipped = [int(i) for i in frame.loc[marks, "text_id"]]
            frame = frame.loc[~marks, list(TEXT_COLUMNS)].reset_index(drop=True)
            # the same dtypes as a local part (Ray's pandas spells strings differently)
            frame = frame.astype({"text_id": "int64", "block": "str", "layer": "int64",
                                  "head": "int64", "kv_head": "int64", "n_tokens": "int64",
                                  "truncated": bool, **dict.fromkeys(METRICS, "float64")})
            yield frame, skipped
    except InputError:
        raise
    except Exception as exc:  # a worker's error comes back wrapped: say what it was
        cause = getattr(exc, "cause", None) or exc
        if isinstance(cause, InputError):
            raise InputError(str(cause)) from exc
        raise InputError(f"the Ray census failed: {type(cause).__name__}: "
                         f"{' '.join(str(cause).split())[:300]}") from exc
    finally:
        if started:
            ray.shutdown()
