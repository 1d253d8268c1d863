"""The engine against torch.nn.Transformer on the original Transformer (Vaswani et al., 2017):
same preset (`engine.models.vaswani.vaswani()`, base size), same weights, same inputs, one process.

Two paths, each timed against its peer, interleaved (engine, torch, engine, torch, ...), medians,
printed as a ratio engine / torch (below 1: the engine is faster):

- fused: no attention weights asked for. Engine: `Request(record=())`, every block on
  `scaled_dot_product_attention`. Torch: `nn.Transformer` in eval mode under no_grad (its
  encoder takes PyTorch's native fast path when it can).
- weights: every attention map returned. Engine: `Request(record=None)`, per-head weights of
  every block. Torch: the same layers called with `nn.MultiheadAttention(need_weights=True,
  average_attn_weights=False)`, each map kept.

Both sides include the embeddings (× √d_model, sinusoidal positions) and the output projection.
Before timing, outputs and maps are checked to agree.

Usage:
    python bench/bench_engine_vs_torch.py                # CPU: batch 8, 128 source/target tokens
    python bench/bench_engine_vs_torch.py --device cuda  # GPU: batch 32, 256 tokens
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.timing import add_common_args, apply_threads, interleaved  # noqa: E402
from engine.core.transformer import Request, Transformer, init_weights  # noqa: E402
from engine.models.vaswani import vaswani  # noqa: E402
from tests.torch_oracle import nn_transformer_like  # noqa: E402


class TorchVaswani(nn.Module):
    """nn.Transformer between the engine's own embeddings and output projection (shared
    modules: the comparison is of the Transformer, not of an embedding lookup)."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.src_embed, self.tgt_embed, self.out = (model.encoder.embed, model.decoder.embed,
                                                    model.lm_head)
        self.core = nn_transformer_like(model)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], device=tgt.device)
        h = self.core(self.src_embed(src), self.tgt_embed(tgt), tgt_mask=causal,
                      tgt_is_causal=True)
        return self.out(h)

    def with_weights(self, src: torch.Tensor, tgt: torch.Tensor):
        """The same computation, layer by layer, keeping every per-head map."""
        maps = []
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], device=tgt.device)
        x = self.src_embed(src)
        for layer in self.core.encoder.layers:
            a, w = layer.self_attn(x, x, x, need_weights=True, average_attn_weights=False)
            maps.append(w)
            x = layer.norm1(x + a)
            x = layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))
        memory, y = x, self.tgt_embed(tgt)
        for layer in self.core.decoder.layers:
            a, w = layer.self_attn(y, y, y, attn_mask=causal, need_weights=True,
                                   average_attn_weights=False)
            maps.append(w)
            y = layer.norm1(y + a)
            a, w = layer.multihead_attn(y, memory, memory, need_weights=True,
                                        average_attn_weights=False)
            maps.append(w)
            y = layer.norm2(y + a)
            y = layer.norm3(y + layer.linear2(layer.activation(layer.linear1(y))))
        return self.out(y), maps


def compare(name: str, ours, theirs, device: torch.device, repeats: int) -> dict:
    """Interleaved timings (the order alternates each round), medians and their ratio."""
    t = interleaved({"engine": ours, "torch": theirs}, device, repeats, warmup=2)
    row = {"path": name, "engine_ms": t["engine"] * 1e3, "torch_ms": t["torch"] * 1e3,
           "repeats": repeats}
    row["ratio"] = row["engine_ms"] / row["torch_ms"]
    print(f"{name:8s} engine {row['engine_ms']:9.2f} ms   nn.Transformer {row['torch_ms']:9.2f} ms"
          f"   engine/torch = {row['ratio']:.2f}×", flush=True)
    return row


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--length", type=int, default=None, help="source and target tokens")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--small", action="store_true", help="a 2-layer d_model 64 model (tests)")
    args = ap.parse_args(argv)
    apply_threads(args)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (32 if gpu else 8)
    length = args.length or (256 if gpu else 128)
    repeats = args.repeats or (30 if gpu else 9)

    torch.manual_seed(0)
    cfg = vaswani(d_model=64, n_heads=4, n_layers=2, d_ff=128) if args.small else vaswani()
    model = init_weights(Transformer(cfg), seed=0).eval().to(device)
    ref = TorchVaswani(model).eval().to(device)
    src = torch.randint(3, cfg.vocab_size, (batch, length), device=device)
    tgt = torch.randint(3, cfg.vocab_size, (batch, length), device=device)

    with torch.inference_mode():
        ours = model(src, target_ids=tgt, req=Request(record=None))
        theirs, maps = ref.with_weights(src, tgt)
        fused = ref(src, tgt)
        keys = list(ours.record)  # encoder.self.*, then decoder.self.L, decoder.cross.L
        check = {
            "logits_max_abs_diff_fused": float((model(src, target_ids=tgt).logits - fused)
                                               .abs().max()),
            "logits_max_abs_diff_weights": float((ours.logits - theirs).abs().max()),
            "maps_max_abs_diff": max(float((ours.record[k].weights - w).abs().max())
                                     for k, w in zip(keys, maps, strict=True)),
        }
        del ours, theirs, maps, fused
        print(f"# {device_name(device)} · torch {torch.__version__} · batch {batch} · "
              f"{length}+{length} tokens · {cfg.n_encoder_layers}+{cfg.n_decoder_layers} layers, "
              f"d_model {cfg.d_model}, {cfg.n_heads} heads", flush=True)
        print(f"# agreement: {json.dumps(check)}", flush=True)
        rows = [
            compare("fused", lambda: model(src, target_ids=tgt, req=Request(record=())),
                    lambda: ref(src, tgt), device, repeats),
            compare("weights", lambda: model(src, target_ids=tgt, req=Request(record=None)),
                    lambda: ref.with_weights(src, tgt), device, repeats),
        ]
    result = {
        "meta": {"device": device.type, "device_name": device_name(device),
                 "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "load_average_1min": os.getloadavg()[0],
                 "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 "python": platform.python_version(),
                 "command": "python bench/bench_engine_vs_torch.py "
                            + " ".join(argv if argv is not None else sys.argv[1:])},
        "config": {"preset": "vaswani()" if not args.small else "vaswani(64, 4 heads, 2 layers)",
                   "d_model": cfg.d_model, "heads": cfg.n_heads, "layers": cfg.n_encoder_layers,
                   "d_ff": cfg.d_ff, "vocab": cfg.vocab_size, "batch": batch,
                   "source_tokens": length, "target_tokens": length, "dtype": "float32"},
        "agreement": check, "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"engine_vs_torch_{device.type}.json").write_text(json.dumps(result, indent=1))
    return result


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


if __name__ == "__main__":
    main()
