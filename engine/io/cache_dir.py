"""Where Attention Studio keeps files it builds once and reuses: assembled model files,
dequantized weights, built tokenizers.

The directory is `$ATTENTION_STUDIO_CACHE` if set, else `~/.cache/attention-studio`. Writers
go through `atomic_path` so that two app sessions starting at once, or a run killed midway,
never leave a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

ENV_VAR = "ATTENTION_STUDIO_CACHE"


def cache_dir(sub: str | None = None) -> Path:
    """The cache directory (created if missing), or its subdirectory `sub`."""
    root = os.environ.get(ENV_VAR)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "attention-studio"
    path = base / sub if sub else base
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success rename it onto `final`.

    On an exception the temporary file is removed and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes files private; a cache is not secret
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
