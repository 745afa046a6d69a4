"""Exceptions raised by fastfix.

One hierarchy, so callers can catch precisely: everything derives from
:class:`FixError`.
"""

from __future__ import annotations


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
