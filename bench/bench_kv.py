"""MHA vs GQA vs MQA, measured: KV-cache memory and decode speed against the memory-bandwidth
limit (Shazeer, 2019, "Fast Transformer Decoding: One Write-Head is All You Need"; Ainslie et
al., 2023, "GQA").

Decoder-only models of realistic attention shape with random weights (timing does not depend on
weight values) run through the engine's own decoding path: `Transformer.generate` with a
preallocated `KVCache`, the prompt prefilled in chunks, then greedy steps of one token. For each
variant, context length and batch size it records

- prefill time (time to the first new token) and per-token decode latency, tokens/s;
- KV-cache bytes measured from the allocator (CUDA: `torch.cuda.memory_allocated` before and
  after the cache is allocated; CPU: the storage bytes of its tensors), next to the formula
  2 · layers · KV heads · head dim · bytes · tokens · batch;
- achieved bandwidth = (weight bytes + KV bytes a decode step must read) / step time, as a
  fraction of the device's copy bandwidth measured in the same run;
- the same decode continued through `engine.decode.graph.GraphDecoder`: one fixed-shape step
  (fused norms, one q/k/v matmul, split-keys attention over the valid keys) captured once as a
  CUDA graph and replayed per token (on the CPU: the same step, eager), with its own step time,
  tokens/s and bandwidth fraction;
- on CUDA, which SDPA kernel ran for a prefill, a prefill chunk and a decode step (a kernel that
  widened K/V to every query head would erase the saving), and how much of a decode step the
  GPU spent in kernels (the rest is the CPU launching them).

Usage:
    python bench/bench_kv.py                    # CUDA if present (scale "full"), else CPU "small"
    python bench/bench_kv.py --device cpu       # the CPU run committed in bench/results/
    python bench/bench_kv.py --scale tiny --out /tmp/kv   # seconds; what the tests run
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.timing import sync  # noqa: E402
from engine.core.config import ModelConfig  # noqa: E402
from engine.core.kv_cache import KVCache  # noqa: E402
from engine.core.transformer import Transformer  # noqa: E402
from engine.decode.graph import GraphDecoder  # noqa: E402
from engine.decode.greedy import generate  # noqa: E402

RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Scale:
    """One benchmark size: the model shape shared by every variant and the grid to sweep."""

    d_model: int
    n_heads: int
    d_head: int
    kv_heads: tuple[int, ...]
    d_ff: int
    n_layers: int
    vocab_size: int
    dtype: str
    contexts: tuple[int, ...]
    batches: tuple[int, ...]
    steps: int  # timed decode steps per point
    warmup: int  # decode steps before the timed ones
    prefill_tokens: int  # B · chunk per prefill pass (bounds activation memory)


SCALES = {
    # Llama-2-7B-like attention (d_model 4096, 32 heads of 128) with 4 layers.
    "full": Scale(4096, 32, 128, (32, 8, 1), 14336, 4, 32000, "bfloat16",
                  (1024, 2048, 4096, 8192, 16384, 32768), (1, 8, 32), 24, 4, 16384),
    "small": Scale(512, 8, 64, (8, 2, 1), 1536, 2, 8000, "float32",
                   (256, 512, 1024, 2048), (1, 4), 12, 2, 2048),
    "tiny": Scale(64, 4, 16, (4, 2, 1), 128, 2, 101, "float32", (16, 32), (1, 2), 3, 1, 64),
}


def model_config(s: Scale, kv_heads: int, max_len: int) -> ModelConfig:
    """A pre-norm RMSNorm/RoPE/GeGLU decoder without biases (the Llama/Gemma family)."""
    return ModelConfig(
        arch="decoder", name=f"bench-kv{kv_heads}", vocab_size=s.vocab_size,
        d_model=s.d_model, n_heads=s.n_heads, n_kv_heads=kv_heads, d_head=s.d_head,
        d_ff=s.d_ff, n_decoder_layers=s.n_layers, activation="geglu", norm="rmsnorm",
        norm_position="pre", final_norm=True, positions="rope", max_len=max_len, bias=False,
        tie_embeddings=False,
    )


def build_model(cfg: ModelConfig, device: torch.device, dtype: torch.dtype) -> Transformer:
    """Random weights created directly on the device (no CPU round trip for 1B parameters)."""
    torch.manual_seed(0)
    with torch.device(device):
        model = Transformer(cfg)
    return model.to(dtype).eval()


def kv_formula(cfg: ModelConfig, bytes_per_value: int, tokens: int, batch: int) -> int:
    """2 · layers · KV heads · head dim · bytes · tokens · batch."""
    return 2 * cfg.n_decoder_layers * cfg.kv_heads * cfg.head_dim * bytes_per_value * tokens * batch


def weight_bytes_per_step(model: Transformer, batch: int) -> int:
    """Bytes of weights one decode step reads: every parameter once, except the token
    embedding table, of which only `batch` rows are gathered."""
    table = model.decoder.embed.tokens.weight
    total = 0
    for p in {id(p): p for p in model.parameters()}.values():
        if p is table and p is not model.lm_head.weight:
            total += batch * p.shape[1] * p.element_size()
        else:
            total += p.numel() * p.element_size()
    return total


def storage_bytes(cache: KVCache) -> int:
    """Bytes of the storages behind the cache's K/V tensors (the CPU's 'allocator' reading)."""
    seen: dict[int, int] = {}
    for c in cache.self_attn:
        for t in (c.k, c.v):
            if t is not None:
                st = t.untyped_storage()
                seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def allocator_reading(device: torch.device) -> tuple[int, int]:
    """(bytes the program asked the CUDA caching allocator for, bytes of the blocks it handed
    out). The second rounds each block up (512 B granularity, unsplit remainders of large
    segments), so the first is the one the formula must equal exactly."""
    if device.type != "cuda":
        return 0, 0
    stats = torch.cuda.memory_stats(device)
    return stats.get("requested_bytes.all.current", 0), torch.cuda.memory_allocated(device)


def copy_bandwidth(device: torch.device, n_bytes: int, repeats: int = 20) -> dict:
    """Median device-to-device (or RAM-to-RAM) copy rate, counting bytes read plus written."""
    x = torch.randn(n_bytes // 4, device=device)
    y = torch.empty_like(x)
    times = []
    for i in range(repeats + 3):
        sync(device)
        t0 = time.perf_counter()
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            y.copy_(x)
            end.record()
            end.synchronize()
            elapsed = start.elapsed_time(end) / 1e3
        else:
            y.copy_(x)
            elapsed = time.perf_counter() - t0
        if i >= 3:
            times.append(elapsed)
    t = statistics.median(times)
    # A read-only pass (a sum) for comparison: decode reads and hardly writes.
    read_times = []
    for i in range(repeats + 3):
        sync(device)
        t0 = time.perf_counter()
        x.sum().item()
        if i >= 3:
            read_times.append(time.perf_counter() - t0)
    r = statistics.median(read_times)
    del x, y
    return {"buffer_bytes": n_bytes, "copy_seconds": t, "copy_GBps": 2 * n_bytes / t / 1e9,
            "read_GBps": n_bytes / r / 1e9}


def launch_overhead_us(device: torch.device, n: int = 2000) -> float:
    """Microseconds per tiny in-place op issued from Python: the floor under every kernel of
    an eager decode step (Python, dispatcher, launch)."""
    x = torch.zeros(1, device=device)
    for _ in range(50):
        x.add_(1)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        x.add_(1)
    sync(device)
    return (time.perf_counter() - t0) / n * 1e6


@dataclass
class Point:
    variant: str
    kv_heads: int
    batch: int
    context: int
    status: str = "ok"
    capacity: int = 0
    prefill_chunk: int = 0
    prefill_s: float = math.nan
    decode_ms: float = math.nan  # median per step
    decode_ms_p10: float = math.nan
    decode_ms_p90: float = math.nan
    tokens_per_s: float = math.nan
    kv_bytes_allocator: int = 0  # CUDA: requested bytes; CPU: tensor storage bytes
    kv_bytes_allocator_blocks: int = 0  # CUDA: memory_allocated delta (rounded blocks)
    kv_bytes_formula: int = 0
    kv_agree: bool = False
    weight_bytes: int = 0
    kv_bytes_read: float = 0.0  # mean over timed steps
    achieved_GBps: float = math.nan
    bandwidth_fraction: float = math.nan
    graph_step_ms: float = math.nan  # the same step replayed as one CUDA graph (no launches)
    graph_bandwidth_fraction: float = math.nan
    # Decoding continued through engine.decode.graph (CUDA: graph replays; CPU: eager steps).
    graph_decode_ms: float = math.nan  # median per step
    graph_decode_ms_p10: float = math.nan
    graph_decode_ms_p90: float = math.nan
    graph_decode_tokens_per_s: float = math.nan
    graph_decode_kv_bytes_read: float = 0.0  # mean over timed steps
    graph_decode_bandwidth_fraction: float = math.nan
    graph_decode_splits: int = 0  # parts the keys are cut into (split-keys attention)
    notes: list[str] = field(default_factory=list)


def run_point(model: Transformer, s: Scale, batch: int, context: int, device: torch.device,
              copy_GBps: float, graph: bool = False) -> Point:
    cfg = model.cfg
    dtype = model.lm_head.weight.dtype
    point = Point(cfg.variant, cfg.kv_heads, batch, context)
    n_fed = s.warmup + s.steps  # decode steps; each feeds one token into the cache
    # Eager steps, then the one-length graph diagnostic, then as many graph-decode steps.
    capacity = context + n_fed + (GRAPH_TOKENS if graph else 0) + n_fed
    point.capacity = capacity
    point.prefill_chunk = max(1, min(context, s.prefill_tokens // batch))
    ids = torch.randint(0, cfg.vocab_size, (batch, context), device=device)

    # The cache, allocated before any token arrives, measured from the allocator.
    sync(device)
    before = allocator_reading(device)
    cache = model.new_cache(capacity, batch=batch)
    sync(device)
    if device.type == "cuda":
        after = allocator_reading(device)
        point.kv_bytes_allocator = after[0] - before[0]
        point.kv_bytes_allocator_blocks = after[1] - before[1]
    else:
        point.kv_bytes_allocator = point.kv_bytes_allocator_blocks = storage_bytes(cache)
    point.kv_bytes_formula = kv_formula(cfg, dtype.itemsize, capacity, batch)
    point.kv_agree = point.kv_bytes_allocator == point.kv_bytes_formula

    # Generate: step 0 is the prefill and the first token, steps 1.. are decode steps.
    sync(device)
    stamps: list = [_stamp(device)]
    new_ids = generate(model, ids, n_fed + 1, cache=cache, prefill_chunk=point.prefill_chunk,
                             on_step=lambda _step, _cache: stamps.append(_stamp(device)))
    sync(device)
    seconds = _intervals(stamps, device)
    if graph:
        try:
            point.graph_step_ms = graph_step_seconds(model, cache, batch, device) * 1e3
        except Exception as exc:  # a diagnostic; never lose the point to it
            point.notes.append(f"graph replay failed: {exc!r}"[:300])
    graph_decode(point, model, cache, new_ids[:, -1:], s, device, copy_GBps)
    if cache.capacity != capacity or cache.length != capacity:
        point.notes.append(f"cache grew: capacity {cache.capacity}, length {cache.length}")

    point.prefill_s = seconds[0]
    steps = seconds[1 + s.warmup :]  # step i feeds the token made by step i-1
    point.decode_ms = statistics.median(steps) * 1e3
    point.decode_ms_p10 = _quantile(steps, 0.1) * 1e3
    point.decode_ms_p90 = _quantile(steps, 0.9) * 1e3
    point.tokens_per_s = batch / statistics.median(steps)
    # Step j (1-based) attends over context + j keys.
    lengths = [context + j for j in range(1 + s.warmup, 1 + n_fed)]
    point.kv_bytes_read = statistics.mean(kv_formula(cfg, dtype.itemsize, n, batch)
                                          for n in lengths)
    point.weight_bytes = weight_bytes_per_step(model, batch)
    point.achieved_GBps = (point.weight_bytes + point.kv_bytes_read) / (point.decode_ms / 1e3) / 1e9
    point.bandwidth_fraction = point.achieved_GBps / copy_GBps
    if not math.isnan(point.graph_step_ms):
        replayed = context + n_fed + GRAPH_TOKENS  # keys the replayed step reads
        step_bytes = point.weight_bytes + kv_formula(cfg, dtype.itemsize, replayed, batch)
        point.graph_bandwidth_fraction = step_bytes / (point.graph_step_ms / 1e3) / 1e9 / copy_GBps
    del cache
    return point


GRAPH_TOKENS = 2  # cache slots the graph measurement uses: one warm-up step, one capture


def graph_decode(point: Point, model: Transformer, cache: KVCache, next_ids: torch.Tensor,
                 s: Scale, device: torch.device, copy_GBps: float) -> None:
    """Continue the point's decoding through `GraphDecoder` on the same cache: warm-up steps,
    then `s.steps` timed ones, each one real step at a growing length (on CUDA a replay of the
    captured graph; on the CPU the same step, eager), stamped between steps as the eager ones
    are. On CUDA it starts after the one-length diagnostic's two slots. Fills the
    graph_decode_* fields; the bytes a step must read are counted at its own length, as for the
    eager path."""
    cfg, itemsize = model.cfg, model.lm_head.weight.dtype.itemsize
    stamps: list = []

    def on_step(_i: int) -> None:
        stamps.append(_stamp(device))

    try:
        dec = GraphDecoder(model, cache)
        dec.start(next_ids)
        if device.type == "cuda":
            dec.capture()
        first_length = dec.length
        sync(device)
        stamps.append(_stamp(device))
        dec.decode(s.warmup + s.steps, on_step)
        sync(device)
        point.graph_decode_splits = dec.splits
        del dec
    except Exception as exc:  # never lose the point's eager numbers to it
        point.notes.append(f"graph decode failed: {exc!r}"[:300])
        return
    seconds = _intervals(stamps, device)[s.warmup :]
    ms = statistics.median(seconds) * 1e3
    point.graph_decode_ms = ms
    point.graph_decode_ms_p10 = _quantile(seconds, 0.1) * 1e3
    point.graph_decode_ms_p90 = _quantile(seconds, 0.9) * 1e3
    point.graph_decode_tokens_per_s = point.batch / (ms / 1e3)
    # Timed step j (0-based) feeds the token at position first_length + warmup + j.
    point.graph_decode_kv_bytes_read = statistics.mean(
        kv_formula(cfg, itemsize, first_length + s.warmup + j + 1, point.batch)
        for j in range(s.steps))
    step_bytes = weight_bytes_per_step(model, point.batch) + point.graph_decode_kv_bytes_read
    point.graph_decode_bandwidth_fraction = step_bytes / (ms / 1e3) / 1e9 / copy_GBps


def graph_step_seconds(model: Transformer, cache: KVCache, batch: int, device: torch.device,
                       replays: int = 20) -> float:
    """GPU time of one decode step with no launch overhead: the engine's step at the cache's
    current length, captured once as a CUDA graph and replayed. Every replay writes the same
    cache slot and reads the same keys, so each does exactly the work of that step. The gap
    between this and the measured step is the CPU launching kernels one by one."""
    nxt = torch.zeros(batch, 1, dtype=torch.long, device=device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        model.extend(nxt, cache)  # warm-up on a side stream, as capture requires
    torch.cuda.current_stream(device).wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        model.extend(nxt, cache)
    times = []
    for i in range(replays + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        g.replay()
        end.record()
        end.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end) / 1e3)
    del g
    return statistics.median(times)


def _stamp(device: torch.device):
    """A CUDA event recorded now in the stream (CUDA), or the host clock."""
    if device.type != "cuda":
        return time.perf_counter()
    e = torch.cuda.Event(enable_timing=True)
    e.record()
    return e


def _intervals(stamps: list, device: torch.device) -> list[float]:
    """Seconds between consecutive stamps of `_stamp` (synchronise before reading CUDA ones)."""
    if device.type == "cuda":
        return [a.elapsed_time(b) / 1e3 for a, b in zip(stamps, stamps[1:], strict=False)]
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def _quantile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def sdpa_kernels(model: Transformer, device: torch.device) -> dict:
    """Which attention ops and kernels run for a prefill, a prefill chunk after a cache and one
    decode step (CUDA). A K/V widening would show as repeat_interleave / expand copies feeding a
    math-path matmul; the flash kernel takes Hkv < H natively."""
    from torch.profiler import ProfilerActivity, profile

    found = {}
    cache = model.new_cache(2048 + 8, batch=1)
    ids = torch.randint(0, model.cfg.vocab_size, (1, 2048), device=device)
    phases = {
        "prefill (Tq = Tk = 1024)": lambda: model.extend(ids[:, :1024], cache),
        "prefill chunk (Tq = 1024 after 1024 cached)": lambda: model.extend(ids[:, 1024:], cache),
        "decode step (Tq = 1)": lambda: model.extend(ids[:, :1], cache),
    }
    for name, fn in phases.items():
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fn()
            sync(device)
        ops = sorted({e.key for e in prof.key_averages()
                      if any(w in e.key.lower() for w in ("attention", "repeat_interleave",
                                                           "flash", "fmha", "cudnn", "_efficient",
                                                           "_math", "expand"))})
        found[name] = [o[:120] for o in ops]
        if name.startswith("decode"):
            found["kernels per decode step"] = _launches(prof)
    # The fixed-shape step of engine.decode.graph (what the graph replays), run eagerly once.
    dec = GraphDecoder(model, cache)
    dec.start(ids[:, :1])
    dec.step()
    sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        dec.step()
        sync(device)
    found["graph decode step kernels"] = _launches(prof)
    found["graph decode attention kernels"] = sorted(
        {e.key[:120] for e in prof.key_averages()
         if any(w in e.key for w in ("_partial_kernel", "_combine_kernel", "flash", "fmha",
                                     "attention"))})
    return found


def _launches(prof) -> int:
    """Kernel launches a profiled region made (PyTorch's through the runtime, Triton's through
    the driver API)."""
    return sum(1 for e in prof.events() if e.name.startswith(("cudaLaunchKernel",
                                                               "cuLaunchKernel")))


DECODE_SHAPES = [  # (variant, B, Hkv, G = H / Hkv) with H = 32 query heads of 128
    ("MHA", 32, 32, 1), ("MHA", 8, 32, 1), ("MHA", 1, 32, 1),
    ("GQA-8", 32, 8, 4), ("GQA-8", 8, 8, 4), ("GQA-8", 1, 8, 4),
    ("MQA", 32, 1, 32), ("MQA", 8, 1, 32), ("MQA", 1, 1, 32),
]


def decode_attention_kernels(device: torch.device, copy_GBps: float, context: int = 32768 + 13,
                             d: int = 128, reps: int = 20) -> list[dict]:
    """One decode step's attention (Tq = 1, every key visible, K/V a prefix of a larger cache
    buffer, bf16) through each kernel PyTorch offers, timed alone: which one reads K/V closest
    to the copy bandwidth, and what cuDNN's plan for a new key length costs."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sdpa(backend, grouped):
        def run(q, qg, k, v):
            with sdpa_kernel([backend]):
                if grouped:
                    return F.scaled_dot_product_attention(qg, k, v)
                return F.scaled_dot_product_attention(q, k, v, enable_gqa=q.shape[1] != k.shape[1])
        return run

    def bmm(q, qg, k, v):  # explicit: scores, float32 softmax, weighted sum
        w = torch.softmax((qg @ k.transpose(-1, -2)).float() * d**-0.5, dim=-1)
        return w.to(v.dtype) @ v

    def engine_step(q, qg, k, v):  # what the engine runs: flash, a few sequences per call
        from engine.fast.sdpa import decode_step

        return decode_step(q, k, v, d**-0.5)

    methods = {
        "flash, enable_gqa": sdpa(SDPBackend.FLASH_ATTENTION, False),
        "engine (flash, batch in split-keys chunks)": engine_step,
        "flash, grouped q": sdpa(SDPBackend.FLASH_ATTENTION, True),
        "efficient, grouped q": sdpa(SDPBackend.EFFICIENT_ATTENTION, True),
        "cudnn, enable_gqa": sdpa(SDPBackend.CUDNN_ATTENTION, False),
        "bmm, grouped q": bmm,
    }
    rows = []
    for variant, b, h_kv, g in DECODE_SHAPES:
        cap = context + 64
        kbuf = torch.randn(b, h_kv, cap, d, device=device, dtype=torch.bfloat16)
        vbuf = torch.randn_like(kbuf)
        k, v = kbuf[:, :, :context], vbuf[:, :, :context]
        q = torch.randn(b, h_kv * g, 1, d, device=device, dtype=torch.bfloat16)
        qg = q.view(b, h_kv, g, d)
        kv_bytes = 2 * k.numel() * k.element_size()
        row = {"variant": variant, "batch": b, "kv_heads": h_kv, "group": g,
               "context": context, "kv_bytes": kv_bytes}
        for name, fn in methods.items():
            try:
                for _ in range(3):
                    fn(q, qg, k, v)
                sync(device)
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(reps):
                    fn(q, qg, k, v)
                end.record()
                end.synchronize()
                ms = start.elapsed_time(end) / reps
                row[name] = {"ms": ms, "fraction": kv_bytes / (ms / 1e3) / 1e9 / copy_GBps}
            except Exception as exc:  # a backend that refuses the shape
                row[name] = {"error": repr(exc)[:160]}
        # cuDNN's first call at each new key length (a decode step's situation).
        try:
            times = []
            for extra in (1, 2, 3):
                kk, vv = kbuf[:, :, : context + extra], vbuf[:, :, : context + extra]
                sync(device)
                t0 = time.perf_counter()
                methods["cudnn, enable_gqa"](q, qg, kk, vv)
                sync(device)
                times.append((time.perf_counter() - t0) * 1e3)
            row["cudnn new key length ms"] = statistics.median(times)
        except Exception as exc:
            row["cudnn new key length ms"] = repr(exc)[:160]
        rows.append(row)
        cells = "  ".join(f"{n.split(' ')[0].rstrip(',')}{'/g' if 'grouped' in n else ''} "
                          + (f"{row[n]['ms']:.3f} ms {row[n]['fraction']:4.0%}"
                             if "ms" in row[n] else "n/a") for n in methods)
        plan = row["cudnn new key length ms"]
        plan = f"{plan:.1f} ms" if isinstance(plan, float) else plan
        print(f"{variant:6s} B={b:<3d} {cells}  cudnn at a new key length {plan}", flush=True)
        del kbuf, vbuf, k, v
        torch.cuda.empty_cache()
    return rows


def device_info(device: torch.device) -> dict:
    info = {
        "device": device.type, "torch": torch.__version__, "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],  # other work on the machine while it ran
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(device_name=p.name, gpu_memory_GiB=round(p.total_memory / 2**30, 1),
                    multiprocessors=p.multi_processor_count, cuda=torch.version.cuda)
    else:
        info["device_name"] = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    return info


def fits(cfg: ModelConfig, s: Scale, batch: int, context: int, device: torch.device,
         itemsize: int) -> bool:
    """Whether the cache and a prefill chunk's activations fit in the free device memory."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    chunk_tokens = batch * max(1, min(context, s.prefill_tokens // batch))
    activations = chunk_tokens * (4 * cfg.d_ff + 8 * cfg.d_model) * 4
    n_fed = s.warmup + s.steps
    need = kv_formula(cfg, itemsize, context + n_fed + GRAPH_TOKENS + n_fed, batch)
    need += activations
    return need < 0.95 * free


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA if present), cuda or cpu")
    ap.add_argument("--scale", choices=sorted(SCALES), default=None,
                    help="model/grid size (default: full on CUDA, small on CPU)")
    ap.add_argument("--contexts", type=int, nargs="*", help="override the context lengths")
    ap.add_argument("--batches", type=int, nargs="*", help="override the batch sizes")
    ap.add_argument("--kv-heads", type=int, nargs="*", help="override the KV head counts")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for kv_<device>.json/.csv")
    ap.add_argument("--no-profile", action="store_true", help="skip the CUDA profiler checks")
    ap.add_argument("--kernel-context", type=int, default=32768 + 13,
                    help="keys in the decode-kernel comparison (odd, as in decoding)")
    ap.add_argument("--kernels-only", action="store_true",
                    help="only compare the decode-attention kernels (CUDA)")
    ap.add_argument("--profile-step", action="store_true",
                    help="only profile one graph-decode step per variant at batch 1 and the "
                         "longest context: where its GPU time goes (CUDA)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (on a shared machine 1 avoids OpenMP stalls)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    name = args.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if args.profile_step and device.type != "cuda":
        ap.error("--profile-step profiles CUDA kernels")
    s = SCALES[args.scale or ("full" if device.type == "cuda" else "small")]
    if args.contexts:
        s = Scale(**{**asdict(s), "contexts": tuple(args.contexts)})
    if args.batches:
        s = Scale(**{**asdict(s), "batches": tuple(args.batches)})
    if args.kv_heads:
        s = Scale(**{**asdict(s), "kv_heads": tuple(args.kv_heads)})
    dtype = getattr(torch, s.dtype)
    scale_name = args.scale or ("full" if device.type == "cuda" else "small")

    info = device_info(device)
    info["command"] = "python bench/bench_kv.py " + " ".join(argv if argv is not None
                                                              else sys.argv[1:])
    copy_bytes = 2 * 2**30 if device.type == "cuda" else 256 * 2**20
    if scale_name == "tiny":
        copy_bytes = 16 * 2**20
    bw = copy_bandwidth(device, copy_bytes)
    bw["launch_us"] = launch_overhead_us(device)
    print(f"# one tiny op, launched from Python: {bw['launch_us']:.1f} µs", flush=True)
    if args.profile_step:
        return profile_steps(s, device, bw, info, args.out)
    kernels = []
    if device.type == "cuda" and scale_name == "full":
        kernels = decode_attention_kernels(device, bw["copy_GBps"], args.kernel_context)
    if args.kernels_only:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "kv_decode_kernels.json").write_text(json.dumps(
            {"meta": info, "copy_bandwidth": bw, "rows": kernels}, indent=1, default=str))
        return {"rows": kernels}
    print(f"# {info['device_name']} · torch {info['torch']} · copy {bw['copy_GBps']:.0f} GB/s "
          f"(read+write), read-only sum {bw['read_GBps']:.0f} GB/s", flush=True)

    points: list[Point] = []
    configs, sdpa = {}, {}
    max_len = max(s.contexts) + s.warmup + s.steps + 16
    for kv in s.kv_heads:
        cfg = model_config(s, kv, max_len)
        model = build_model(cfg, device, dtype)
        configs[cfg.variant] = {
            "d_model": cfg.d_model, "n_heads": cfg.n_heads, "n_kv_heads": cfg.kv_heads,
            "d_head": cfg.head_dim, "d_ff": cfg.d_ff, "layers": cfg.n_decoder_layers,
            "vocab_size": cfg.vocab_size, "activation": cfg.activation, "norm": cfg.norm,
            "positions": cfg.positions, "dtype": s.dtype,
            "parameters": sum(p.numel() for p in model.parameters()),
            "kv_bytes_per_token": cfg.kv_cache_bytes_per_token(dtype.itemsize),
        }
        # Warm-up: kernels, RoPE tables, cuBLAS handles.
        generate(model, torch.randint(0, cfg.vocab_size, (1, 64), device=device), 4)
        for batch in s.batches:
            for context in s.contexts:
                if not fits(cfg, s, batch, context, device, dtype.itemsize):
                    p = Point(cfg.variant, kv, batch, context, status="skipped: memory")
                    points.append(p)
                    print(f"{cfg.variant:7s} B={batch:<3d} T={context:<6d} skipped (memory)")
                    continue
                graph = device.type == "cuda" and not args.no_profile
                try:
                    p = run_point(model, s, batch, context, device, bw["copy_GBps"], graph)
                except torch.OutOfMemoryError:
                    p = Point(cfg.variant, kv, batch, context, status="skipped: out of memory")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                points.append(p)
                print(f"{cfg.variant:7s} B={batch:<3d} T={context:<6d} prefill {p.prefill_s:7.3f}s "
                      f"decode {p.decode_ms:7.3f} ms  {p.tokens_per_s:9.1f} tok/s  "
                      f"KV {p.kv_bytes_allocator / 2**30:7.3f} GiB "
                      f"(formula {'=' if p.kv_agree else '≠'})  "
                      f"bw {p.achieved_GBps:7.0f} GB/s = {p.bandwidth_fraction:5.1%}  "
                      f"graph {p.graph_step_ms:7.3f} ms = {p.graph_bandwidth_fraction:5.1%}  "
                      f"graph decode {p.graph_decode_ms:7.3f} ms = "
                      f"{p.graph_decode_bandwidth_fraction:5.1%}", flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    # The profiler last: it must not run before the timings (it can slow later launches).
    if device.type == "cuda" and not args.no_profile:
        for kv in s.kv_heads:
            model = build_model(model_config(s, kv, max_len), device, dtype)
            try:
                sdpa[model.cfg.variant] = sdpa_kernels(model, device)
            except Exception as exc:  # a diagnostic; never lose the run to it
                sdpa[model.cfg.variant] = {"error": repr(exc)}
            del model
            torch.cuda.empty_cache()

    # "points" is the first list of records: the app's Variants page tabulates that one.
    result = {"meta": {**info, "scale": scale_name, "scale_settings": asdict(s)},
              "copy_bandwidth": bw, "configs": configs,
              "points": [asdict(p) for p in points], "headline": headline(points),
              "sdpa_kernels": sdpa, "decode_attention_kernels": kernels}
    write(result, args.out, device.type)
    print(summary(result))
    return result


def graph_step_profile(model: Transformer, batch: int, context: int,
                       device: torch.device) -> dict:
    """Where one `GraphDecoder` step's GPU time goes: its kernels (profiled once, run eagerly)
    grouped by name with their summed device time, next to the captured step's replay time
    (median of 20). The cache holds `context` random keys and values (a prefill's K/V without
    spending a prefill)."""
    from torch.profiler import ProfilerActivity, profile

    cache = model.new_cache(context + 64, batch=batch)
    for layer in cache.self_attn:
        layer.k.normal_()
        layer.v.normal_()
        layer.length = context
    dec = GraphDecoder(model, cache)
    first = torch.zeros(batch, 1, dtype=torch.long, device=device)
    dec.start(first)
    dec.step()
    sync(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        dec.step()
        sync(device)
    by_name: dict[str, list] = {}
    for e in prof.events():
        if e.device_type.name == "CUDA":
            entry = by_name.setdefault(e.name[:100], [0, 0.0])
            entry[0] += 1
            entry[1] += e.device_time
    dec.start(first)
    dec.capture()
    stamps = [_stamp(device)]
    dec.decode(23, lambda _i: stamps.append(_stamp(device)))
    sync(device)
    replay = statistics.median(_intervals(stamps, device)[3:])
    rows = sorted(({"kernel": k, "count": n, "us": t} for k, (n, t) in by_name.items()),
                  key=lambda r: -r["us"])
    return {"batch": batch, "context": context, "splits": dec.splits,
            "kernels": sum(r["count"] for r in rows), "busy_us": sum(r["us"] for r in rows),
            "graph_step_ms": replay * 1e3, "by_kernel": rows}


def profile_steps(s: Scale, device: torch.device, bw: dict, info: dict, out: Path) -> dict:
    """`--profile-step`: graph_step_profile for every variant at batch 1 and the longest
    context, written to kv_graph_step_profile_<device>.json."""
    context = max(s.contexts)
    found = {}
    for kv in s.kv_heads:
        model = build_model(model_config(s, kv, context + 128), device, getattr(torch, s.dtype))
        found[model.cfg.variant] = prof = graph_step_profile(model, 1, context, device)
        print(f"{model.cfg.variant:7s} B=1 T={context}: {prof['kernels']} kernels, "
              f"{prof['busy_us']:.0f} µs busy, replay {prof['graph_step_ms']:.3f} ms", flush=True)
        for r in prof["by_kernel"][:12]:
            print(f"    {r['count']:3d} × {r['us']:7.1f} µs  {r['kernel'][:80]}")
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out.mkdir(parents=True, exist_ok=True)
    result = {"meta": info, "copy_bandwidth": bw, "profiles": found}
    (out / f"kv_graph_step_profile_{device.type}.json").write_text(
        json.dumps(result, indent=1, default=str))
    return result


def headline(points: list[Point]) -> dict:
    """Speedup of GQA/MQA over MHA (per-token decode latency) and KV-memory ratio at the
    longest context measured for batch 8 (else the largest batch measured)."""
    ok = [p for p in points if p.status == "ok"]
    if not ok:
        return {}
    batches = sorted({p.batch for p in ok})
    batch = 8 if 8 in batches else batches[-1]
    context = max(p.context for p in ok if p.batch == batch)
    at = {p.variant: p for p in ok if p.batch == batch and p.context == context}
    out = {"batch": batch, "context": context}
    if "MHA" in at:
        for v, p in at.items():
            out[v] = {"decode_ms": p.decode_ms, "tokens_per_s": p.tokens_per_s,
                      "kv_GiB": p.kv_bytes_allocator / 2**30,
                      "speedup_vs_MHA": at["MHA"].decode_ms / p.decode_ms,
                      "kv_memory_vs_MHA": p.kv_bytes_allocator / at["MHA"].kv_bytes_allocator,
                      "bandwidth_fraction": p.bandwidth_fraction,
                      "graph_decode_ms": p.graph_decode_ms,
                      "graph_tokens_per_s": p.graph_decode_tokens_per_s,
                      "graph_speedup_vs_MHA": at["MHA"].graph_decode_ms / p.graph_decode_ms,
                      "graph_bandwidth_fraction": p.graph_decode_bandwidth_fraction}
    return out


def write(result: dict, out: Path, device_type: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"kv_{device_type}.json").write_text(json.dumps(result, indent=1, default=str))
    meta = result["meta"]
    cols = ["device_name", "date", "torch"]
    rows = result["points"]
    fields = cols + [k for k in rows[0] if k != "notes"] + ["notes"] if rows else cols
    with open(out / f"kv_{device_type}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({**{c: meta.get(c) for c in cols}, **r, "notes": "; ".join(r["notes"])})


def summary(result: dict) -> str:
    h = result["headline"]
    lines = [f"\n## {result['meta']['device_name']} — batch {h.get('batch')}, "
             f"context {h.get('context')}"]
    for v in ("MHA", *[k for k in h if k.startswith("GQA")], "MQA"):
        if v in h:
            r = h[v]
            lines.append(f"{v:7s} decode {r['decode_ms']:8.3f} ms/token  "
                         f"{r['tokens_per_s']:9.1f} tok/s  KV {r['kv_GiB']:7.3f} GiB  "
                         f"speedup vs MHA {r['speedup_vs_MHA']:5.2f}×  "
                         f"bandwidth {r['bandwidth_fraction']:5.1%}  |  graph decode "
                         f"{r['graph_decode_ms']:8.3f} ms  {r['graph_speedup_vs_MHA']:5.2f}×  "
                         f"bandwidth {r['graph_bandwidth_fraction']:5.1%}")
    ok = [p for p in result["points"] if p["status"] == "ok"]
    agree = sum(p["kv_agree"] for p in ok)
    lines.append(f"KV-cache bytes (allocator) equal the formula at {agree} of {len(ok)} points")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
