"""What a census reads and how it runs: the CLI's options as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InputError

ENGINES = ("local", "ray")
PROBES = ("induction",)


@dataclass(frozen=True)
class CensusSettings:
    """What a census reads and how it runs (the CLI's options)."""

    model: str
    corpus: str | None = None  # None: the bundled corpus
    field: str = "text"
    max_texts: int | None = None
    batch_size: int = 8
    probe: str | None = None
    engine: str = "local"
    device: str = "auto"
    workers: int | None = None  # Ray actors (default: one per GPU, else 2)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.engine not in ENGINES:
            raise InputError(f"--engine must be local or ray, got {self.engine!r}")
        if self.probe is not None and self.probe not in PROBES:
            raise InputError(f"--probe must be induction, got {self.probe!r}")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be at least 1, got {self.workers}")
