"""Exceptions raised by fastfix.

One hierarchy, so callers can catch precisely: everything derives from
:class:`FixError`.
"""

from __future__ import annotations

from dataclasses import dataclass


class FixError(Exception):
    """Base class of every fastfix error."""


class ParseError(FixError):
    """Bytes that are not a well-formed FIX message (framing, syntax, checksum)."""


class EncodeError(FixError):
    """Python values that cannot be written as a FIX message."""


class ConfigError(FixError):
    """A settings or configuration file is wrong; the message names file, section and line."""


class StoreError(FixError):
    """A message store cannot be opened, read or written (locked, unreadable, corrupt header)."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in a JSON message: ``path`` (``$.NoOrders[1].OrderQty``), ``field``, ``reason``."""

    path: str
    field: str
    reason: str


class JsonMappingError(FixError):
    """JSON that cannot be mapped to a valid FIX message; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.reason}" for e in errors) or "invalid JSON message")
