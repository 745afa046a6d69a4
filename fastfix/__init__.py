"""fastfix: a fast FIX library (codec, data dictionaries, sessions) for Python."""

from __future__ import annotations

__version__ = "0.1.0"

from fastfix.codec import (
    Garbled,
    Message,
    Template,
    Tokenizer,
    checksum,
    encode,
    parse,
    parse_utc_timestamp,
    utc_timestamp,
)
from fastfix.errors import ConfigError, EncodeError, FixError, ParseError

__all__ = ["__version__", "FixError", "ParseError", "EncodeError", "ConfigError"]
__all__ += ["Garbled", "Message", "Template", "Tokenizer", "checksum", "encode", "parse"]
__all__ += ["parse_utc_timestamp", "utc_timestamp"]
