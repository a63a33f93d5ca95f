"""Errors raised for bad input: one line naming the file (when known) and the reason."""

from __future__ import annotations


class InvalidInputError(ValueError):
    """Bad user input (file, token text or option). ``str()`` is ``"path: reason"``."""

    def __init__(self, reason: str, path: str | None = None):
        self.reason = reason
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def with_path(self, path) -> InvalidInputError:
        """The same error, naming ``path`` (kept if one is already named)."""
        return self if self.path else InvalidInputError(self.reason, path)
