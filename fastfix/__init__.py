"""fastfix: a fast FIX library (codec, data dictionaries, sessions) for Python."""

from __future__ import annotations

__version__ = "0.1.0"

from fastfix.errors import ConfigError, EncodeError, FixError, ParseError

__all__ = ["__version__", "FixError", "ParseError", "EncodeError", "ConfigError"]
