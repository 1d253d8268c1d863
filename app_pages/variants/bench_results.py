"""The KV benchmark results of issue 8 (bench/bench_kv.py, bench/plot_results.py) as the
Variants page's GPU tab reads them from bench/results/."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def kv_results() -> dict[str, dict]:
    """The KV benchmark of issue 8 (bench/bench_kv.py): {device: result} from every
    bench/results/kv_<device>.json that holds measured points."""
    out: dict[str, dict] = {}
    if not RESULTS.is_dir():
        return out
    for path in sorted(RESULTS.glob("kv_*.json")):
        if path.name.startswith("kv_figures_"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("points"), list) and data["points"]:
            out[path.stem.removeprefix("kv_")] = data
    return out


def kv_figures(device: str) -> dict[str, dict]:
    """The Plotly figures bench/plot_results.py wrote for a device (latency, memory,
    bandwidth), as figure dicts; empty when it has not been run."""
    path = RESULTS / f"kv_figures_{device}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and "data" in v}


def headline_table(result: dict) -> pd.DataFrame | None:
    """One row per variant of the benchmark's headline point (its batch and context)."""
    head = result.get("headline")
    if not isinstance(head, dict):
        return None
    rows = [
        {"variant": v, "batch": head.get("batch"), "context": head.get("context"), **m}
        for v, m in head.items()
        if isinstance(m, dict)
    ]
    return pd.DataFrame(rows) if rows else None


# Readable headers, with units, for the benchmark's snake_case columns (the points keep
# their names in the downloads; the page shows these, translated under 中文).
READABLE = {
    "variant": "variant",
    "kv_heads": "K/V heads",
    "batch": "batch",
    "context": "context (tokens)",
    "status": "status",
    "capacity": "cache capacity (tokens)",
    "prefill_chunk": "prefill chunk (tokens)",
    "prefill_s": "prefill (s)",
    "decode_ms": "decode (ms / step)",
    "decode_ms_p10": "decode p10 (ms)",
    "decode_ms_p90": "decode p90 (ms)",
    "tokens_per_s": "tokens / s",
    "kv_bytes_allocator": "KV bytes (allocator)",
    "kv_bytes_allocator_blocks": "KV bytes (allocator blocks)",
    "kv_bytes_formula": "KV bytes (formula)",
    "kv_agree": "formula = allocator",
    "weight_bytes": "weight bytes",
    "kv_bytes_read": "KV bytes read / step",
    "achieved_GBps": "achieved GB/s",
    "bandwidth_fraction": "share of copy bandwidth",
    "graph_step_ms": "graph step (ms)",
    "graph_bandwidth_fraction": "graph: share of copy bandwidth",
    "graph_decode_ms": "graph decode (ms / step)",
    "graph_decode_ms_p10": "graph decode p10 (ms)",
    "graph_decode_ms_p90": "graph decode p90 (ms)",
    "graph_decode_tokens_per_s": "graph tokens / s",
    "graph_decode_kv_bytes_read": "graph KV bytes read / step",
    "graph_decode_bandwidth_fraction": "graph decode: share of copy bandwidth",
    "graph_decode_splits": "graph decode splits",
    "notes": "notes",
    "kv_GiB": "KV cache (GiB)",
    "speedup_vs_MHA": "speed-up vs MHA (×)",
    "kv_memory_vs_MHA": "KV memory vs MHA (×)",
    "graph_tokens_per_s": "graph tokens / s",
    "graph_speedup_vs_MHA": "graph speed-up vs MHA (×)",
}
